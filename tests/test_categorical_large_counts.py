"""Issue 12, case 4 for the categorical family: large counts in float32.

The product form ``log n!/Πx! + x · log p`` cancels two terms of size ``n log n``,
so float32 log-likelihoods were off by tens to hundreds of nats per row at
counts ~1e6..2**24. The reported ``log_likelihood`` must equal the returned
params rescored in float64 to 1e-4 relative, EM must converge and never lower
its objective beyond rounding.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import jaxem
from jaxem import models
from jaxem._src.families.categorical import stable_log_pmf, stirling_remainder

PROBS = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])


def _counts(n_trials, n_rows=40, seed=0):
    rng = np.random.default_rng(seed)
    z = np.arange(n_rows) % 2
    return np.stack([rng.multinomial(n_trials, PROBS[k]) for k in z]).astype(np.float32)


def _as_float64(params):
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)


def _monotone(history, x):
    # The rounding bound: float32 probabilities resolve p_s only to a relative eps/2,
    # which moves a row of total n by up to n·eps/2 nats (rows of one component
    # share the rounding), so EM may lose at most eps/2 · Σ counts to it.
    bound = 0.5 * float(np.finfo(np.float32).eps) * float(np.sum(x, dtype=np.float64))
    for h in np.atleast_2d(np.asarray(history)):  # one trace per restart
        h = h[np.isfinite(h)]
        assert np.all(h[:-1] - h[1:] <= bound), (h, bound)


def test_stirling_remainder_and_stable_log_pmf_against_scipy():
    m = np.arange(1.0, 60.0)
    exact = scipy.special.gammaln(m + 1) - (m * np.log(m) - m + 0.5 * np.log(2 * np.pi * m))
    np.testing.assert_allclose(np.asarray(stirling_remainder(jnp.asarray(m, jnp.float32))), exact, atol=3e-6)
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(5), size=3).astype(np.float32)
    for n in [1, 7, 10**6, 2**24]:
        x = np.stack([rng.multinomial(n, probs[i % 3]) for i in range(6)]).astype(np.float32)
        got = np.asarray(stable_log_pmf(jnp.asarray(x), jnp.asarray(probs)))
        for k in range(3):
            # the float32 probs as float64, unnormalized as they are (scipy would renormalize)
            p = probs[k].astype(np.float64)
            x64 = x.astype(np.float64)
            ref = scipy.special.gammaln(x64.sum(1) + 1) - scipy.special.gammaln(x64 + 1).sum(1) + x64 @ np.log(p)
            np.testing.assert_allclose(got[:, k], ref, rtol=2e-5, atol=2e-5)


def test_stable_log_pmf_edge_cases():
    x = jnp.array([[0.0, 0.0, 0.0], [0.0, 3.0, 0.0], [2.0, 0.0, 1.0]], jnp.float32)
    probs = jnp.array([[0.5, 0.0, 0.5], [0.2, 0.3, 0.5]], jnp.float32)
    got = np.asarray(stable_log_pmf(x, probs))
    assert got[0].tolist() == [0.0, 0.0]  # a row of zeros (padding) has log-pmf 0
    assert got[1, 0] < -1e19  # an observed structural zero is impossible, finite
    np.testing.assert_allclose(got[1, 1], 3 * np.log(0.3), rtol=1e-6)
    np.testing.assert_allclose(got[2], [scipy.stats.multinomial.logpmf([2, 0, 1], 3, [0.5, 0.0, 0.5]),
                                        scipy.stats.multinomial.logpmf([2, 0, 1], 3, [0.2, 0.3, 0.5])], rtol=1e-6)


@pytest.mark.parametrize("n_trials", [10**6, 2**24])
def test_categorical_mixture_float32_log_likelihood_equals_float64_rescoring(n_trials):
    x = _counts(n_trials)
    model = models.categorical_mixture(2)
    result = jaxem.fit(model, x, key=0, n_restarts=2, max_iter=50)
    rescored = float(jaxem.log_likelihood(model, _as_float64(result.params), x.astype(np.float64)))
    assert abs(float(result.log_likelihood) - rescored) <= 1e-4 * abs(rescored)
    assert bool(np.all(result.converged))
    _monotone(result.history, x)
    per_row = np.asarray(jaxem.score_samples(model, result.params, x))
    per_row64 = np.asarray(jaxem.score_samples(model, _as_float64(result.params), x.astype(np.float64)))
    np.testing.assert_allclose(per_row, per_row64, rtol=1e-4)
    np.testing.assert_allclose(np.sort(np.asarray(result.params.probs)[:, 0]), [0.2, 0.6], atol=1e-3)


def test_multinomial_hmm_float32_log_likelihood_equals_float64_rescoring():
    n_trials = 2**22
    x = _counts(n_trials, n_rows=30, seed=1)
    model = models.multinomial_hmm(2, n_trials=n_trials)
    result = jaxem.fit(model, x, key=0, n_restarts=1, max_iter=50)
    rescored = float(jaxem.log_likelihood(model, _as_float64(result.params), x.astype(np.float64)))
    assert abs(float(result.log_likelihood) - rescored) <= 1e-4 * abs(rescored)
    assert bool(np.all(result.converged))
    _monotone(result.history, x)


def test_small_counts_keep_the_product_form_and_equal_scipy():
    # below the threshold the matrix product is used: float64 against SciPy to 1e-12
    rng = np.random.default_rng(0)
    x = rng.multinomial(20, [0.4, 0.3, 0.2, 0.1], size=30).astype(np.float64)
    params = models.categorical_mixture_params([0.3, 0.7], rng.dirichlet(np.ones(4), size=2))
    model = models.categorical_mixture(2)
    log_joint = np.asarray(model.log_joint(params, model.prepare(x)))
    ref = np.stack([scipy.stats.multinomial.logpmf(x, 20, p) for p in np.asarray(params.probs)], axis=1)
    np.testing.assert_allclose(log_joint, ref + np.log(np.asarray(params.weights)), rtol=1e-12)
