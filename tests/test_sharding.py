"""Data sharded over 4 CPU devices (tests/conftest.py sets ``jax_num_cpu_devices``):
the fit equals the single-device fit, in-process under strict promotion."""

import jax
import numpy as np
import pytest

import jaxem
from tests.helpers import blobs


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_sharded_fit_equals_single_device_fit(covariance_type):
    assert jax.device_count() == 4, jax.devices()
    x, *_ = blobs(8, n=1000)
    model = jaxem.models.gaussian_mixture(3, covariance_type=covariance_type)
    single = jax.device_put(model.prepare(x), jax.devices()[0])
    sharded = jaxem.shard_rows(model, x)
    assert len(sharded.stats.sharding.device_set) == 4
    assert sharded.stats.addressable_shards[0].data.shape[0] == 250
    a = jaxem.fit(model, single, key=3, n_restarts=2, max_iter=40, tol=0.0)
    b = jaxem.fit(model, sharded, key=3, n_restarts=2, max_iter=40, tol=0.0)
    start = jax.tree_util.tree_map(np.asarray, a.params)  # uncommitted: placed as needed
    step_a = jaxem.em_step(model, start, single)
    step_b = jaxem.em_step(model, start, sharded)
    # every restart is compared (two restarts may reach one optimum with permuted
    # labels, so which one is "best" can flip on a rounding difference)
    np.testing.assert_allclose(np.asarray(b.history), np.asarray(a.history), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(b.all_params.means), np.asarray(a.all_params.means), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        np.asarray(b.all_params.precisions_cholesky), np.asarray(a.all_params.precisions_cholesky), rtol=1e-8, atol=1e-10
    )
    np.testing.assert_allclose(float(step_b[1]), float(step_a[1]), rtol=1e-12)


def test_shard_rows_refuses_a_model_without_additive_statistics():
    x = np.random.default_rng(0).normal(size=(8, 2))
    model = jaxem.models.gaussian_mixture(2)
    generic = model._replace(m_step=lambda data, posterior, params: params)
    with pytest.raises(ValueError, match="shard_rows"):
        jaxem.shard_rows(generic, x)


def test_shard_rows_needs_a_multiple_of_the_device_count():
    model = jaxem.models.gaussian_mixture(2)
    x = np.random.default_rng(0).normal(size=(10, 2))
    mesh = jaxem.data_mesh(jax.devices()[:1])
    features = jaxem.shard_rows(model, x, mesh=mesh)
    assert features.stats.shape == (10, 6)
    with pytest.raises(ValueError, match="axis_name"):
        jaxem.shard_rows(model, x, mesh=mesh, axis_name="rows")
