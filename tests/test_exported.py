"""Exported programs kept between processes (``jaxem/_src/exported.py``): the same
results as the jitted functions, bit for bit, and nothing of jaxem traced when a
kept program is read back."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxem
from jaxem._src import algorithms, engine, exported, loop, padded_prepare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _leaves(tree):
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(tree)]


def _count(folder):
    return sum(name.endswith(".exported") for _, _, names in os.walk(folder) for name in names)


def _identical(a, b):
    return all(x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True) for x, y in zip(_leaves(a), _leaves(b)))


@pytest.fixture
def kept(tmp_path, monkeypatch):
    """Exported programs kept in ``tmp_path``, none loaded yet in this process."""
    monkeypatch.setattr(exported, "directory", lambda: str(tmp_path))
    monkeypatch.setattr(exported, "_LOADED", {})
    return tmp_path


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_kept_fit_and_its_scores_equal_the_jitted_ones(kept, monkeypatch, dtype):
    x = np.asarray(jaxem.load_dataset("faithful")[0], dtype)
    model = jaxem.models.gaussian_mixture(2)
    result = jaxem.fit(model, x, key=0, n_restarts=3, max_iter=20)
    bic = jaxem.bic(model, result.params, x)
    assert {name for _, _, names in os.walk(kept) for name in names if name.endswith(".exported")}, "nothing kept"

    # a new process: read back, not exported again
    monkeypatch.setattr(exported, "_LOADED", {})
    monkeypatch.setattr(jax.export, "export", lambda *a, **k: pytest.fail("exported again instead of read back"))
    again = jaxem.fit(model, x, key=0, n_restarts=3, max_iter=20)
    assert _identical(again, result)
    assert _identical(jaxem.bic(model, again.params, x), bic)

    # the jitted functions themselves
    prepared, weights = padded_prepare.prepare_padded(model, x, None)
    keys = jax.random.split(jax.random.key(0), 3)
    direct = loop.fit_restarts(model, prepared, keys, None, weights, np.asarray(1e-3, prepared.stats.dtype),
                               make_algorithm=algorithms.resolve("em"), max_iter=20)
    assert _identical(direct, result)
    n_params = jaxem.n_parameters(model, result.params)
    assert _identical(engine._scores(model, result.params, x, None, n_params)[1], bic)
    assert bic.dtype == dtype


def test_only_programs_that_can_be_rebuilt_are_kept(kept):
    x = np.zeros((20, 2), np.float32)
    model = jaxem.models.gaussian_mixture(2)
    key = exported.key_of("scores", model, (x,), {})
    assert key is not None and key == exported.key_of("scores", jaxem.models.gaussian_mixture(2), (x,), {})
    assert key != exported.key_of("scores", jaxem.models.gaussian_mixture(3), (x,), {})
    assert key != exported.key_of("scores", model, (x[:10],), {})
    assert key != exported.key_of("scores", model, (x.astype(np.float64),), {}) or not jax.config.jax_enable_x64
    assert key != exported.key_of("posterior", model, (x,), {})
    assert exported.key_of("scores", model, (x,), {"max_iter": 5}) != exported.key_of("scores", model, (x,), {"max_iter": 6})
    # a user's model, a static of the user's, a traced argument: not kept
    assert exported.key_of("scores", model._replace(spec=None), (x,), {}) is None
    assert exported.key_of("scores", model._replace(init=lambda key, x: None), (x,), {}) is None  # not as its spec builds it
    assert exported.key_of("fit", model, (x,), {"make_algorithm": lambda update: update}) is None
    assert exported.key_of("fit", model, (x,), {"make_algorithm": algorithms.resolve("em")}) is not None
    seen = []
    jax.jit(lambda x: seen.append(exported.key_of("scores", model, (x,), {})) or x)(x)
    assert seen == [None]


def test_a_user_model_and_traced_data_run_as_before(kept):
    x = np.asarray(jaxem.load_dataset("faithful")[0], np.float32)
    model = jaxem.models.gaussian_mixture(2)
    result = jaxem.fit(model, x, key=0, max_iter=5, tol=0.0)
    n_kept = _count(kept)
    traced = jax.jit(lambda x: jaxem.log_likelihood(model, result.params, x))(x)
    assert _count(kept) == n_kept  # traced: run as before, nothing kept
    assert np.allclose(traced, jaxem.log_likelihood(model, result.params, x), rtol=1e-6)
    assert _count(kept) == n_kept + 2  # the untraced log_likelihood and its float32 evaluability check
    user = model._replace(spec=None)  # not rebuilt from a spec: not kept (and prepared unpadded)
    assert np.allclose(jaxem.fit(user, x, key=0, max_iter=5, tol=0.0).log_likelihood, result.log_likelihood, rtol=1e-5)
    assert _count(kept) == n_kept + 2


def test_an_unreadable_file_is_exported_again(kept):
    x = np.asarray(jaxem.load_dataset("faithful")[0], np.float32)
    model = jaxem.models.gaussian_mixture(2)
    result = jaxem.fit(model, x, key=0, max_iter=5, tol=0.0)
    files = [os.path.join(folder, name) for folder, _, names in os.walk(kept) for name in names]
    for path in files:
        with open(path, "wb") as handle:
            handle.write(b"not a pickle")
    exported._LOADED.clear()
    assert _identical(jaxem.fit(model, x, key=0, max_iter=5, tol=0.0), result)
    assert all(os.path.getsize(path) > 100 for path in files)  # written again


PROCESS = """
import json, jax
jax.config.update("jax_enable_x64", True)
import numpy as np, jaxem
from jaxem._src import loop
traced = []
original = loop.restart_states
loop.restart_states = lambda *a, **k: traced.append(1) or original(*a, **k)
x = np.asarray(jaxem.load_dataset("faithful")[0], np.float64)
model = jaxem.models.gaussian_mixture(3)
result = jaxem.fit(model, x, key=0, n_restarts=2, max_iter=10)
bic = jaxem.bic(model, result.params, x)
leaves = [np.asarray(leaf).tobytes().hex() for leaf in jax.tree_util.tree_leaves((result, bic))]
print("RESULT" + json.dumps({"leaves": leaves, "traced": len(traced)}))
"""


def _process(env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE_DIR", "JAXEM_COMPILATION_CACHE"))}
    env.update(env_extra, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", PROCESS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.split("RESULT", 1)[1])


@pytest.mark.slow
def test_a_second_process_traces_nothing_and_gets_the_same_bits(tmp_path):
    plain = _process({"JAXEM_COMPILATION_CACHE": "0"})
    first = _process({"XDG_CACHE_HOME": str(tmp_path)})
    second = _process({"XDG_CACHE_HOME": str(tmp_path)})
    assert plain["traced"] == first["traced"] == 1
    assert second["traced"] == 0  # the fit was read back, not traced
    assert first["leaves"] == plain["leaves"] and second["leaves"] == plain["leaves"]


def test_the_float32_evaluability_check_still_refuses_when_kept(kept, monkeypatch):
    model = jaxem.models.gaussian_mixture(1)
    far = jaxem.models.gaussian_mixture_params([1.0], [[0.0]], [[[1.0]]])
    x = np.array([[1.3e29], [-1.2e29]], np.float32)
    for _ in range(2):  # exported and kept, then read back in a "new process"
        with pytest.raises(ValueError, match="overflow; use float64"):
            jaxem.bic(model, far, x)
        monkeypatch.setattr(exported, "_LOADED", {})
    assert _count(kept) >= 1
    assert np.isfinite(jaxem.bic(model, far, np.array([[1.0], [-1.0]], np.float32)))


def test_a_kept_fit_with_progress_equals_the_jitted_one(kept, monkeypatch):
    x = np.asarray(jaxem.load_dataset("faithful")[0], np.float32)
    model = jaxem.models.gaussian_mixture(2)
    fit = dict(key=0, n_restarts=2, max_iter=12, progress=lambda info: None)
    monkeypatch.setattr(exported, "directory", lambda: None)  # the jitted functions
    direct = jaxem.fit(model, x, **fit)
    monkeypatch.setattr(exported, "directory", lambda: str(kept))
    first = jaxem.fit(model, x, **fit)
    monkeypatch.setattr(exported, "_LOADED", {})
    monkeypatch.setattr(jax.export, "export", lambda *a, **k: pytest.fail("exported again instead of read back"))
    again = jaxem.fit(model, x, **fit)
    assert _identical(first, direct) and _identical(again, direct)


def test_a_program_that_cannot_be_exported_runs_as_before(kept, monkeypatch):
    x = np.asarray(jaxem.load_dataset("faithful")[0], np.float32)
    model = jaxem.models.gaussian_mixture(2)
    monkeypatch.setattr(exported, "directory", lambda: None)
    direct = jaxem.fit(model, x, key=0, max_iter=5, tol=0.0)
    monkeypatch.setattr(exported, "directory", lambda: str(kept))

    def refuse(*args, **kwargs):
        raise ValueError("custom call not allowed in export")

    monkeypatch.setattr(jax.export, "export", refuse)
    monkeypatch.setattr(exported, "_UNEXPORTABLE", set())
    assert _identical(jaxem.fit(model, x, key=0, max_iter=5, tol=0.0), direct)
    assert _count(kept) == 0 and exported._UNEXPORTABLE
