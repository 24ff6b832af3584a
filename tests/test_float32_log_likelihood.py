"""Issue 12: "the reported ``log_likelihood`` equals the log-likelihood of the
returned params recomputed in float64 to 1e-4 relative, for every family and
covariance type". Each built-in family is fitted in float32 (x64 off) on small
data with an offset (so that float32 rounding is visible), and the reported value
is compared with ``jaxem.log_likelihood`` of the same params and data in float64.
"""

import jax
import numpy as np
import pytest

import jaxem

RELATIVE = 1e-4


def _gaussian(rng, n=300, d=2, offset=100.0):
    labels = rng.integers(0, 3, size=n)
    centres = np.array([[0.0, 0.0], [4.0, 1.0], [-2.0, 5.0]])[:, :d]
    return offset + centres[labels] + rng.normal(size=(n, d)) * np.array([1.0, 0.3])[:d]


def _regression(rng, n=300):
    x = rng.normal(size=(n, 2)) + 50.0
    labels = rng.integers(0, 2, size=n)
    y = np.where(labels == 0, x @ [1.0, -2.0] + 3.0, x @ [-0.5, 1.0] - 1.0) + 0.1 * rng.normal(size=n)
    return x, y


def _counts(rng, n=300, s=4, total=30):
    probs = np.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]])[:, :s]
    return np.stack([rng.multinomial(total, probs[k]) for k in rng.integers(0, 2, size=n)]).astype(np.float64)


def _binary(rng, n=300, s=6):
    probs = rng.uniform(0.1, 0.9, size=(2, s))
    return (rng.uniform(size=(n, s)) < probs[rng.integers(0, 2, size=n)]).astype(np.float64)


def _poisson(rng, n=300):
    return rng.poisson(np.where(rng.integers(0, 2, size=n) == 0, 3.0, 400.0))[:, None].astype(np.float64)


def _symbols(rng, n=300):
    return rng.integers(0, 4, size=n)


GAUSSIAN_TYPES = ["full", "diag", "spherical", "tied"]
CASES = (
    [(f"gaussian_mixture {c}", lambda c=c: jaxem.models.gaussian_mixture(3, covariance_type=c), _gaussian) for c in GAUSSIAN_TYPES]
    + [(f"gaussian_hmm {c}", lambda c=c: jaxem.models.gaussian_hmm(3, covariance_type=c), _gaussian) for c in GAUSSIAN_TYPES]
    + [
        ("poisson_mixture", lambda: jaxem.models.poisson_mixture(2), _poisson),
        ("bernoulli_mixture", lambda: jaxem.models.bernoulli_mixture(2), _binary),
        ("categorical_mixture (multinomial counts)", lambda: jaxem.models.categorical_mixture(2), _counts),
        ("regression_mixture", lambda: jaxem.models.regression_mixture(2), _regression),
        ("student_t_mixture", lambda: jaxem.models.student_t_mixture(3), _gaussian),
        ("poisson_hmm", lambda: jaxem.models.poisson_hmm(2), _poisson),
        ("bernoulli_hmm", lambda: jaxem.models.bernoulli_hmm(2), _binary),
        ("categorical_hmm", lambda: jaxem.models.categorical_hmm(2, 4), _symbols),
        ("multinomial_hmm", lambda: jaxem.models.multinomial_hmm(2), _counts),
        ("ar_hmm", lambda: jaxem.models.ar_hmm(2, order=1, covariance_type="full"), _gaussian),
        ("gmm_hmm", lambda: jaxem.models.gmm_hmm(2, 2, covariance_type="diag"), _gaussian),
    ]
)


def _cast(data, float_dtype):
    if isinstance(data, tuple):
        return tuple(_cast(part, float_dtype) for part in data)
    return data if np.issubdtype(data.dtype, np.integer) else data.astype(float_dtype)


@pytest.mark.parametrize("name, make_model, make_data", CASES, ids=[case[0] for case in CASES])
def test_float32_reported_log_likelihood_equals_float64_rescoring(name, make_model, make_data):
    data = make_data(np.random.default_rng(0))
    model = make_model()
    with jax.enable_x64(False):
        result = jaxem.fit(model, _cast(data, np.float32), key=0, n_restarts=2, max_iter=30)
        reported = float(result.log_likelihood)
        assert result.log_likelihood.dtype == np.float32
    params64 = jax.tree_util.tree_map(lambda leaf: np.asarray(leaf, np.float64), result.params)
    rescored = float(jaxem.log_likelihood(model, params64, _cast(data, np.float64)))
    assert np.isfinite(rescored)
    assert abs(reported - rescored) <= RELATIVE * abs(rescored), (reported, rescored)
