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

Usage: ``python tests/peers/run_sklearn_suite.py [--min-passed N] [pytest options, e.g. -n 2]``; exit status 1
when fewer than ``N`` tests pass (default: ``MIN_PASSED``), else 0.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import sklearn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_suite  # noqa: E402  (the harnesses' shared runner and report)

# The pass count reached on scikit-learn 1.9.1; CI fails below it.
MIN_PASSED = 45  # 48 reached on 2026-12-01; a margin of 3 for rounding-sensitive tests

IMPORT_LINE = "from sklearn.mixture import GaussianMixture\n"
REPLACEMENT = "from jaxem.sklearn import GaussianMixture\n"

CONFTEST = """\
import jax

jax.config.update("jax_enable_x64", True)
"""

# Tests of scikit-learn that jaxem's estimator fails by design, with why.
KNOWN_FAILURES: dict[str, str] = {
    "test_gaussian_mixture_precisions_init": (
        "calls the private GaussianMixture._initialize(X, resp) of scikit-learn's EM loop; "
        "jaxem initializes inside its compiled restarts and has no such method"
    ),
    "test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters": (
        "counts calls of scikit-learn's private _estimate_gaussian_parameters through a Mock; "
        "jaxem's M-step is its own compiled function"
    ),
    "test_gaussian_mixture_precisions_init_diag": (
        "builds precisions_init from scikit-learn's own KMeans labels and expects the same "
        "n_iter_ as a fit from init_params='kmeans'; jaxem's k-means (in JAX, other k-means++ "
        "draws) starts elsewhere, so n_iter_ differs by one"
    ),
    "test_multiple_init": (
        "lower_bound_ of n_init=5 vs n_init=1 differs in the last bit: the shared first "
        "restart is computed in a vmapped batch of another size (rounding)"
    ),
    "test_regularisation": (
        "reg_covar=0 on two collapsed points, covariance_type='tied': jaxem's M-step keeps the "
        "pooled covariance barely positive definite (~1e-16) where scikit-learn's Cholesky "
        "fails, so no ValueError (full, diag, spherical raise it)"
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
    return peer_suite.main(argv, description=__doc__.splitlines()[0], min_passed=MIN_PASSED,
                           run_suite=run_suite, report=report)


if __name__ == "__main__":
    sys.exit(main())
