"""Runs scikit-learn's own GaussianMixture tests against ``jaxem.sklearn.GaussianMixture``.

At run time this copies ``sklearn/mixture/tests/test_gaussian_mixture.py`` out of the
installed scikit-learn into a temporary directory, rewrites only the line
``from sklearn.mixture import GaussianMixture`` to import jaxem's estimator (every
other import, helper and test is scikit-learn's, unchanged), writes a conftest that
turns on ``jax_enable_x64``, runs it with pytest in a subprocess and prints

    N passed, M failed

followed by each failure: those listed in ``KNOWN_FAILURES`` with the recorded
reason, any other as ``UNEXPECTED``. scikit-learn's test code is never stored in
this repository.

Usage: ``[SKLEARN_RUN_FLOAT32_TESTS=1] python tests/peers/run_sklearn_suite.py [--min-passed N]
[pytest options, e.g. -n 2, -k test_init]``; exit status 1 when fewer than ``N`` tests pass
(default: ``MIN_PASSED``, or ``MIN_PASSED_FLOAT32`` with scikit-learn's float32 tests), else 0.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import sklearn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_suite  # noqa: E402  (the harnesses' shared runner and report)

# The pass counts reached on scikit-learn 1.9.1 (2026-12-02); CI fails below them. Of
# scikit-learn's 77 tests that run here (the 270 array-API ones are skipped without an
# array-API library), 50 in float64 (69 with SKLEARN_RUN_FLOAT32_TESTS=1, which adds
# the float32 parametrizations) build a GaussianMixture; the others test scikit-learn's
# private helpers and always pass. Reached: 54 of 56 in float64 (48 of the 50 that
# build one, 96%), 75 of 77 with float32 (67 of 69, 97%): the two KNOWN_FAILURES.
# Margin for CI: two tests in float64, three with float32 (rounding-sensitive comparisons).
MIN_PASSED = 52
MIN_PASSED_FLOAT32 = 72
FLOAT32_VARIABLE = "SKLEARN_RUN_FLOAT32_TESTS"


def min_passed() -> int:
    """``MIN_PASSED``, or ``MIN_PASSED_FLOAT32`` when scikit-learn's float32 tests run too."""
    return MIN_PASSED_FLOAT32 if os.environ.get(FLOAT32_VARIABLE, "0") == "1" else MIN_PASSED  # as sklearn.conftest


IMPORT_LINE = "from sklearn.mixture import GaussianMixture\n"
REPLACEMENT = "from jaxem.sklearn import GaussianMixture\n"

CONFTEST = """\
import jax

jax.config.update("jax_enable_x64", True)
"""

# Tests of scikit-learn that jaxem's estimator fails by design, with why.
KNOWN_FAILURES: dict[str, str] = {
    "test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters": (
        "counts calls of scikit-learn's private _estimate_gaussian_parameters through a Mock; "
        "jaxem's M-step is its own compiled function"
    ),
    "test_init": (
        "max_iter=1: lower_bound_ of n_init=10 is 4e-16 below n_init=1 at random_state=0, where "
        "the best restart is the shared first one: one restart alone compiles to other XLA "
        "kernels than a vmapped batch (batches of 2 and more agree to the bit, 1 differs in "
        "the last bit); the other 14 random states pass"
    ),
}

_NODE = re.compile(r"^(?P<file>[^:]+)::(?P<name>[^\[\s]+)(?P<params>\[.*\])?$")


def suite_source() -> str:
    """scikit-learn's ``test_gaussian_mixture.py`` with jaxem's ``GaussianMixture`` imported."""
    path = Path(sklearn.__file__).parent / "mixture" / "tests" / "test_gaussian_mixture.py"
    source = path.read_text()
    if source.count(IMPORT_LINE) != 1:
        raise RuntimeError(f"expected one line {IMPORT_LINE.strip()!r} in {path}")
    return source.replace(IMPORT_LINE, REPLACEMENT)


def run_suite(extra_args: list[str] | None = None) -> dict[str, list[str]]:
    """Runs the rewritten suite; returns ``{"passed", "failed", "xfailed", "skipped": [nodes],
    "reasons": {}}`` (pytest node names, ``failed`` including errors)."""
    files = {"test_gaussian_mixture_jaxem.py": suite_source(), "conftest.py": CONFTEST}
    return peer_suite.run_pytest(files, ["-p", "sklearn.conftest", "test_gaussian_mixture_jaxem.py", *(extra_args or [])],
                                 prefix="jaxem_sklearn_suite_")


def test_name(node: str) -> str:
    """``file::test_x[params]`` -> ``test_x``."""
    match = _NODE.match(node)
    return match.group("name") if match else node


def report(outcomes: dict) -> str:
    return peer_suite.report(outcomes, lambda node: KNOWN_FAILURES.get(test_name(node)),
                             lambda node: node.split("::", 1)[-1])


def main(argv=None) -> int:
    return peer_suite.main(argv, description=__doc__.splitlines()[0], min_passed=min_passed(),
                           run_suite=run_suite, report=report)


if __name__ == "__main__":
    sys.exit(main())
