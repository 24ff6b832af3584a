"""The command line, run as a newcomer would (a subprocess, default float32)."""

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "jaxem", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_demo_fits_old_faithful_and_writes_plot(tmp_path):
    out = tmp_path / "demo.png"
    proc = _run(["demo", "--restarts", "4", "--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "K=2" in proc.stdout and "K=3" in proc.stdout and "BIC prefers K=" in proc.stdout
    # The well-known two-component solution: ~35.6% short eruptions near 2.04 min / 54.5 min wait.
    assert "weight=0.356" in proc.stdout
    assert "eruptions=2.036" in proc.stdout
    assert out.exists() and out.stat().st_size > 10_000


def test_fit_csv_saves_params(tmp_path):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, size=(100, 2)), rng.normal(6, 1, size=(100, 2))])
    path = tmp_path / "data.csv"
    np.savetxt(path, x, delimiter=",", header="a,b", comments="")
    out = tmp_path / "params.npz"
    proc = _run(["fit", str(path), "--components", "2", "--covariance", "diag", "--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    saved = np.load(out)
    means = np.sort(saved["means"][:, 0])
    np.testing.assert_allclose(means, [0.0, 6.0], atol=0.3)
    assert saved["precisions_cholesky"].shape == (2, 2)


@pytest.mark.parametrize(
    "content, message",
    [("", "empty"), ("a,b\n1,2\n3\n", "row 3 has 1 fields"), ("a,b\n1,x\n", "is not a number"), ("a,b\n1,nan\n2,3\n3,4\n", "--missing marginalize")],
)
def test_bad_files_give_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    proc = _run(["fit", str(path), "-k", "1"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("jaxem: error:") and message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_missing_file_gives_one_line_error(tmp_path):
    proc = _run(["fit", str(tmp_path / "nope.csv"), "-k", "2"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
