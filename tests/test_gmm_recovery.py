"""Parameter recovery, float32 stability and collapsing components."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxem
from tests.helpers import blobs


def _match(estimated_means, true_means):
    """Permutation of estimated components closest to the true ones."""
    distances = np.linalg.norm(estimated_means[:, None, :] - true_means[None, :, :], axis=2)
    return np.argmin(distances, axis=0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_recovers_well_separated_components(dtype):
    x, labels, weights, means, covs = blobs(3, n=3000)
    model = jaxem.models.gaussian_mixture(3)
    result = jaxem.fit(model, x.astype(dtype), key=jax.random.key(0), n_restarts=8, max_iter=200)
    assert result.params.means.dtype == dtype
    order = _match(np.asarray(result.params.means, np.float64), means)
    assert sorted(order) == [0, 1, 2]
    # Tolerances: a few standard errors at n = 3000.
    np.testing.assert_allclose(np.asarray(result.params.weights)[order], weights, atol=0.03)
    np.testing.assert_allclose(np.asarray(result.params.means)[order], means, atol=0.15)
    covs_hat = np.asarray(jaxem.models.covariances(result.params), np.float64)[order]
    np.testing.assert_allclose(covs_hat, covs, atol=0.25 * np.abs(covs).max())
    agreement = np.mean(np.asarray(jaxem.predict(model, result.params, x.astype(dtype))) == order[labels])  # fitted component order[i] is true component i
    assert agreement > 0.97


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_float32_matches_float64_on_offset_data(covariance_type):
    x, *_ = blobs(4, n=1000)
    x = x * np.array([1.0, 30.0, 0.3]) + 1e4  # a large offset and unequal scales
    # Compare on the same (float32-representable) data: rounding the input itself
    # is not the algorithm's error.
    x = x.astype(np.float32).astype(np.float64)
    model = jaxem.models.gaussian_mixture(3, covariance_type=covariance_type)
    start = jaxem.init(model, jax.random.key(1), x)
    result64 = jaxem.fit(model, x, key=jax.random.key(0), init_params=start, max_iter=30, tol=0.0)
    start32 = jax.tree_util.tree_map(lambda leaf: leaf.astype(jnp.float32), start)
    result32 = jaxem.fit(model, x.astype(np.float32), key=jax.random.key(0), init_params=start32, max_iter=30, tol=0.0)
    assert result32.log_likelihood.dtype == jnp.float32
    per_sample_gap = abs(float(result32.log_likelihood) - float(result64.log_likelihood)) / len(x)
    assert per_sample_gap < 1e-4
    np.testing.assert_allclose(np.asarray(result32.params.means, np.float64), np.asarray(result64.params.means), rtol=1e-5)


def test_empty_component_stays_finite():
    x, *_ = blobs(5, n=200)
    model = jaxem.models.gaussian_mixture(4)
    params = jaxem.init(model, jax.random.key(0), x)
    # Move one component far away: it gets (numerically) no responsibility.
    params = params._replace(means=params.means.at[3].set(1e6))
    for dtype in (jnp.float64, jnp.float32):
        p = jax.tree_util.tree_map(lambda leaf: leaf.astype(dtype), params)
        for _ in range(5):
            p, log_lik = jaxem.em_step(model, p, x.astype(dtype))
            assert np.isfinite(float(log_lik))
        assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(p))
        assert float(p.weights[3]) < 1e-5


def test_duplicated_points_and_more_components_than_distinct_points():
    x = np.repeat(np.array([[0.0, 1.0], [2.0, 2.0]]), 20, axis=0).astype(np.float32)
    model = jaxem.models.gaussian_mixture(4)
    result = jaxem.fit(model, x, key=jax.random.key(0), n_restarts=4, max_iter=50)
    assert np.isfinite(float(result.log_likelihood))
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(result.params))


def test_sampled_data_has_model_moments():
    model = jaxem.models.gaussian_mixture(2)
    params = jaxem.models.gaussian_mixture_params(
        [0.3, 0.7], [[0.0, 0.0], [5.0, -1.0]], [[[1.0, 0.5], [0.5, 2.0]], [[0.5, 0.0], [0.0, 0.2]]]
    )
    x, z = jaxem.sample(model, params, jax.random.key(0), 20000)
    x, z = np.asarray(x), np.asarray(z)
    assert abs(np.mean(z == 0) - 0.3) < 0.015
    np.testing.assert_allclose(x[z == 0].mean(0), [0.0, 0.0], atol=0.05)
    np.testing.assert_allclose(np.cov(x[z == 0].T), [[1.0, 0.5], [0.5, 2.0]], atol=0.08)
    np.testing.assert_allclose(np.cov(x[z == 1].T), [[0.5, 0.0], [0.0, 0.2]], atol=0.03)
