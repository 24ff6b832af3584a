"""Model identity and the persistent compilation cache (compile once, fit instantly)."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxem

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FIT = """
import json, os, jax, jaxem
x, _ = jaxem.load_dataset("faithful")
result = jaxem.fit(jaxem.models.gaussian_mixture(2), x, key=0, n_restarts=2, max_iter=5)
print("RESULT" + json.dumps({"dir": jaxem.COMPILATION_CACHE_DIR, "config": jax.config.jax_compilation_cache_dir,
                             "ll": float(result.log_likelihood)}))
"""


def _run(env_extra, script=FIT):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE_DIR", "JAXEM_COMPILATION_CACHE"))}
    env.update(env_extra, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.split("RESULT", 1)[1])


def _files(directory):
    return {name for _, _, names in os.walk(directory) for name in names}


def test_models_built_from_equal_options_are_one_object():
    a = jaxem.models.gaussian_mixture(3, covariance_type="diag")
    assert a is jaxem.models.gaussian_mixture(3, covariance_type="diag")
    assert a == jaxem.models.gaussian_mixture(n_components=3, covariance_type="diag", reg_covar=1e-6)
    assert a != jaxem.models.gaussian_mixture(3)
    assert jaxem.models.poisson_hmm(2) is jaxem.models.poisson_hmm(2)
    mask = np.triu(np.ones((3, 3), bool))
    assert jaxem.models.gaussian_hmm(3, transition_mask=mask) is jaxem.models.gaussian_hmm(3, transition_mask=mask.copy())


def test_user_models_from_the_same_functions_are_equal():
    def log_prob(c, x):
        return -0.5 * jnp.sum((x - c["loc"]) ** 2)

    def init(key, x):
        return {"loc": x[jax.random.randint(key, (), 0, x.shape[0])]}

    one = jaxem.models.mixture(log_prob, init, n_components=2, constraints={"loc": None})
    assert one is jaxem.models.mixture(log_prob, init, n_components=2, constraints={"loc": None})
    assert one is not jaxem.models.mixture(log_prob, init, n_components=3, constraints={"loc": None})


def test_a_rebuilt_model_reuses_the_compiled_fit():
    x = np.random.default_rng(0).normal(size=(40, 2))
    jaxem.fit(jaxem.models.gaussian_mixture(2, reg_covar=2e-6), x, key=0, max_iter=3)
    before = jaxem._src.loop.fit_restarts._cache_size()
    jaxem.fit(jaxem.models.gaussian_mixture(2, reg_covar=2e-6), x, key=0, max_iter=3)  # a "re-run cell"
    assert jaxem._src.loop.fit_restarts._cache_size() == before


def test_a_second_process_compiles_nothing(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    first = _run(env)
    assert first["dir"] == first["config"] == str(tmp_path / "jaxem" / "jax")
    stored = _files(first["dir"])
    assert stored, "nothing was written to the persistent cache"
    second = _run(env)
    assert _files(first["dir"]) == stored  # every program was read back, none compiled anew
    assert second["ll"] == first["ll"]


@pytest.mark.slow
def test_the_users_cache_setting_and_the_off_switch_are_honoured(tmp_path):
    mine = str(tmp_path / "mine")
    assert _run({"JAX_COMPILATION_CACHE_DIR": mine, "XDG_CACHE_HOME": str(tmp_path)})["dir"] == mine
    off = _run({"JAXEM_COMPILATION_CACHE": "0", "XDG_CACHE_HOME": str(tmp_path / "off")})
    assert off["dir"] is None and off["config"] is None
    assert not (tmp_path / "off").exists()
