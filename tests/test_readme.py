"""The README's and the docs pages' Python code blocks run as pasted.

Each block runs in a fresh namespace, in a temporary working directory (job 5 writes a
file), with JAX's defaults as a user has them: float32, standard dtype and rank
promotion (the suite's x64 and strict promotion are switched off for the block).

Compiling costs seconds a program on a CPU, so only the README's last block (save,
reload, resume) runs by default; the other README blocks and the docs pages' blocks are
marked slow and run in `.ci/run` (`-m slow tests/test_doctests.py tests/test_readme.py`).
"""

import pathlib
import re

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC_PAGES = ["getting-started.md", "jobs.md", "performance.md", "index.md", *[f"models/{p.name}" for p in sorted((ROOT / "docs" / "models").glob("*.md"))]]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path):
    return FENCE.findall(path.read_text(encoding="utf-8"))


def _cases():
    blocks = python_blocks(ROOT / "README.md")
    for i, block in enumerate(blocks):
        yield pytest.param(block, id=f"README-{i + 1}", marks=() if i == len(blocks) - 1 else pytest.mark.slow)
    for page in DOC_PAGES:
        for i, block in enumerate(python_blocks(ROOT / "docs" / page)):
            yield pytest.param(block, id=f"{page}-{i + 1}", marks=pytest.mark.slow)


def test_readme_has_the_two_commands_and_five_jobs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'pip install -e ".[plot]" && python -m jaxem demo' in text
    assert 'pip install -e ".[test]" && python -m pytest -q' in text
    assert len(python_blocks(ROOT / "README.md")) == 5


@pytest.mark.parametrize("block", _cases())
def test_code_block_runs_as_pasted(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    with jax.enable_x64(False), jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        exec(compile(block, "<block>", "exec"), {"__name__": "__main__"})
