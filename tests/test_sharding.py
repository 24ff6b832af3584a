"""Data sharded over 4 (forced host) devices: the fit equals the single-device fit.

The device count must be set before JAX starts, so the check runs in a subprocess
with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    import jax.numpy as jnp
    import numpy as np
    jax.config.update("jax_enable_x64", True)
    sys.path.insert(0, ".")
    import jaxem
    from tests.helpers import blobs

    assert jax.device_count() == 4, jax.devices()
    x, *_ = blobs(8, n=1000)
    out = {}
    for covariance_type in ["full", "diag"]:
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
        out[covariance_type] = {
            "history": [np.asarray(a.history).tolist(), np.asarray(b.history).tolist()],
            "means": [np.asarray(a.all_params.means).tolist(), np.asarray(b.all_params.means).tolist()],
            "factor": [np.asarray(a.all_params.precisions_cholesky).tolist(), np.asarray(b.all_params.precisions_cholesky).tolist()],
            "step_ll": [float(step_a[1]), float(step_b[1])],
            "n_devices_result": len(b.params.means.sharding.device_set),
        }
    print("RESULT" + json.dumps(out))
    """
)


def test_sharded_fit_equals_single_device_fit():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", PYTHONPATH=root)
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT", 1)[1])
    for covariance_type, r in out.items():
        np.testing.assert_allclose(r["history"][1], r["history"][0], rtol=1e-10, err_msg=covariance_type)
        np.testing.assert_allclose(r["means"][1], r["means"][0], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(r["factor"][1], r["factor"][0], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(r["step_ll"][1], r["step_ll"][0], rtol=1e-12)


def test_shard_rows_needs_a_multiple_of_the_device_count():
    import jax
    import pytest

    import jaxem

    model = jaxem.models.gaussian_mixture(2)
    x = np.random.default_rng(0).normal(size=(10, 2))
    mesh = jaxem.data_mesh(jax.devices()[:1])
    features = jaxem.shard_rows(model, x, mesh=mesh)
    assert features.stats.shape == (10, 6)
    with pytest.raises(ValueError, match="axis_name"):
        jaxem.shard_rows(model, x, mesh=mesh, axis_name="rows")
