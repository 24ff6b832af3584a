"""Runs hmmlearn's own HMM tests against ``jaxem.hmmlearn``.

At run time this copies hmmlearn's ``tests/test_gaussian_hmm.py``,
``test_categorical_hmm.py``, ``test_poisson_hmm.py``, ``test_multinomial_hmm.py``
and ``test_gmm_hmm*.py`` out of the installed hmmlearn into a temporary package,
with its ``tests/__init__.py`` (the helpers the tests import) and ``conftest.py``;
it rewrites only the import of the estimators (``from .. import hmm`` and
``from hmmlearn import hmm`` become ``from jaxem import hmmlearn as hmm``,
``from ..hmm import GMMHMM`` ``from jaxem.hmmlearn import GMMHMM``; every other
line is hmmlearn's), runs them with pytest in a subprocess and prints

    N passed, M failed

followed by each failure: those in ``KNOWN_FAILURES`` with the recorded reason,
any other as ``UNEXPECTED``. hmmlearn's test code is never stored in this
repository. Tests hmmlearn itself marks ``xfail`` (its whole ``test_gmm_hmm.py``)
count as neither. ``HMMLEARN_SEED`` (the seed hmmlearn's conftest gives NumPy's
global generator) is 0 unless set.

Usage: ``python tests/peers/run_hmmlearn_suite.py [--min-passed N] [pytest options, e.g. -n auto]``;
exit status 1 when fewer than ``N`` tests pass (default: ``MIN_PASSED``), else 0.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import hmmlearn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_sklearn_suite import _RESULT, _failure_reasons  # noqa: E402  (the same pytest summary parsing)

# CI fails below this pass count. Measured on 2026-12-02 (hmmlearn 0.3.3, run by class on
# the loaded machine): categorical, Poisson, multinomial 50 of 50; Gaussian diagonal 26 of 26,
# spherical + full 49 of 50 (the known failure); tied (22) not run to the end; the GMM-HMM
# tests fail (no GMMHMM yet). 148 tests outside GMM-HMM: 140 leaves a margin of 7.
MIN_PASSED = 140

SUITE = (
    "test_gaussian_hmm.py",
    "test_categorical_hmm.py",
    "test_poisson_hmm.py",
    "test_multinomial_hmm.py",
    "test_gmm_hmm.py",
    "test_gmm_hmm_new.py",
    "test_gmm_hmm_multisequence.py",
)
IMPORTS = {
    "from .. import hmm\n": "from jaxem import hmmlearn as hmm\n",
    "from hmmlearn import hmm\n": "from jaxem import hmmlearn as hmm\n",
    "from ..hmm import GMMHMM\n": "from jaxem.hmmlearn import GMMHMM\n",
}
PACKAGE = "jaxem_hmmlearn_suite"

# Tests of hmmlearn that jaxem's estimators fail by design, with why (keyed by
# ``Class::test`` or ``test`` without parameters).
KNOWN_FAILURES: dict[str, str] = {
    "TestGaussianHMMWithSphericalCovars::test_underflow_from_scaling": (
        "expects implementation='scaling' to raise ValueError on an outlier that underflows hmmlearn's scaled "
        "forward pass; jaxem's forward pass is always in log space, so it fits instead"
    ),
}
GMM_REASON = "GMMHMM: no jaxem Gaussian-mixture-emission HMM family yet (GMMHMM raises NotImplementedError)"



def suite_files() -> dict[str, str]:
    """``{file name: source}`` of hmmlearn's tests with jaxem's estimators imported."""
    tests = Path(hmmlearn.__file__).parent / "tests"
    files = {"__init__.py": (tests / "__init__.py").read_text(), "conftest.py": (tests / "conftest.py").read_text()}
    for name in SUITE:
        source = (tests / name).read_text()
        found = [line for line in IMPORTS if line in source]
        if len(found) != 1 or source.count(found[0]) != 1:
            raise RuntimeError(f"expected one estimator import (one of {tuple(IMPORTS)}) in {tests / name}")
        files[name] = source.replace(found[0], IMPORTS[found[0]])
    return files


def run_suite(extra_args: list[str] | None = None) -> dict:
    """Runs the rewritten suite; returns ``{"passed", "failed", "xfailed", "skipped": [nodes], "reasons": {}}``."""
    with tempfile.TemporaryDirectory(prefix="jaxem_hmmlearn_suite_") as tmp:
        package = Path(tmp) / PACKAGE
        (package / "tests").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        for name, source in suite_files().items():
            (package / "tests" / name).write_text(source)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        env.setdefault("HMMLEARN_SEED", "0")
        env["COLUMNS"] = "400"  # pytest's summary lines are cut to the terminal width
        command = [
            sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-o", "addopts=",
            "--rootdir", tmp, f"{PACKAGE}/tests", *(extra_args or []),
        ]
        done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
    outcomes = {"passed": [], "failed": [], "xfailed": [], "skipped": []}
    for status, node in _RESULT.findall(done.stdout):
        key = {"PASSED": "passed", "XPASS": "passed", "FAILED": "failed", "ERROR": "failed", "XFAIL": "xfailed"}
        outcomes[key.get(status, "skipped")].append(node)
    if not any(outcomes.values()):
        raise RuntimeError(f"pytest produced no results:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    outcomes["reasons"] = _failure_reasons(done.stdout)
    return outcomes


def known_reason(node: str) -> str | None:
    """The recorded reason for a failing node ``.../test_x.py::Class::test[params]``, or ``None``."""
    file, _, rest = node.partition("::")
    rest = re.sub(r"\[.*\]$", "", rest)
    if "gmm_hmm" in file:
        return GMM_REASON
    return KNOWN_FAILURES.get(rest) or KNOWN_FAILURES.get(rest.split("::")[-1])


def report(outcomes: dict) -> str:
    lines = [f"{len(outcomes['passed'])} passed, {len(outcomes['failed'])} failed "
             f"({len(outcomes['xfailed'])} xfailed as hmmlearn marks them, {len(outcomes['skipped'])} skipped)"]
    for node in outcomes["failed"]:
        why = known_reason(node)
        shown = node.split("/")[-1]
        if why is None:
            lines.append(f"  UNEXPECTED {shown}: {outcomes['reasons'].get(node, '')}")
        else:
            lines.append(f"  known {shown}: {why}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-passed", type=int, default=MIN_PASSED)
    args, pytest_args = parser.parse_known_args(argv)  # the rest goes to pytest (e.g. -n auto)
    outcomes = run_suite(pytest_args)
    print(report(outcomes))
    if len(outcomes["passed"]) < args.min_passed:
        print(f"pass count {len(outcomes['passed'])} is below the threshold {args.min_passed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
