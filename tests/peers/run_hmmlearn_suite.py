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

import os
import re
import sys
from pathlib import Path

import hmmlearn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_suite  # noqa: E402  (the harnesses' shared runner and report)

# CI fails below this pass count. Measured 2026-12-02 per file (hmmlearn 0.3.3, branch hmml, HMMLEARN_SEED=0;
# collected / passed / failed / xfailed as hmmlearn marks them): test_gaussian_hmm.py 98 / 97 / 1 (the known
# failure below) / 0; test_categorical_hmm.py 22 / 22; test_poisson_hmm.py 12 / 12; test_multinomial_hmm.py
# 16 / 16; test_gmm_hmm.py 18 / 3 (xpassed) / 0 / 15 (hmmlearn xfails the whole file: it sets the long-removed
# ``gmms_`` attribute); test_gmm_hmm_multisequence.py 8 / 8; test_gmm_hmm_new.py 78 / 78. In all
# 252 collected, 236 passed (14 of them tests hmmlearn marks xfail: GMM-HMM zero variance and different
# lengths), 1 failed, 15 xfailed: the threshold leaves a margin of 6. Run by file at -n 0 on the shared 2-core
# machine at load 11-18: Gaussian 51 min, GMM-HMM 41 min, the other three a few minutes; the time is XLA
# compiles (each test's first parametrization, [scaling], compiles; [log] reuses the program), most in the
# test_criterion tests (4 fits of 4000 steps, each with another n_components).
MIN_PASSED = 230

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

# Tests of hmmlearn that jaxem's estimators fail, with why: by design, or measured and not yet fixed (keyed by
# ``Class::test`` or ``test`` without parameters).
KNOWN_FAILURES: dict[str, str] = {
    "TestGaussianHMMWithSphericalCovars::test_underflow_from_scaling": (
        "expects implementation='scaling' to raise ValueError on an outlier that underflows hmmlearn's scaled "
        "forward pass; jaxem's forward pass is always in log space, so it fits instead"
    ),
}



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
    files = {f"{PACKAGE}/__init__.py": ""}
    files.update({f"{PACKAGE}/tests/{name}": source for name, source in suite_files().items()})
    return peer_suite.run_pytest(files, [f"{PACKAGE}/tests", *(extra_args or [])],
                                 prefix="jaxem_hmmlearn_suite_",
                                 env={"HMMLEARN_SEED": os.environ.get("HMMLEARN_SEED", "0")})


def known_reason(node: str) -> str | None:
    """The recorded reason for a failing node ``.../test_x.py::Class::test[params]``, or ``None``."""
    file, _, rest = node.partition("::")
    rest = re.sub(r"\[.*\]$", "", rest)
    return KNOWN_FAILURES.get(rest) or KNOWN_FAILURES.get(rest.split("::")[-1])


def report(outcomes: dict) -> str:
    return peer_suite.report(outcomes, known_reason, lambda node: node.split("/")[-1])


def main(argv=None) -> int:
    return peer_suite.main(argv, description=__doc__.splitlines()[0], min_passed=MIN_PASSED,
                           run_suite=run_suite, report=report)


if __name__ == "__main__":
    sys.exit(main())
