"""jaxem.save / jaxem.load: bit-exact round trips, atomic writes, clear errors, resuming."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxem
from jaxem._src import io as jaxem_io
from tests.helpers import blobs

X = blobs(0, n=200)[0]


def _assert_bit_exact(a, b):
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for la, lb in zip(leaves_a, leaves_b):
        la, lb = np.asarray(la), np.asarray(lb)
        assert la.dtype == lb.dtype and la.shape == lb.shape and la.tobytes() == lb.tobytes()


_RNG = np.random.default_rng(1)


def _gaussian_mixture_case(t):
    return pytest.param(
        "gaussian_mixture",
        lambda: jaxem.models.gaussian_mixture(3, covariance_type=t, reg_covar=1e-4, init="random_from_data"),
        X,
        id=f"gaussian_mixture-{t}",
    )


# Every built-in model factory (with non-default options, so that a lost option
# shows) and data for it.
BUILT_IN_MODELS = [_gaussian_mixture_case(t) for t in ("full", "tied", "diag", "spherical")] + [
    pytest.param("bernoulli_mixture", lambda: jaxem.models.bernoulli_mixture(2), _RNG.integers(0, 2, (50, 4)), id="bernoulli_mixture"),
    pytest.param(
        "categorical_mixture",
        lambda: jaxem.models.categorical_mixture(2, n_trials=3),
        _RNG.multinomial(3, [0.2, 0.3, 0.5], size=50),
        id="categorical_mixture",
    ),
    pytest.param("poisson_mixture", lambda: jaxem.models.poisson_mixture(2), _RNG.poisson(3.0, (50, 2)), id="poisson_mixture"),
    pytest.param(
        "gaussian_hmm",
        lambda: jaxem.models.gaussian_hmm(2, covariance_type="full", transition_mask=np.triu(np.ones((2, 2), bool))),
        _RNG.normal(size=(60, 2)),
        id="gaussian_hmm",
    ),
    pytest.param("categorical_hmm", lambda: jaxem.models.categorical_hmm(2, 3, parallel=True), _RNG.integers(0, 3, 60), id="categorical_hmm"),
    pytest.param("poisson_hmm", lambda: jaxem.models.poisson_hmm(2), _RNG.poisson(3.0, 60), id="poisson_hmm"),
    pytest.param("gmm_hmm", lambda: jaxem.models.gmm_hmm(2, 2, covariance_type="diag"), _RNG.normal(size=(60, 2)), id="gmm_hmm"),
    pytest.param("bernoulli_hmm", lambda: jaxem.models.bernoulli_hmm(2), _RNG.integers(0, 2, (60, 3)), id="bernoulli_hmm"),
    pytest.param(
        "multinomial_hmm", lambda: jaxem.models.multinomial_hmm(2, n_trials=4), _RNG.multinomial(4, [0.2, 0.3, 0.5], size=60), id="multinomial_hmm"
    ),
    pytest.param(
        "ar_hmm", lambda: jaxem.models.ar_hmm(2, order=2, covariance_type="diag", reg_covar=1e-4), _RNG.normal(size=(60, 2)), id="ar_hmm"
    ),
    pytest.param("factor_analysis", lambda: jaxem.models.factor_analysis(2, min_noise_variance=1e-4), _RNG.normal(size=(50, 4)), id="factor_analysis"),
    pytest.param("ppca", lambda: jaxem.models.ppca(1), _RNG.normal(size=(50, 3)), id="ppca"),
    pytest.param(
        "mixture_of_factor_analyzers", lambda: jaxem.models.mixture_of_factor_analyzers(2, 1), _RNG.normal(size=(50, 3)), id="mfa"
    ),
    pytest.param("mixture_of_ppca", lambda: jaxem.models.mixture_of_ppca(2, 1), _RNG.normal(size=(50, 3)), id="mixture_of_ppca"),
    pytest.param("lgssm", lambda: jaxem.models.lgssm(2, reg_covar=1e-4), _RNG.normal(size=(40, 2)), id="lgssm"),
    pytest.param(
        "regression_mixture",
        lambda: jaxem.models.regression_mixture(2, fit_intercept=False, reg_variance=1e-3),
        (_RNG.normal(size=(50, 2)), _RNG.normal(size=50)),
        id="regression_mixture",
    ),
    pytest.param("mixture_of_experts", lambda: jaxem.models.mixture_of_experts(2, inner_steps=5), (_RNG.normal(size=(50, 2)), _RNG.normal(size=50)), id="mixture_of_experts"),
    pytest.param("student_t_mixture", lambda: jaxem.models.student_t_mixture(2, covariance_type="diag", dof=4.0), _RNG.normal(size=(50, 2)), id="student_t_mixture"),
]


def _as_dtype(data, dtype):
    if isinstance(data, tuple):
        return tuple(_as_dtype(d, dtype) for d in data)
    return data.astype(dtype) if np.issubdtype(data.dtype, np.floating) else data


@pytest.mark.parametrize("dtype", [np.float64, pytest.param(np.float32, marks=pytest.mark.slow)])
@pytest.mark.parametrize("name, make, data", BUILT_IN_MODELS)
def test_round_trip_is_bit_exact(tmp_path, name, make, data, dtype):
    model = make()
    data = _as_dtype(data, dtype)
    params = jaxem.init(model, 0, data)
    path = tmp_path / "model.npz"
    jaxem.save(path, model, params)
    loaded_model, loaded = jaxem.load(path)
    _assert_bit_exact(params, loaded)
    assert type(loaded) is type(params)
    assert loaded_model.spec == model.spec and loaded_model.spec.factory == name
    assert float(jaxem.log_likelihood(loaded_model, loaded, data)) == float(jaxem.log_likelihood(model, params, data))
    # the file is a plain .npz a user can read without jaxem
    with np.load(path) as raw:
        first = params._fields[0]
        np.testing.assert_array_equal(raw[first], np.asarray(getattr(params, first)))


def test_every_registered_factory_is_covered():
    from jaxem._src.registry import _FACTORIES

    built_in = {name for name, factory in _FACTORIES.items() if factory.__module__.startswith("jaxem.")}
    assert {p.values[0] for p in BUILT_IN_MODELS} >= built_in  # not the factories tests and examples register


def test_float32_round_trip_after_fit(tmp_path):
    model = jaxem.models.gaussian_mixture(2, covariance_type="diag")
    x = X.astype(np.float32)
    params = jaxem.fit(model, x, key=0, n_restarts=2, max_iter=5).params
    jaxem.save(tmp_path / "f32.npz", model, params)
    loaded_model, loaded = jaxem.load(tmp_path / "f32.npz")
    _assert_bit_exact(params, loaded)
    assert loaded.means.dtype == jnp.float32 and loaded_model.spec == model.spec


def test_nested_params_and_custom_registered_factory(tmp_path):
    @jaxem.register_model("test_pair")
    def pair(n_components, *, sizes=(1, 2)):
        return jaxem.models.gaussian_mixture(n_components)

    model = pair(2, sizes=[3, 4])
    assert model.spec.as_dict() == {"n_components": 2, "sizes": (3, 4)}
    params = jaxem.init(model, 0, X)
    jaxem.save(tmp_path / "m.npz", model, params)
    loaded_model, loaded = jaxem.load(tmp_path / "m.npz")
    assert loaded_model.spec == model.spec
    _assert_bit_exact(params, loaded)
    # any nested pytree is encoded bit-exactly...
    tree = {"gmm": params, "extra": [np.arange(3, dtype=np.int32), None, (np.float32(2.5),)]}
    arrays = {}
    decoded = jaxem_io._decode(jaxem_io._encode(tree, arrays, ""), arrays)
    assert isinstance(decoded["extra"], list) and decoded["extra"][1] is None
    _assert_bit_exact(tree, decoded)
    # ...but load checks the params against the model: a tree it does not take is refused
    jaxem.save(tmp_path / "p.npz", model, tree)
    with pytest.raises(ValueError, match="do not fit the model"):
        jaxem.load(tmp_path / "p.npz")


def test_interrupted_save_leaves_previous_file_intact(tmp_path, monkeypatch):
    model = jaxem.models.gaussian_mixture(2)
    old = jaxem.init(model, 0, X)
    path = tmp_path / "params.npz"
    jaxem.save(path, model, old)
    before = path.read_bytes()

    def write_half_then_die(file, arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of the write

    monkeypatch.setattr(jaxem_io, "_write_npz", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        jaxem.save(path, model, jaxem.init(model, 1, X))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["params.npz"]  # no temporary file left behind
    _assert_bit_exact(jaxem.load(path)[1], old)


def _rewrite_header(path, change):
    with np.load(path) as raw:
        arrays = {k: raw[k] for k in raw.files}
    header = json.loads(str(arrays["__jaxem__"]))
    change(header)
    arrays["__jaxem__"] = np.asarray(json.dumps(header))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_clear_errors(tmp_path):
    model = jaxem.models.gaussian_mixture(2)
    params = jaxem.init(model, 0, X)
    path = tmp_path / "p.npz"
    jaxem.save(path, model, params)
    with pytest.raises(ValueError, match=r"holds model gaussian_mixture\(.*n_components=2"):
        jaxem.load(path, model=jaxem.models.gaussian_mixture(3))
    assert jaxem.load(path, model=jaxem.models.gaussian_mixture(2))[0].spec == model.spec

    newer = tmp_path / "newer.npz"
    jaxem.save(newer, model, params)
    _rewrite_header(newer, lambda h: h.update(format_version=99))
    with pytest.raises(ValueError, match="format version 99.*upgrade jaxem"):
        jaxem.load(newer)

    unknown = tmp_path / "unknown.npz"
    jaxem.save(unknown, model, params)
    _rewrite_header(unknown, lambda h: h["model"].update(factory="no_such_model"))
    with pytest.raises(ValueError, match="no model factory registered as 'no_such_model'"):
        jaxem.load(unknown)

    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a jaxem file"):
        jaxem.load(plain)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a jaxem file"):
        jaxem.load(text)

    no_spec = model._replace(spec=None)
    with pytest.raises(ValueError, match="no spec"):
        jaxem.save(tmp_path / "x.npz", no_spec, params)
    with pytest.raises(TypeError, match="model must be a jaxem Model"):
        jaxem.save(tmp_path / "x.npz", "model", params)
    with pytest.raises(TypeError, match="only numeric arrays"):
        jaxem.save(tmp_path / "x.npz", model, params._replace(weights="abc"))


def test_fit_resumes_from_saved_params(tmp_path):
    model = jaxem.models.gaussian_mixture(3)
    straight = jaxem.fit(model, X, key=4, max_iter=12, tol=0.0)
    first = jaxem.fit(model, X, key=4, max_iter=5, tol=0.0)
    jaxem.save(tmp_path / "ckpt.npz", model, first.params)
    model2, saved = jaxem.load(tmp_path / "ckpt.npz")
    resumed = jaxem.fit(model2, X, key=123, max_iter=7, tol=0.0, init_params=saved)
    for a, b in zip(jax.tree_util.tree_leaves(straight.params), jax.tree_util.tree_leaves(resumed.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(resumed.history[0]), np.asarray(straight.history[0, 5:]), rtol=1e-10)
    assert resumed.params.means.dtype == jnp.float64
