"""JAX's persistent compilation cache, on by default for jaxem's users.

A fit is one compiled program; compiling it takes seconds, running it on small
data milliseconds. JAX can keep compiled programs on disk
(``jax_compilation_cache_dir``), so a new Python process running the same fit
compiles nothing. ``import jaxem`` turns that cache on in a per-user directory,
``$XDG_CACHE_HOME/jaxem/jax`` (``~/.cache/jaxem/jax``), unless

* the user configured a cache already (``JAX_COMPILATION_CACHE_DIR`` in the
  environment, or ``jax.config.update("jax_compilation_cache_dir", ...)`` before
  importing jaxem): theirs is used as it is; or
* ``JAXEM_COMPILATION_CACHE=0`` (or ``off``/``false``/``no``) is set: no cache.

JAX stores only programs that took at least
``jax_persistent_cache_min_compile_time_secs`` (1 s by default) to compile; jaxem
lowers that to 0 when the user has not set it, so that its many sub-second
programs (seeding, scoring, BIC) are stored too.
"""

from __future__ import annotations

import os

import jax

OFF_VALUES = ("0", "off", "false", "no")


def default_directory() -> str:
    """``$XDG_CACHE_HOME/jaxem/jax``, or ``~/.cache/jaxem/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxem", "jax")


def enable_default_cache() -> str | None:
    """Turns the persistent cache on as described above; returns the directory in
    use (``None`` when off)."""
    if os.environ.get("JAXEM_COMPILATION_CACHE", "").strip().lower() in OFF_VALUES:
        return None
    configured = jax.config.jax_compilation_cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if configured:
        return configured
    directory = default_directory()
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:  # a read-only home: run without a cache
        return None
    jax.config.update("jax_compilation_cache_dir", directory)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return directory
