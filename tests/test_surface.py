"""What a user sees: short reprs, the ConvergenceWarning, save/load of damaged or
foreign files, and clear errors for the traps new users fell into (issue 17)."""

import json
import os
import stat
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxem
from tests.helpers import blobs

X = blobs(0, n=120)[0]
COUNTS = np.random.default_rng(0).poisson(3.0, size=(80, 2))


def _poisson():
    return jaxem.models.poisson_mixture(2), jaxem.models.poisson_mixture_params([0.4, 0.6], [[1.0, 2.0], [5.0, 6.0]])


# ----------------------------------------------------------------------------- reprs


def test_fit_result_repr_is_short_and_says_what_matters():
    result = jaxem.fit(jaxem.models.gaussian_mixture(2), X, key=0, n_restarts=4, max_iter=200)
    text = repr(result)
    assert len(text) < 600, text
    assert "log_likelihood=" in text and "/4 restarts" in text and "history=[4,200]" in text
    assert "nan" not in text.lower()
    assert "GaussianMixtureParams(weights=f" in text


def test_fit_result_repr_under_jit_does_not_fail():
    seen = []

    def fit(x):
        result = jaxem.fit(jaxem.models.gaussian_mixture(2), x, key=0, n_restarts=2, max_iter=5)
        seen.append(repr(result))
        return result.log_likelihood

    jax.jit(fit)(X)
    assert "(traced)" in seen[0]


def test_model_repr_shows_factory_and_options():
    text = repr(jaxem.models.gaussian_mixture(3, covariance_type="diag"))
    assert text.startswith("Model(gaussian_mixture(") and "covariance_type='diag'" in text and "n_components=3" in text
    assert "0x" not in text  # no function addresses
    frozen = jaxem.freeze(jaxem.models.poisson_mixture(2), "weights")
    assert repr(frozen).startswith("Model(freeze(poisson_mixture(") and "n_components=2" in repr(frozen)
    assert repr(frozen).endswith("), 'weights'))")


def test_params_repr_shows_shapes_and_a_few_values():
    _, params = _poisson()
    text = repr(params)
    dtype = "f64" if jax.config.jax_enable_x64 else "f32"
    assert text.startswith(f"PoissonMixtureParams(weights={dtype}[2] [0.4 0.6], rates={dtype}[2,2]"), text
    big = jaxem.models.poisson_mixture_params(np.full(50, 0.02), np.arange(1.0, 101.0).reshape(50, 2))
    assert f"rates={dtype}[50,2] 1..100" in repr(big)


# ------------------------------------------------------------------------ warnings


def test_fit_warns_when_no_restart_converged():
    with pytest.warns(jaxem.ConvergenceWarning, match="no restart .* converged"):
        jaxem.fit(jaxem.models.gaussian_mixture(3), X, key=0, n_restarts=2, max_iter=1, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", jaxem.ConvergenceWarning)
        jaxem.fit(jaxem.models.gaussian_mixture(2), X, key=0, n_restarts=2, max_iter=300)


def test_convergence_warning_is_sklearns_subclass():
    sklearn_exceptions = pytest.importorskip("sklearn.exceptions")
    assert issubclass(jaxem.ConvergenceWarning, sklearn_exceptions.ConvergenceWarning)
    assert jaxem.ConvergenceWarning is jaxem.ConvergenceWarning  # one class per process


def test_estimator_warns_once_in_its_own_words():
    from jaxem.sklearn import GaussianMixture

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        GaussianMixture(3, max_iter=1, tol=0.0, random_state=0).fit(np.asarray(X))
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len([m for m in messages if "converge" in m.lower()]) == 1, messages


# ------------------------------------------------------------------------ save / load


def test_save_load_keeps_a_freeze(tmp_path):
    model, params = _poisson()
    frozen = jaxem.freeze(model, "weights")
    assert jaxem.freeze(model, "weights") is frozen  # identity: compiled programs are reused
    jaxem.save(tmp_path / "f.npz", frozen, params)
    loaded, _ = jaxem.load(tmp_path / "f.npz")
    assert loaded is frozen
    result = jaxem.fit(loaded, COUNTS, key=0, init_params=params, max_iter=20)
    np.testing.assert_array_equal(result.params.weights, params.weights)


def test_save_load_keeps_an_array_mask(tmp_path):
    model, params = _poisson()
    mask = jaxem.models.PoissonMixtureParams(weights=False, rates=np.array([[True, False], [False, False]]))
    jaxem.save(tmp_path / "m.npz", jaxem.freeze(model, mask), params)
    loaded, _ = jaxem.load(tmp_path / "m.npz")
    result = jaxem.fit(loaded, COUNTS, key=0, init_params=params, max_iter=20)
    assert float(result.params.rates[0, 0]) == float(params.rates[0, 0])
    assert float(result.params.rates[1, 1]) != float(params.rates[1, 1])


def test_save_a_fit_result_with_its_history(tmp_path):
    model = jaxem.models.poisson_mixture(2)
    result = jaxem.fit(model, COUNTS, key=0, n_restarts=3)
    jaxem.save(tmp_path / "r.npz", model, result, history=True)
    loaded, params, traces = jaxem.load(tmp_path / "r.npz", history=True)
    np.testing.assert_array_equal(params.rates, result.params.rates)
    np.testing.assert_array_equal(traces["n_iter"], result.n_iter)
    with pytest.raises(ValueError, match="holds no fit history"):
        jaxem.save(tmp_path / "p.npz", model, result.params)
        jaxem.load(tmp_path / "p.npz", history=True)
    with pytest.raises(ValueError, match="history=True needs a FitResult"):
        jaxem.save(tmp_path / "q.npz", model, result.params, history=True)


def test_load_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        jaxem.load(tmp_path / "absent.npz")


@pytest.mark.parametrize("damage", ["empty", "truncated", "not_npz", "bad_json", "missing_leaf", "forged_header"])
def test_load_damaged_or_foreign_file_is_value_error(tmp_path, damage):
    model, params = _poisson()
    good = tmp_path / "good.npz"
    jaxem.save(good, model, params)
    bad = tmp_path / "bad.npz"
    header = json.loads(str(np.load(good)["__jaxem__"]))
    if damage == "empty":
        bad.write_bytes(b"")
    elif damage == "truncated":
        bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    elif damage == "not_npz":
        bad.write_text("eruptions,waiting\n3.6,79\n")
    elif damage == "bad_json":
        np.savez(bad, __jaxem__=np.asarray("{not json"))
    elif damage == "missing_leaf":
        np.savez(bad, __jaxem__=np.asarray(json.dumps(header)), weights=np.asarray(params.weights))
    elif damage == "forged_header":
        np.savez(bad, __jaxem__=np.asarray(json.dumps({"format": "jaxem", "format_version": 1, "model": 3})))
    with open(bad, "rb") as file:
        file.read()
    with pytest.raises(ValueError, match="bad.npz"):
        jaxem.load(bad)


def test_load_checks_params_against_the_model(tmp_path):
    model, params = _poisson()
    jaxem.save(tmp_path / "w.npz", model, params._replace(weights=jnp.asarray([0.5, 0.9])))
    with pytest.raises(ValueError, match="weights"):
        jaxem.load(tmp_path / "w.npz")


def test_save_refuses_a_read_only_file_and_keeps_modes(tmp_path):
    model, params = _poisson()
    target = tmp_path / "ro.npz"
    jaxem.save(target, model, params)
    os.chmod(target, 0o444)
    before = target.read_bytes()
    with pytest.raises(PermissionError, match="read-only"):
        jaxem.save(target, model, params._replace(weights=jnp.asarray([0.5, 0.5])))
    assert target.read_bytes() == before
    os.chmod(target, 0o640)
    jaxem.save(target, model, params)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["ro.npz"]  # no temporary file left


def test_save_removes_its_temporary_file_when_interrupted(tmp_path, monkeypatch):
    from jaxem._src import io as jaxem_io

    def interrupted(file, arrays):
        raise KeyboardInterrupt

    monkeypatch.setattr(jaxem_io, "_write_npz", interrupted)
    model, params = _poisson()
    with pytest.raises(KeyboardInterrupt):
        jaxem.save(tmp_path / "k.npz", model, params)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------ traps


def test_huge_sample_is_a_value_error_not_an_abort():
    model, params = _poisson()
    with pytest.raises(ValueError, match="n must be at most"):
        jaxem.sample(model, params, 0, 10**10)
    wide = jaxem.models.poisson_mixture_params([0.5, 0.5], np.ones((2, 20000)))
    with pytest.raises(ValueError, match="GiB"):
        jaxem.sample(model, wide, 0, 2 * 10**9)


@pytest.mark.parametrize("dtype", [np.float16, jnp.bfloat16])
def test_half_precision_data_is_a_type_error(dtype):
    with pytest.raises(TypeError, match="data has dtype .*float32"):
        jaxem.fit(jaxem.models.gaussian_mixture(2), np.asarray(X).astype(dtype), key=0)
    with pytest.raises(TypeError, match="data has dtype"):
        jaxem.fit(jaxem.models.poisson_mixture(2), COUNTS.astype(dtype), key=0)


def test_string_optimizer_or_constraint_is_a_type_error():
    log_prob = lambda c, x: -jnp.sum((x - c["loc"]) ** 2)  # noqa: E731
    init = lambda key, x: {"loc": x[0]}  # noqa: E731
    with pytest.raises(TypeError, match="optimizer must be an optax"):
        jaxem.models.mixture(log_prob, init, n_components=2, optimizer="adam")
    with pytest.raises(TypeError, match="constraints must hold jaxem.constraints"):
        jaxem.models.mixture(log_prob, init, n_components=2, constraints={"loc": "positive"})
    with pytest.raises(TypeError, match="optimizer must be an optax"):
        jaxem.gradient_m_step(lambda p, x: x, optimizer="lbfgs")


def test_every_built_in_params_type_has_the_short_repr():
    from jaxem._src.display import params_repr

    types = [getattr(jaxem.models, name) for name in dir(jaxem.models) if name.endswith("Params")]
    assert len(types) >= 9
    assert [t.__name__ for t in types if t.__repr__ is not params_repr] == []


# ------------------------------------------------------------------------ progress


def test_progress_reports_change_against_tol_and_time_per_iteration():
    from jaxem._src.progress import Progress

    seen = []

    class Recorder:
        every = 5

        def compiling(self):
            seen.append("compiling")

        def __call__(self, info: Progress):
            seen.append(info)

    jaxem.fit(jaxem.models.gaussian_mixture(2, init="kmeans++"), X, key=0, n_restarts=2, max_iter=40, tol=1e-6, progress=Recorder())
    assert seen[0] == "compiling"
    reports = seen[1:]
    assert reports and all(r.tol == pytest.approx(1e-6) for r in reports)
    assert reports[0].iteration == 5 and np.isfinite(reports[0].change) and reports[0].change > 0
    assert reports[-1].n_stopped == reports[-1].n_restarts or reports[-1].iteration == 40
    assert all(r.seconds_per_iteration >= 0 for r in reports)


def test_plain_progress_display_on_a_pipe_and_in_place_on_a_terminal():
    import io

    from jaxem._src.progress import ProgressDisplay

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, in_place in ((io.StringIO(), False), (Terminal(), True)):
        display = ProgressDisplay(5, file=stream, use_tqdm=False)
        display.compiling()
        jaxem.fit(jaxem.models.gaussian_mixture(2), X, key=0, n_restarts=2, max_iter=30, tol=1e-8, progress=display)
        text = stream.getvalue()
        assert "compiling" in text and "change" in text and "(tol 1e-08)" in text and "ms/it" in text
        assert ("\r" in text) == in_place
        assert text.endswith("\n")


def test_estimator_verbose_follows_scikit_learn(capsys):
    from jaxem.sklearn import GaussianMixture

    outputs = {}
    for verbose in (1, 2):
        GaussianMixture(2, verbose=verbose, verbose_interval=2, random_state=0, n_init=2).fit(np.asarray(X))
        outputs[verbose] = capsys.readouterr().out
    assert "Initialization" in outputs[1] and "Iteration 2" in outputs[1] and "converge" in outputs[1]
    assert "time lapse" not in outputs[1]
    assert "time lapse" in outputs[2] and "lower bound" in outputs[2]
    assert len(outputs[2]) > len(outputs[1])


def test_shipped_data_come_in_the_dtype_jaxem_computes_in():
    x, _ = jaxem.load_dataset("faithful")
    assert x.dtype == jax.dtypes.canonicalize_dtype(np.float64)
    assert jaxem.load_dataset("faithful", dtype=np.float64)[0].dtype == np.float64
    with pytest.raises(TypeError, match="dtype"):
        jaxem.load_dataset("faithful", dtype=int)


def test_fit_streaming_refuses_a_one_shot_iterator_and_names_a_bad_chunk():
    model = jaxem.models.gaussian_mixture(2)
    x = np.asarray(X)
    with pytest.raises(TypeError, match="one-shot iterator"):
        jaxem.fit_streaming(model, (x[i : i + 40] for i in range(0, len(x), 40)), key=0)
    chunks = [x[:40], x[40:80, :2], x[80:]]
    with pytest.raises(ValueError, match="chunk 1"):
        jaxem.fit_streaming(model, chunks, key=0, max_iter=3)
