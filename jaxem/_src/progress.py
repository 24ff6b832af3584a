"""Progress for long fits: any algorithm in compiled stretches of iterations,
driven from the host.

``fit(..., progress=...)`` runs exactly the fit of ``fit`` (the same algorithm,
chunked E-step, stopping rule and best-restart choice: ``loop.run`` resumed from
its ``RunState``), but the vmapped ``lax.while_loop`` stops every ``every``
iterations and returns to Python, which reports a ``Progress`` and resumes.
Between reports the state stays on the device; only a few scalars per restart
are read. With ``every = 10`` the overhead is a few percent at most
(benchmarks/progress_overhead.py).
"""

from __future__ import annotations

import functools
import numbers
import sys
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import loop
from jaxem._src import update as update_lib
from jaxem._src.base import Model
from jaxem._src.inference import n_observations

DEFAULT_EVERY = 10


class Progress(NamedTuple):
    """What a progress callback receives after each stretch of EM iterations.

    Attributes:
      iteration: EM iterations done so far by the longest-running restart.
      max_iter: the fit's ``max_iter``.
      best_log_likelihood: best total log-likelihood seen so far over all restarts
        and iterations (of the params before an update).
      n_converged: restarts that met the tolerance.
      n_stopped: restarts that stopped (converged, NaN, or ``max_iter``).
      n_restarts: number of restarts.
      seconds: wall time since the fit started, less the time spent compiling.
      best_params: the current params of the restart with the best current
        log-likelihood: the last good params, e.g. for a checkpoint.
      compile_seconds: time spent compiling (tracing, lowering, XLA) so far in
        this fit; 0 when every program came from a cache.
    """

    iteration: int
    max_iter: int
    best_log_likelihood: float
    n_converged: int
    n_stopped: int
    n_restarts: int
    seconds: float
    best_params: Any
    compile_seconds: float = 0.0


def print_progress(info: Progress, file=None) -> None:
    """The default display: one line per report on stderr."""
    file = sys.stderr if file is None else file
    compiled = f"; compiling {info.compile_seconds:.1f} s" if info.compile_seconds >= 0.05 else ""
    print(
        f"jaxem fit: iteration {info.iteration}/{info.max_iter}  "
        f"best log-likelihood {info.best_log_likelihood:.6g}  "
        f"converged {info.n_converged}/{info.n_restarts}  ({info.seconds:.2f} s{compiled})",
        file=file,
        flush=True,
    )


def print_compiling(file=None) -> None:
    """The default display's first line, before anything is compiled."""
    print("jaxem fit: compiling ...", file=sys.stderr if file is None else file, flush=True)


class _CompileClock:
    """Seconds JAX spends compiling, from its monitoring events (tracing, lowering
    and the XLA compile of every program), summed from ``start()`` on."""

    total = 0.0
    _listening = False

    @classmethod
    def start(cls) -> float:
        if not cls._listening:
            jax.monitoring.register_event_duration_secs_listener(cls._record)
            cls._listening = True
        return cls.total

    @classmethod
    def _record(cls, event: str, duration: float, **kwargs) -> None:
        del kwargs
        if event.startswith("/jax/core/compile/"):
            cls.total += duration


def resolve(progress) -> tuple[int, Callable[[Progress], None]]:
    """``(every, callback)`` from ``fit``'s ``progress`` argument.

    ``True``: print every 10 iterations; an int ``n``: print every ``n``; a
    callable: call it with a ``Progress`` every ``getattr(progress, "every", 10)``.
    """
    if progress is True:
        return DEFAULT_EVERY, print_progress
    if isinstance(progress, numbers.Integral) and not isinstance(progress, bool):
        if progress < 1:
            raise ValueError(f"progress must be True, a positive number of iterations or a callable, got {progress!r}")
        return int(progress), print_progress
    if callable(progress):
        every = getattr(progress, "every", DEFAULT_EVERY)
        if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
            raise ValueError(f"progress.every must be a positive integer, got {every!r}")
        return int(every), progress
    raise TypeError(f"progress must be a bool, a positive int or a callable, got {type(progress).__name__}")


@functools.partial(jax.jit, static_argnames=("model", "make_algorithm", "max_iter"))
def _start(model: Model, data, keys, init_params, sample_weight, *, make_algorithm, max_iter: int):
    return loop.restart_states(model, make_algorithm, data, keys, init_params, sample_weight, max_iter)[1]


@functools.partial(jax.jit, static_argnames=("model", "make_algorithm", "max_iter"))
def _advance(model: Model, data, run_states, sample_weight, tol, stop, *, make_algorithm, max_iter: int):
    """Runs every restart on until evaluation ``stop`` (or it stops): ``loop.run``,
    resumed from ``run_states``. Also returns a small summary for the report, so
    that one transfer per report suffices."""
    one = jax.tree_util.tree_map(lambda leaf: leaf[0], run_states.state)
    algorithm = make_algorithm(update_lib.em_map(model, data, sample_weight))
    n_obs = n_observations(model, algorithm.params(one), data, sample_weight)
    run_states = loop.over_restarts(lambda s: loop.run(algorithm, s, n_obs, stop=stop, tol=tol), run_states)
    mean = run_states.mean_log_likelihood
    stopped = run_states.converged | jnp.isnan(mean) | (run_states.n_iter >= max_iter)
    best = jnp.argmax(jnp.where(jnp.isnan(mean), -jnp.inf, mean))
    summary = (
        jnp.max(run_states.n_iter),
        jnp.max(jnp.where(jnp.isnan(run_states.history), -jnp.inf, run_states.history)),
        jnp.sum(run_states.converged.astype(jnp.int32)),
        jnp.sum(stopped.astype(jnp.int32)),
    )
    best_params = jax.tree_util.tree_map(lambda leaf: leaf[best], algorithm.params(run_states.state))
    return run_states, summary, best_params


@functools.partial(jax.jit, static_argnames=("model", "make_algorithm"))
def _finish(model: Model, data, run_states, sample_weight, *, make_algorithm):
    algorithm = make_algorithm(update_lib.em_map(model, data, sample_weight))
    return loop.finish(model, algorithm, data, run_states, sample_weight)


def fit_with_reports(model: Model, data, keys, init_params, sample_weight, tol, *, make_algorithm, max_iter: int, progress):
    """``loop.fit_restarts`` with a host loop over stretches of iterations (arguments
    as ``loop.fit_restarts``'s, already checked; ``progress`` as ``fit``'s)."""
    every, callback = resolve(progress)
    if callback is print_progress:
        print_compiling()
    start = time.perf_counter()
    compile_start = _CompileClock.start()
    statics = dict(make_algorithm=make_algorithm)
    run_states = _start(model, data, keys, init_params, sample_weight, max_iter=max_iter, **statics)
    done = 0
    while done < max_iter:
        done = min(done + every, max_iter)
        run_states, summary, best_params = _advance(
            model, data, run_states, sample_weight, tol, jnp.asarray(done, jnp.int32), max_iter=max_iter, **statics
        )
        iteration, best_log_likelihood, n_converged, n_stopped = jax.device_get(summary)
        compiling = _CompileClock.total - compile_start
        info = Progress(
            iteration=int(iteration),
            max_iter=max_iter,
            best_log_likelihood=float(best_log_likelihood) if np.isfinite(best_log_likelihood) else float("nan"),
            n_converged=int(n_converged),
            n_stopped=int(n_stopped),
            n_restarts=int(run_states.n_iter.shape[0]),
            seconds=max(time.perf_counter() - start - compiling, 0.0),
            best_params=best_params,
            compile_seconds=compiling,
        )
        callback(info)
        if info.n_stopped == info.n_restarts:
            break
    return _finish(model, data, run_states, sample_weight, **statics)
