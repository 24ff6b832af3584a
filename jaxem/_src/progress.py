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

from jaxem._src import exported, loop
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
      change: the largest change of the objective per observation over the last
        iteration among the restarts still running (what ``tol`` is compared
        with); 0 once every restart stopped, ``inf`` before two iterations.
      tol: the fit's tolerance.
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
    change: float = float("inf")
    tol: float = 0.0

    @property
    def seconds_per_iteration(self) -> float:
        """Wall time per iteration so far, compilation excluded."""
        return self.seconds / self.iteration if self.iteration else float("nan")


def describe(info: Progress) -> str:
    """One line: iteration, best objective, change against tol, restarts
    converged, time per iteration (compilation excluded) and compile time."""
    change = "-" if not np.isfinite(info.change) else f"{info.change:.2g}"
    compiled = f", compiled in {info.compile_seconds:.1f} s" if info.compile_seconds >= 0.05 else ""
    per_iteration = info.seconds_per_iteration
    timing = f"{1e3 * per_iteration:.2f} ms/it" if np.isfinite(per_iteration) else ""
    return (
        f"iteration {info.iteration}/{info.max_iter}  best objective {info.best_log_likelihood:.6g}  "
        f"change {change} (tol {info.tol:.2g})  converged {info.n_converged}/{info.n_restarts}  "
        f"{timing} ({info.seconds:.2f} s{compiled})"
    )


def print_progress(info: Progress, file=None) -> None:
    """The plain display: one line per report (on stderr by default)."""
    print(f"jaxem fit: {describe(info)}", file=sys.stderr if file is None else file, flush=True)


def print_compiling(file=None) -> None:
    """The plain display's first line, before anything is compiled."""
    print("jaxem fit: compiling ...", file=sys.stderr if file is None else file, flush=True)


class ProgressDisplay:
    """The default display of ``fit(..., progress=True)``: a tqdm bar when tqdm
    is installed (its notebook widget in Jupyter, through ``tqdm.auto``), else one
    line rewritten in place on a terminal, else (a log file, a pipe) one line per
    report. Shows "compiling ..." first, then iteration, best objective, change
    against ``tol``, restarts converged and time per iteration.

    Args:
      every: iterations between reports.
      file: the stream (default ``sys.stderr``).
      use_tqdm: ``None`` (default: when importable), ``True`` or ``False``.
    """

    def __init__(self, every: int = DEFAULT_EVERY, file=None, use_tqdm=None):
        self.every, self.file = every, sys.stderr if file is None else file
        self._bar, self._width = None, 0
        self._tqdm = _tqdm() if use_tqdm in (None, True) else None
        if use_tqdm is True and self._tqdm is None:
            raise ImportError("use_tqdm=True needs tqdm: pip install tqdm")
        self._in_place = self._tqdm is None and bool(getattr(self.file, "isatty", lambda: False)())

    def compiling(self) -> None:
        if self._tqdm is not None:
            self._bar = self._tqdm(total=None, desc="jaxem fit: compiling", file=self.file, leave=True)
        else:
            self._write("jaxem fit: compiling ...")

    def __call__(self, info: Progress) -> None:
        if self._tqdm is not None:
            if self._bar is None or self._bar.total is None:
                if self._bar is not None:
                    self._bar.close()
                self._bar = self._tqdm(total=info.max_iter, desc="jaxem fit", file=self.file, unit="it", leave=True)
            self._bar.update(info.iteration - self._bar.n)
            change = "-" if not np.isfinite(info.change) else f"{info.change:.2g}"
            self._bar.set_postfix_str(
                f"best {info.best_log_likelihood:.6g}, change {change} (tol {info.tol:.2g}), "
                f"converged {info.n_converged}/{info.n_restarts}"
            )
            if info.n_stopped == info.n_restarts or info.iteration >= info.max_iter:
                self.close()
            return
        self._write(f"jaxem fit: {describe(info)}", final=info.n_stopped == info.n_restarts or info.iteration >= info.max_iter)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _write(self, text: str, final: bool = False) -> None:
        if self._in_place:
            pad = " " * max(self._width - len(text), 0)
            self.file.write("\r" + text + pad + ("\n" if final else ""))
            self._width = 0 if final else len(text)
        else:
            self.file.write(text + "\n")
        self.file.flush()


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


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

    ``True``: a ``ProgressDisplay`` every 10 iterations; an int ``n``: every
    ``n``; a callable (e.g. ``print_progress``, or a ``ProgressDisplay`` of your
    own): call it with a ``Progress`` every ``getattr(progress, "every", 10)``.
    """
    if progress is True:
        return DEFAULT_EVERY, ProgressDisplay(DEFAULT_EVERY)
    if isinstance(progress, numbers.Integral) and not isinstance(progress, bool):
        if progress < 1:
            raise ValueError(f"progress must be True, a positive number of iterations or a callable, got {progress!r}")
        return int(progress), ProgressDisplay(int(progress))
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
        _largest_running_change(run_states, stopped, n_obs),
    )
    best_params = jax.tree_util.tree_map(lambda leaf: leaf[best], algorithm.params(run_states.state))
    return run_states, summary, best_params


def _largest_running_change(run_states, stopped, n_obs):
    """The largest |change| of the objective per observation over the last
    recorded iteration among running restarts (``inf`` before two iterations)."""
    history = run_states.history
    n = run_states.n_iter
    last = jnp.take_along_axis(history, jnp.clip(n - 1, 0)[:, None], axis=1)[:, 0]
    before = jnp.take_along_axis(history, jnp.clip(n - 2, 0)[:, None], axis=1)[:, 0]
    change = jnp.where(n >= 2, jnp.abs(last - before) / n_obs.astype(history.dtype), jnp.inf)
    change = jnp.where(jnp.isnan(change), jnp.inf, change)
    return jnp.where(jnp.all(stopped), 0.0, jnp.max(jnp.where(stopped, -jnp.inf, change)))


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
    elif callable(getattr(callback, "compiling", None)):  # a display told that compiling starts
        callback.compiling()
    start = time.perf_counter()
    compile_start = _CompileClock.start()
    statics = dict(make_algorithm=make_algorithm)
    run_states = exported.call("progress_start", _start, model, data, keys, init_params, sample_weight, max_iter=max_iter, **statics)
    done = 0
    while done < max_iter:
        done = min(done + every, max_iter)
        run_states, summary, best_params = exported.call(
            "progress_advance", _advance, model, data, run_states, sample_weight, tol, np.int32(done), max_iter=max_iter, **statics
        )
        iteration, best_log_likelihood, n_converged, n_stopped, change = jax.device_get(summary)
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
            change=float(change),
            tol=float(tol),
        )
        callback(info)
        if info.n_stopped == info.n_restarts:
            break
    return exported.call("progress_finish", _finish, model, data, run_states, sample_weight, **statics)
