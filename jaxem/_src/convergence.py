"""``jaxem.ConvergenceWarning``, and the warning ``jaxem.fit`` gives when no restart
met ``tol``.

The class subclasses scikit-learn's ``ConvergenceWarning`` when scikit-learn is
installed (so ``warnings.filterwarnings("ignore", category=sklearn.exceptions.
ConvergenceWarning)`` silences it too), else ``UserWarning``. It is made on first
use, so that ``import jaxem`` never imports scikit-learn.

Examples:
  >>> import warnings, jaxem
  >>> issubclass(jaxem.ConvergenceWarning, UserWarning)
  True
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import numpy as np


@functools.cache
def convergence_warning() -> type:
    """The ``ConvergenceWarning`` class (one object per process)."""
    try:
        from sklearn.exceptions import ConvergenceWarning as base
    except ImportError:  # pragma: no cover - depends on the environment
        base = UserWarning
    return type(
        "ConvergenceWarning",
        (base,),
        {"__module__": "jaxem", "__doc__": "No restart of an EM fit met its tolerance within max_iter."},
    )


def warn_if_none_converged(result, max_iter: int, tol) -> None:
    """Warns with ``ConvergenceWarning`` when ``result`` (a concrete ``FitResult``)
    has no restart that converged; silent for traced results (inside ``jit``)."""
    try:
        converged = np.asarray(result.converged)
    except Exception:  # traced: the caller's program decides
        return
    if not converged.any():
        warnings.warn(
            f"no restart of the EM fit converged to tol={float(np.asarray(tol)):g} in max_iter={max_iter} "
            "iterations; raise max_iter or tol, or check the data and model",
            convergence_warning(),
            stacklevel=3,
        )


@contextlib.contextmanager
def silenced():
    """No ``ConvergenceWarning`` inside: the estimators report convergence in
    their peers' own way (scikit-learn's warning wording, hmmlearn's monitor)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", convergence_warning())
        yield
