"""Counting XLA compilations: ``with counting() as count: ...; count.programs``.

Every backend compile emits JAX's ``/jax/core/compile/backend_compile_duration``
monitoring event (a persistent-cache hit does not), so the count is the number of
programs XLA compiled inside the block. The persistent cache is off inside the
block, so that a program compiled by an earlier run still counts.
"""

import contextlib

import jax

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class _Count:
    programs = 0
    seconds = 0.0


_ACTIVE: list = []


def _record(event: str, duration: float, **kwargs) -> None:
    del kwargs
    if event == BACKEND_COMPILE_EVENT:
        for count in _ACTIVE:
            count.programs += 1
            count.seconds += duration


jax.monitoring.register_event_duration_secs_listener(_record)


@contextlib.contextmanager
def counting():
    count = _Count()
    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    _ACTIVE.append(count)
    try:
        yield count
    finally:
        _ACTIVE.remove(count)
        jax.config.update("jax_enable_compilation_cache", enabled)
