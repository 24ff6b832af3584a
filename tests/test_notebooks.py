"""The notebooks are committed executed, with small outputs, and execute top to bottom.

The committed outputs are what the docs site renders (mkdocs-jupyter, ``execute: false``)
and what a reader sees on the repository's page. Each runs in a fresh kernel (so without the test suite's x64 and strict-promotion
settings), importing this checkout's jaxem through PYTHONPATH.
"""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_are_committed_executed_with_small_outputs():
    assert [p.stem for p in NOTEBOOKS] == [
        "01_em_theory",
        "02_user_model",
        "03_composing",
        "04_hidden_markov_models",
        "06_more_models",
    ]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        counts = [cell.execution_count for cell in code]
        assert counts == list(range(1, len(code) + 1)), f"{path.name}: not executed top to bottom in one run"
        outputs = [o for cell in code for o in cell.outputs]
        assert not [o for o in outputs if o.get("output_type") == "error"], f"{path.name} has an error output"
        figures = [o for o in outputs if "image/png" in o.get("data", {})]
        if "plt.show()" in "".join(cell.source for cell in code):
            assert figures, f"{path.name}: its figures are not in the committed outputs"
        assert path.stat().st_size < 400_000, f"{path.name} is {path.stat().st_size} bytes (PNG outputs at modest dpi)"


# The theory notebook runs by default; the others (~20-60 s each) are marked slow.
@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=() if p.stem.startswith("01") else pytest.mark.slow) for p in NOTEBOOKS],
    ids=[p.stem for p in NOTEBOOKS],
)
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JAX_ENABLE_X64", "0")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.get("output_type") == "error"]
    assert not errors
