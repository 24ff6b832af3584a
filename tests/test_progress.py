"""fit(progress=...): the same EM in compiled chunks, progress reports, CLI checkpoints."""

import numpy as np
import pytest

import jax
import jaxem
from jaxem._src import cli
from jaxem._src import progress as progress_lib
from tests.helpers import blobs

X = blobs(3, n=300)[0]
MODEL = jaxem.models.gaussian_mixture(3)


def test_chunked_fit_equals_plain_fit():
    plain = jaxem.fit(MODEL, X, key=2, n_restarts=4, max_iter=45, tol=1e-5)
    reports = []
    chunked = jaxem.fit(MODEL, X, key=2, n_restarts=4, max_iter=45, tol=1e-5, progress=reports.append)
    for a, b in zip(jax.tree_util.tree_leaves(plain), jax.tree_util.tree_leaves(chunked)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=0)
    assert [r.iteration for r in reports] == sorted(r.iteration for r in reports)
    assert all(r.iteration % 10 == 0 or r.iteration == 45 for r in reports[:-1])  # the last: where the fit stopped
    assert reports[-1].n_converged == int(np.sum(plain.converged))
    assert reports[-1].best_log_likelihood == pytest.approx(float(np.nanmax(plain.history)), rel=1e-12)
    best = [r.best_log_likelihood for r in reports]
    assert best == sorted(best)


def test_progress_prints_only_when_enabled(capsys, monkeypatch):
    monkeypatch.setattr(progress_lib, "_tqdm", lambda: None)  # the plain lines, whether or not tqdm is installed
    jaxem.fit(MODEL, X, key=0, max_iter=25, tol=0.0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    jaxem.fit(MODEL, X, key=0, max_iter=25, tol=0.0, progress=True)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "jaxem fit: compiling ..."  # before anything is compiled
    err = err[1:]
    assert [line.split()[3] for line in err] == ["10/25", "20/25", "25/25"]
    assert all("best objective" in line and "converged 0/1" in line and "(tol 0)" in line for line in err)
    jaxem.fit(MODEL, X, key=0, max_iter=25, tol=0.0, progress=5)
    assert len(capsys.readouterr().err.splitlines()) == 1 + 5


def test_bad_progress_argument():
    with pytest.raises(ValueError, match="progress"):
        jaxem.fit(MODEL, X, key=0, progress=0)
    with pytest.raises(TypeError, match="progress"):
        jaxem.fit(MODEL, X, key=0, progress="yes")


@pytest.mark.slow
def test_cli_ctrl_c_leaves_last_good_params_saved(tmp_path, monkeypatch, capsys):
    path = tmp_path / "data.csv"
    np.savetxt(path, X, delimiter=",", header="a,b,c", comments="")
    out = tmp_path / "params.npz"
    real_advance = progress_lib._advance
    calls = []

    def advance_then_ctrl_c(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # Ctrl-C during the third chunk
            raise KeyboardInterrupt
        return real_advance(*args, **kwargs)

    monkeypatch.setattr(progress_lib, "_advance", advance_then_ctrl_c)
    code = cli.main(["fit", str(path), "-k", "3", "--restarts", "4", "--tol", "0", "--max-iter", "100", "--out", str(out)])
    assert code == 130
    assert "interrupted at iteration 20" in capsys.readouterr().err
    model, saved = jaxem.load(out)
    # The best restart after 20 iterations (ranked by the log-likelihood seen last).
    reference = jaxem.fit(model, X, key=jax.random.key(0), n_restarts=4, max_iter=20, tol=0.0)
    best = int(np.argmax(np.asarray(reference.history[:, 19])))
    for a, b in zip(jax.tree_util.tree_leaves(saved), jax.tree_util.tree_leaves(reference.all_params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b)[best], rtol=1e-10)

    # Resume from the checkpoint: continues from exactly those params.
    monkeypatch.setattr(progress_lib, "_advance", real_advance)
    code = cli.main(["fit", str(path), "-k", "3", "--tol", "0", "--max-iter", "5", "--init", str(out), "--out", str(out)])
    assert code == 0
    resumed = jaxem.load(out)[1]
    expected = jaxem.fit(model, X, key=0, max_iter=5, tol=0.0, init_params=saved).params
    for a, b in zip(jax.tree_util.tree_leaves(resumed), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10)
    assert "iteration 5/5" in capsys.readouterr().err  # progress is on by default in the CLI


def _assert_same_fit(a, b, rtol=1e-12):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=0)


@pytest.mark.slow
def test_progress_with_squarem_equals_squarem_without_progress():
    # Was a ValueError: "progress cannot be combined with accelerate".
    plain = jaxem.fit(MODEL, X, key=1, n_restarts=3, max_iter=40, tol=1e-6, accelerate="squarem")
    reports = []
    shown = jaxem.fit(MODEL, X, key=1, n_restarts=3, max_iter=40, tol=1e-6, accelerate="squarem", progress=reports.append)
    _assert_same_fit(plain, shown)
    assert reports and reports[-1].best_log_likelihood == pytest.approx(float(np.nanmax(plain.history)), rel=1e-12)


def test_progress_with_an_explicit_chunk_size_equals_the_chunked_fit():
    # Was a ValueError: "progress cannot be combined with ... an explicit chunk_size".
    plain = jaxem.fit(MODEL, X, key=4, n_restarts=2, max_iter=30, tol=0.0, chunk_size=64)
    shown = jaxem.fit(MODEL, X, key=4, n_restarts=2, max_iter=30, tol=0.0, chunk_size=64, progress=lambda info: None)
    _assert_same_fit(plain, shown)


@pytest.mark.slow
def test_progress_with_auto_chunk_size_streams_the_rows(monkeypatch):
    # progress= used to run unchunked (O(N K) temporaries) although "auto" chunks
    # more than 32 768 rows: the chunked E-step must be the one traced.
    from jaxem._src import chunking

    calls = []
    real = chunking.statistics

    def spy(*args, **kwargs):
        calls.append(kwargs["chunk_size"])
        return real(*args, **kwargs)

    monkeypatch.setattr(chunking, "statistics", spy)
    x = np.asarray(blobs(11, n=40_000)[0], np.float32)
    model = jaxem.models.gaussian_mixture(2, covariance_type="diag")
    shown = jaxem.fit(model, x, key=0, max_iter=4, tol=0.0, progress=lambda info: None)
    assert calls and all(size == chunking.auto_chunk_size(model, x) for size in calls)
    plain = jaxem.fit(model, x, key=0, max_iter=4, tol=0.0)
    _assert_same_fit(plain, shown, rtol=0)


def test_reported_time_excludes_compilation():
    reports = []
    model = jaxem.models.gaussian_mixture(3, reg_covar=3e-6)  # a model no other test compiled
    jaxem.fit(model, X, key=0, max_iter=20, tol=0.0, progress=reports.append)
    assert reports[0].compile_seconds > 0  # this fit traced and compiled (or loaded) its programs
    assert all(r.seconds < r.compile_seconds for r in reports)  # 20 iterations on 300 rows: ms, not seconds
    assert [r.compile_seconds for r in reports] == sorted(r.compile_seconds for r in reports)
