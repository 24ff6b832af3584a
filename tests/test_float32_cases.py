"""Issue 12, the float32 cases one by one: float32 against float64 on the same data
(and the reported log-likelihood against the params rescored in float64). Each
test failed on main before the fix it names."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxem


def _as_float64(params):
    return jax.tree_util.tree_map(lambda leaf: jnp.asarray(np.asarray(leaf, np.float64)), params)


def _rescored(model, params, x):
    return float(jaxem.log_likelihood(model, _as_float64(params), np.asarray(x, np.float64)))


def _variances(params):
    return np.asarray(jaxem.models.covariances(params)).reshape(params.means.shape[0], -1)


# ----------------------------------------------------------------------------------
# Case 2: tight components far from the data's centre. The one-pass
# E[x x'] - E[x] E[x]' about the global centre cancelled (float32 variances 2.98 for
# float64's 0.96); statistics are now taken about each component's mean.


def _far_pair():
    rng = np.random.default_rng(0)
    return np.r_[rng.normal(size=(150, 1)), 10_000.0 + rng.normal(size=(150, 1))]


@pytest.mark.parametrize("covariance_type", ["diag", "tied"])
def test_tight_components_far_apart_float32_matches_float64(covariance_type):
    x = _far_pair()
    model = jaxem.models.gaussian_mixture(2, covariance_type=covariance_type)
    start = jaxem.models.gaussian_mixture_params(
        [0.5, 0.5], [[0.5], [9_999.0]], {"diag": [[2.0], [2.0]], "full": [[[2.0]], [[2.0]]], "tied": [[2.0]]}[covariance_type], covariance_type
    )
    fits = {}
    for dtype in (np.float32, np.float64):
        params = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, dtype), start)
        fits[dtype] = jaxem.fit(model, x.astype(dtype), key=0, init_params=params, max_iter=50, tol=1e-10)
    v32, v64 = _variances(fits[np.float32].params), _variances(fits[np.float64].params)
    assert 0.5 < v64.min() and v64.max() < 2.0
    np.testing.assert_allclose(v32, v64, rtol=1e-3)  # old: 2.98 against 0.96
    # means to float32's resolution of the data (9999 has an ulp of 1e-3)
    np.testing.assert_allclose(np.asarray(fits[np.float32].params.means), np.asarray(fits[np.float64].params.means), atol=2e-3)
    rescored = _rescored(model, fits[np.float32].params, x)
    assert abs(float(fits[np.float32].log_likelihood) - rescored) < 1e-4 * abs(rescored)


def test_em_step_at_the_mle_stays_there_float32():
    # Two points 9999 apart, reg_covar 0.1: the MLE puts one component on each point
    # with variance 0.1. Old: fit gave variance 29.9, one em_step moved away from it.
    x = np.array([[9_999.0], [0.0]], np.float32)
    model = jaxem.models.gaussian_mixture(2, covariance_type="spherical", reg_covar=0.1)
    mle = jaxem.models.gaussian_mixture_params(
        np.array([0.5, 0.5], np.float32), np.array([[9_999.0], [0.0]], np.float32), np.array([0.1, 0.1], np.float32), "spherical"
    )
    stepped, log_lik = jaxem.em_step(model, mle, x)
    np.testing.assert_allclose(_variances(stepped).ravel(), 0.1, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(stepped.means), np.asarray(mle.means), rtol=0, atol=1e-3)
    expected = 2 * (np.log(0.5) - 0.5 * np.log(2 * np.pi * 0.1))
    np.testing.assert_allclose(float(log_lik), expected, rtol=1e-5)
    fitted = jaxem.fit(model, x, key=0, n_restarts=2)
    np.testing.assert_allclose(np.sort(_variances(fitted.params).ravel()), 0.1, rtol=1e-4)


@pytest.mark.parametrize("covariance_type", ["tied", "diag"])  # full: tests/test_float32.py
def test_tight_cluster_log_likelihood_equals_float64_rescoring(covariance_type):
    # Case 1's remainder: the reported float32 log-likelihood was 3-6 per cent off
    # the float64 rescoring of the same params.
    rng = np.random.default_rng(0)
    x = np.r_[1e-4 * rng.normal(size=(100, 2)), 10 + rng.normal(size=(100, 2))].astype(np.float32)
    model = jaxem.models.gaussian_mixture(2, covariance_type=covariance_type)
    result = jaxem.fit(model, x, key=0)
    rescored = _rescored(model, result.params, x)
    assert abs(float(result.log_likelihood) - rescored) < 1e-4 * abs(rescored)
    per_row = np.asarray(jaxem.score_samples(model, result.params, x))
    per_row64 = np.asarray(jaxem.score_samples(model, _as_float64(result.params), x.astype(np.float64)))
    np.testing.assert_allclose(per_row, per_row64, rtol=1e-3, atol=1e-3)


# ----------------------------------------------------------------------------------
# Case 8: rows are scored independently of the rows that come with them (the
# standardization comes from the params, not from the scored data).


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_row_scored_alone_equals_row_in_a_batch_float32(covariance_type):
    rng = np.random.default_rng(1)
    x = np.r_[1_000 + rng.normal(size=(40, 2)), 1_010 + 0.01 * rng.normal(size=(40, 2))].astype(np.float32)
    model = jaxem.models.gaussian_mixture(2, covariance_type=covariance_type)
    params = jaxem.fit(model, x, key=0, max_iter=20).params
    batch = np.asarray(jaxem.score_samples(model, params, x))
    alone = np.array([float(jaxem.score_samples(model, params, x[i : i + 1])[0]) for i in (0, 1, 45, 79)])
    np.testing.assert_allclose(alone, batch[[0, 1, 45, 79]], rtol=1e-6)
    other_half = np.asarray(jaxem.score_samples(model, params, x[40:]))
    np.testing.assert_allclose(other_half, batch[40:], rtol=1e-6)
    labels = np.asarray(jaxem.predict(model, params, x))
    assert [int(jaxem.predict(model, params, x[i : i + 1])[0]) for i in (0, 45)] == [labels[0], labels[45]]


def test_sklearn_sample_order_invariance_float32():
    from sklearn.utils.estimator_checks import check_methods_sample_order_invariance

    from jaxem.sklearn import GaussianMixture

    with jax.enable_x64(False):
        check_methods_sample_order_invariance("GaussianMixture", GaussianMixture(n_components=2))


def test_hmm_sequence_scored_alone_equals_in_a_batch_float32():
    rng = np.random.default_rng(2)
    obs = (500 + np.cumsum(rng.normal(size=(60, 1)), axis=0)).astype(np.float32)
    model = jaxem.models.gaussian_hmm(2, covariance_type="full")
    params = jaxem.fit(model, obs, key=0, max_iter=10).params
    both = jaxem.Sequences(np.stack([obs[:30], obs[30:]]), np.array([30, 30]))
    together = np.asarray(jaxem.score_samples(model, params, both))
    alone = np.array([float(jaxem.score_samples(model, params, obs[:30])[0]), float(jaxem.score_samples(model, params, obs[30:])[0])])
    np.testing.assert_allclose(alone, together, rtol=1e-6)


# ----------------------------------------------------------------------------------
# Case 4: large counts. x log λ - λ - log x! cancelled (counts of 2^24 gave 0.0).


def test_poisson_large_counts_log_likelihood_float32():
    from scipy.stats import poisson

    x = np.array([[2**24], [2**24 + 4096], [3], [0], [1_000_000]], np.float32)
    params = jaxem.models.PoissonMixtureParams(np.array([0.6, 0.4], np.float32), np.array([[2.0**24], [5.0]], np.float32))
    model = jaxem.models.poisson_mixture(2)
    rates = np.asarray(params.rates, np.float64)[:, 0]
    weights = np.asarray(params.weights, np.float64)
    log_pmf = poisson.logpmf(x.astype(np.float64), rates[None, :]) + np.log(weights)[None, :]
    expected = np.logaddexp.reduce(log_pmf, axis=1)
    per_row = np.asarray(jaxem.score_samples(model, params, x))
    np.testing.assert_allclose(per_row, expected, rtol=1e-4)  # old: 0.0 for the first row
    # float64 (the exponential-family form in x64) agrees too
    per_row64 = np.asarray(jaxem.score_samples(model, _as_float64(params), x.astype(np.float64)))
    np.testing.assert_allclose(per_row64, expected, rtol=1e-7)


def test_poisson_hmm_large_counts_fit_converges_float32():
    rng = np.random.default_rng(0)
    obs = rng.poisson(np.where(np.arange(80) % 20 < 10, 2.0e6, 5.0e6))[:, None].astype(np.float32)
    model = jaxem.models.poisson_hmm(2)
    result = jaxem.fit(model, obs, key=0, max_iter=100)
    assert bool(result.converged[0])  # old: the rounding noise kept it from converging
    rescored = _rescored(model, result.params, obs)
    assert abs(float(result.log_likelihood) - rescored) < 1e-4 * abs(rescored)


# ----------------------------------------------------------------------------------
# Case 6: overflow is refused with an error naming the argument (old: NaN).


def test_overflowing_data_is_refused_float32():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 1)).astype(np.float32)
    y = (1e25 * rng.normal(size=20)).astype(np.float32)
    with pytest.raises(ValueError, match="y holds values up to .*overflow float32"):
        jaxem.fit(jaxem.models.regression_mixture(2), (x, y), key=0, max_iter=2)
    counts = np.array([[3e38], [1.0]], np.float32)
    with pytest.raises(ValueError, match="x holds counts up to .*overflow float32"):
        jaxem.fit(jaxem.models.poisson_mixture(2), counts, key=0, max_iter=2)


# ----------------------------------------------------------------------------------
# Case 10: missing="marginalize" and features with nothing observed (old: finite
# garbage). A row with nothing observed is defined: log p = 0, posterior = weights.


def test_marginalize_refuses_features_never_observed_and_defines_empty_rows():
    model = jaxem.models.gaussian_mixture(2, covariance_type="diag", missing="marginalize")
    with pytest.raises(ValueError, match="x has features with nothing observed"):
        jaxem.fit(model, np.full((6, 2), np.nan), key=0, max_iter=2)
    x = np.array([[0.0, 1.0], [np.nan, np.nan], [5.0, 6.0], [0.5, np.nan]])
    params = jaxem.models.gaussian_mixture_params([0.3, 0.7], [[0.0, 1.0], [5.0, 6.0]], [[1.0, 1.0], [1.0, 1.0]], "diag")
    np.testing.assert_allclose(float(jaxem.score_samples(model, params, x)[1]), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(jaxem.posterior(model, params, x))[1], [0.3, 0.7], rtol=1e-12)
