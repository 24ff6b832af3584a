"""The command line on real-world files and mistakes (issue 17): string columns,
``;`` separators, a byte-order mark, empty cells, numeric-looking headers, HMMs,
labels/posterior outputs, and every error as one line with a non-zero status."""

import os
import subprocess
import sys

import numpy as np
import pytest

from jaxem._src.cli import main
from jaxem._src.csv_input import read_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(0)
X = np.concatenate([RNG.normal(0, 1, size=(60, 2)), RNG.normal(6, 1, size=(60, 2))])


def _write(path, text: str, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return str(path)


def _csv(x, header="a,b", sep=","):
    lines = [header] if header else []
    lines += [sep.join(f"{v:.6g}" for v in row) for row in x]
    return "\n".join(lines) + "\n"


def _run(argv, capsys):
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


# ------------------------------------------------------------------- reading CSV


def test_string_columns_are_skipped_when_columns_are_chosen(tmp_path):
    text = "id,name,a,b\n" + "".join(f"{i},row {i},{r[0]:.4f},{r[1]:.4f}\n" for i, r in enumerate(X))
    table = read_table(_write(tmp_path / "s.csv", text), ["a", "b"])
    np.testing.assert_allclose(table.values, X, atol=1e-4)
    assert table.names == ["a", "b"]


def test_semicolon_bom_and_empty_cells(tmp_path):
    text = "\ufeffa;b\n1.5;2\n;3\n4;NA\n"
    table = read_table(_write(tmp_path / "b.csv", text))
    assert table.names == ["a", "b"]
    np.testing.assert_array_equal(np.isnan(table.values), [[False, False], [True, False], [False, True]])


def test_bom_on_a_headerless_file_keeps_the_first_row(tmp_path):
    table = read_table(_write(tmp_path / "n.csv", "\ufeff1.5,2\n3,4\n"))
    np.testing.assert_array_equal(table.values, [[1.5, 2.0], [3.0, 4.0]])


def test_numeric_looking_header_is_a_header(tmp_path):
    text = "1990,2000\n" + "".join(f"{r[0]:.3f},{r[1]:.3f}\n" for r in X[:10])
    table = read_table(_write(tmp_path / "y.csv", text))
    assert table.names == ["1990", "2000"] and table.values.shape == (10, 2)
    counts = read_table(_write(tmp_path / "c.csv", "3,4\n5,6\n7,8\n"))
    assert counts.values.shape == (3, 2)  # integer data stays data
    forced = read_table(_write(tmp_path / "f.csv", "3,4\n5,6\n"), header="yes")
    assert forced.names == ["3", "4"]


def test_huge_field_is_read(tmp_path):
    text = "a,b\n" + "1" * 200_000 + ",2\n3,4\n"
    table = read_table(_write(tmp_path / "h.csv", text), ["b"])
    np.testing.assert_array_equal(table.values[:, 0], [2.0, 4.0])


# ------------------------------------------------------------------- commands


def test_fit_writes_labels_and_posterior(tmp_path, capsys):
    data = _write(tmp_path / "d.csv", "label,a,b\n" + "".join(f"g{i % 2},{r[0]:.5f},{r[1]:.5f}\n" for i, r in enumerate(X)))
    labels, posterior = tmp_path / "l.csv", tmp_path / "p.csv"
    status, out, err = _run([
        "fit", data, "-k", "2", "--columns", "a,b", "--restarts", "2", "--no-progress",
        "--labels", str(labels), "--posterior", str(posterior),
    ], capsys)
    assert status == 0, err
    got = np.loadtxt(labels, skiprows=1, dtype=int)
    assert got.shape == (120,) and len(set(got[:60])) == 1 and got[0] != got[-1]
    probs = np.loadtxt(posterior, delimiter=",", skiprows=1)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_fit_with_missing_cells_needs_marginalize(tmp_path, capsys):
    x = X.copy()
    x[3, 1] = np.nan
    text = "a,b\n" + "".join(",".join("" if np.isnan(v) else f"{v:.5f}" for v in row) + "\n" for row in x)
    data = _write(tmp_path / "m.csv", text)
    status, _, err = _run(["fit", data, "-k", "2", "--no-progress"], capsys)
    assert status == 2 and "--missing marginalize" in err and len(err.strip().splitlines()) == 1
    status, out, err = _run(["fit", data, "-k", "2", "--missing", "marginalize", "--restarts", "2", "--no-progress"], capsys)
    assert status == 0, err


@pytest.mark.slow
def test_hmm_command_with_id_column(tmp_path, capsys):
    states = np.repeat([0, 1, 0, 1], 25)
    y = RNG.normal(np.where(states == 0, -3.0, 3.0), 1.0)
    ids = np.repeat(["s1", "s2"], 50)
    data = _write(tmp_path / "seq.csv", "seq,y\n" + "".join(f"{i},{v:.5f}\n" for i, v in zip(ids, y)))
    labels = tmp_path / "states.csv"
    status, out, err = _run([
        "hmm", data, "-k", "2", "--columns", "y", "--id-column", "seq", "--restarts", "2", "--no-progress",
        "--labels", str(labels),
    ], capsys)
    assert status == 0, err
    assert "100 rows in 2 sequence(s)" in out and "transition_matrix" in out
    got = np.loadtxt(labels, skiprows=1, dtype=int)
    agreement = max(np.mean(got == states), np.mean(got != states))
    assert agreement > 0.95


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "{data}", "-k", "2", "--seed", str(2**70)], "--seed"),
        (["fit", "{data}", "-k", "0"], "--components"),
        (["fit", "{data}", "-k", "2", "--out", "/nonexistent/dir/p.npz"], "--out"),
        (["fit", "{data}", "-k", "2", "--init", "{empty}"], "--init"),
        (["fit", "{data}", "-k", "2", "--init", "{forged}"], "--init"),
        (["fit", "{data}", "-k", "2", "--init", "{absent}"], "--init"),
        (["fit", "{data}", "-k", "2", "--columns", "zzz"], "no column 'zzz'"),
        (["fit", "{absent}", "-k", "2"], "absent"),
        (["hmm", "{data}", "-k", "2", "--lengths", "{data}"], "--lengths"),
    ],
)
def test_errors_are_one_line_and_nonzero(tmp_path, capsys, argv, message):
    paths = {
        "data": _write(tmp_path / "d.csv", _csv(X)),
        "empty": _write(tmp_path / "e.npz", ""),
        "forged": _write(tmp_path / "f.npz", "PK\x03\x04 not really a zip"),
        "absent": str(tmp_path / "absent.npz"),
    }
    argv = [a.format(**paths) for a in argv]
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's own errors: usage, then one error line
        status = exit_.code
    out, err = capsys.readouterr()
    assert status == 2
    last = err.strip().splitlines()[-1]
    assert message in last and "Traceback" not in err


def test_console_script_help_lists_every_option():
    proc = subprocess.run(
        [sys.executable, "-m", "jaxem", "hmm", "--help"], capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    assert proc.returncode == 0
    options = [line.split()[0] for line in proc.stdout.splitlines() if line.strip().startswith("--")]
    assert len(options) >= 15
    blocks = proc.stdout.split("options:")[1]
    for option in ("--id-column", "--lengths", "--labels", "--posterior", "--seed", "--header"):
        assert option in blocks
    # every option has a help text: no option line stands alone without words after it
    lines = [line for line in blocks.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.strip().startswith("-") and len(line.split("  ")) == 1 and i + 1 < len(lines):
            assert not lines[i + 1].strip().startswith("-"), line


@pytest.mark.parametrize("delay", [0.2, 0.6, 1.2])
def test_ctrl_c_at_start_up_is_one_line(delay):
    """SIGINT while Python imports JAX (NumPy and jaxlib turn it into an ImportError,
    JAX's gc hook swallows it) or while the CLI starts: one line, status 130."""
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxem", "demo", "--restarts", "2", "--out", os.devnull],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=ROOT),
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    if proc.returncode == -signal.SIGINT:  # the signal came before Python installed its handler
        assert err == ""
        return
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "jaxem: interrupted"


def test_library_use_keeps_pythons_hooks():
    from jaxem._src.interrupt import is_command_line

    assert not is_command_line([sys.argv[0]]) or os.path.basename(sys.argv[0]) == "jaxem"
    assert sys.excepthook is sys.__excepthook__ or not is_command_line(sys.argv)
