"""The notebooks execute top to bottom (outputs are not committed).

Each runs in a fresh kernel (so without the test suite's x64 and strict-promotion
settings), importing this checkout's jaxem through PYTHONPATH.
"""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_are_committed_without_outputs():
    assert [p.stem for p in NOTEBOOKS] == [
        "01_em_theory",
        "02_user_model",
        "03_composing",
        "04_hidden_markov_models",
    ]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"


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
