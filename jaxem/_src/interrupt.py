"""Ctrl-C on the command line is one line, never a traceback, even while JAX is
still being imported (the first seconds of ``jaxem ...`` / ``python -m jaxem ...``).

``jaxem/__init__.py`` calls ``quiet_interrupts()`` first thing when the process is
the command line; once the CLI's ``main`` runs, it catches ``KeyboardInterrupt``
itself. Library use (``import jaxem`` in a program or notebook) is never affected.

Examples:
  >>> is_command_line(["-m"]), is_command_line(["/usr/bin/jaxem", "demo"]), is_command_line(["app.py"])
  (True, True, False)
"""

from __future__ import annotations

import os
import sys


def is_command_line(argv) -> bool:
    """Whether ``argv`` is ``python -m jaxem`` being located (``argv[0] == "-m"``)
    or the ``jaxem`` console script."""
    if not argv:
        return False
    return argv[0] == "-m" or os.path.basename(argv[0]) in ("jaxem", "jaxem.exe", "jaxem-script.py")


def quiet_interrupts() -> None:
    """An uncaught ``KeyboardInterrupt`` prints ``jaxem: interrupted`` and exits
    with status 130, also when a C extension being imported turned it into an
    ``ImportError`` (NumPy and jaxlib do) or it landed in a callback whose errors
    Python ignores (JAX's garbage-collection hook); other exceptions are unchanged."""
    previous = sys.excepthook

    def hook(kind, value, traceback):
        if _interrupted(value):
            print("jaxem: interrupted", file=sys.stderr, flush=True)
            sys.exit(130)
        previous(kind, value, traceback)

    sys.excepthook = hook
    previous_unraisable = sys.unraisablehook

    def unraisable(info):  # Ctrl-C landing in a callback Python would ignore (e.g. JAX's gc hook)
        if _interrupted(info.exc_value):
            print("jaxem: interrupted", file=sys.stderr, flush=True)
            os._exit(130)
        previous_unraisable(info)

    sys.unraisablehook = unraisable


def _interrupted(error) -> bool:
    """Whether ``error`` is, or was caused while handling, a ``KeyboardInterrupt``."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False
