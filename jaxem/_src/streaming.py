"""EM over data that do not fit in memory: a streaming fit and online (mini-batch) EM.

Both work for models whose M-step maps additive expected statistics to parameters
(``AdditiveMStep``: every exponential-family mixture). Each chunk of raw rows is turned
into features and ``(log-likelihood, [K, F] statistics)`` by one jitted function;
the host only adds small ``[K, F]`` arrays.

Standardization. A Gaussian's features are formed from standardized data
``(x - shift) / scale``; statistics of different chunks can only be added if every
chunk uses the same ``shift`` and ``scale``. They are taken from the first chunk
(or from ``reference``, e.g. ``model.prepare(sample)`` of a representative sample)
and then fixed for every chunk and pass. This changes only the rounding, not the
estimate: parameters are always reported in the original units and ``reg_covar`` is
added in the original units, so with float64 a streaming fit equals the in-memory fit
to ~1e-10. In float32 the first chunk should be representative (its scale sets the
conditioning of the second moments).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Iterable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import chunking, validation
from jaxem._src.base import Array, Model
from jaxem._src.engine import as_key
from jaxem._src.loop import FitResult

Chunks = Union[Callable[[], Iterable[Any]], Iterable[Any]]


def _chunk_iterator(chunks: Chunks):
    """A fresh iterator over the chunks (a callable is called; a sequence or a NumPy
    array / memmap is iterated; a one-shot iterator works for one pass only)."""
    return iter(chunks()) if callable(chunks) else iter(chunks)


def _additive(model: Model):
    return chunking.check_chunkable(model, "a streaming fit")


def _as_chunk(chunk, dtype) -> Array:
    chunk = np.asarray(chunk)  # a memmap slice is read here
    if not np.all(np.isfinite(chunk)):
        raise ValueError("a chunk of the data contains NaN or infinite values")
    return jnp.asarray(chunk, dtype)


@functools.partial(jax.jit, static_argnames=("model", "chunk_size", "centred"))
def _chunk_statistics(model: Model, params, x, reference, chunk_size=None, centred=True):
    features = model.additive.prepare_like(x, reference)
    size = chunk_size or x.shape[0]
    return chunking.statistics(model, params, features, None, chunk_size=size, centred=centred)


@functools.partial(jax.jit, static_argnames="model")
def _maximize(model: Model, stats, reference, params):
    return model.additive.maximize(stats, reference, params)


def _pass(model, params, chunks, reference, dtype, chunk_size):
    """One pass over the data: ``(total log-likelihood, [K, F] statistics, n rows)``."""
    total = None
    n = 0
    for chunk in _chunk_iterator(chunks):
        x = _as_chunk(chunk, dtype)
        if x.shape[0] == 0:
            continue
        part = _chunk_statistics(model, params, x, reference, chunk_size)
        total = part if total is None else (total[0] + part[0], total[1] + part[1])
        n += x.shape[0]
    if total is None:
        raise ValueError("chunks yielded no data")
    return total[0], total[1], n


def _start(model, chunks, key, init_params, reference, dtype):
    first = None
    if reference is None or init_params is None:
        first = next(_chunk_iterator(chunks), None)
        if first is None:
            raise ValueError("chunks yielded no data")
        first = _as_chunk(first, dtype)
        model.check(first, None if init_params is None else init_params)
    if reference is None:
        reference = model.prepare(first)
    # only the shared fields (shift, scale) and the row shape are read from it
    reference = model.additive.rows(reference, 0, 1)
    if init_params is None:
        if key is None:
            raise ValueError("pass init_params or a key (to draw them from the first chunk)")
        init_params = jax.jit(model.init)(as_key(key), model.additive.prepare_like(first, reference))
    init_params = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, dtype), init_params)
    return reference, init_params


def fit_streaming(
    model: Model,
    chunks: Chunks,
    *,
    key=None,
    init_params=None,
    max_iter: int = 100,
    tol: float = 1e-3,
    reference=None,
    chunk_size: Optional[int] = None,
    dtype=None,
) -> FitResult:
    """Batch EM over chunks of rows read one at a time (e.g. from a NumPy memmap).

    Every iteration makes one pass over ``chunks``, adding each chunk's expected
    sufficient statistics (computed by a jitted function), then takes the
    closed-form M-step; the result is the same as ``jaxem.fit`` on all the rows
    at once. A final pass computes the log-likelihood of the returned params.

    Args:
      model: an exponential-family mixture (e.g. ``jaxem.models.gaussian_mixture``).
      chunks: a callable returning a fresh iterable of ``[n_i, D]`` chunks (called
        once per pass), or a re-iterable sequence of chunks. Chunks of a new shape
        compile once each, so keep their sizes equal (the last may differ).
      key: PRNG key or int, to draw starting params from the first chunk with
        ``model.init`` (ignored when ``init_params`` is given).
      init_params: starting parameters.
      max_iter: maximum number of passes (EM iterations).
      tol: tolerance on the change in log-likelihood per row.
      reference: prepared features whose standardization (``shift``, ``scale``)
        every chunk uses; defaults to ``model.prepare(first chunk)``.
      chunk_size: optionally split each chunk further into rows of this size on
        the device (see ``fit(..., chunk_size=)``).
      dtype: compute dtype of the chunks (default: that of the first chunk, as a
        JAX array: float32 unless ``jax_enable_x64``).

    Returns:
      A ``FitResult`` with one restart.

    Example:
      >>> x = np.load("big.npy", mmap_mode="r")                   # [N, D] on disk
      >>> chunks = lambda: (x[i : i + 100_000] for i in range(0, len(x), 100_000))
      >>> result = jaxem.fit_streaming(model, chunks, key=0, max_iter=50)
    """
    _additive(model)
    max_iter = validation.check_positive_int(max_iter, "max_iter")
    tol = validation.check_nonnegative_float(tol, "tol")
    if chunk_size is not None:
        chunk_size = validation.check_positive_int(chunk_size, "chunk_size")
    if dtype is None:
        first = next(_chunk_iterator(chunks), None)
        if first is None:
            raise ValueError("chunks yielded no data")
        dtype = validation.to_float(jnp.asarray(np.asarray(first[:1]))).dtype
    reference, params = _start(model, chunks, key, init_params, reference, dtype)
    history = np.full((max_iter,), np.nan)
    previous = -math.inf
    converged = False
    n_iter = 0
    while n_iter < max_iter and not converged:
        log_lik, stats, n = _pass(model, params, chunks, reference, dtype, chunk_size)
        log_lik = float(log_lik)
        history[n_iter] = log_lik
        n_iter += 1
        params = _maximize(model, stats, reference, params)
        converged = abs(log_lik / n - previous) < tol
        previous = log_lik / n
        if math.isnan(log_lik):
            break
    final, _, _ = _pass(model, params, chunks, reference, dtype, chunk_size)
    return FitResult(
        params=params,
        log_likelihood=final,
        history=jnp.asarray(history, final.dtype)[None, :],
        n_iter=jnp.asarray([n_iter], jnp.int32),
        converged=jnp.asarray([converged]),
        all_params=jax.tree_util.tree_map(lambda leaf: leaf[None], params),
        all_log_likelihoods=final[None],
        best_restart=jnp.asarray(0, jnp.int32),
    )


class OnlineResult(NamedTuple):
    """What ``fit_online`` reports.

    Attributes:
      params: the parameters after the last batch.
      mean_log_likelihoods: ``[n_batches]`` mean log-likelihood per row of each
        batch under the parameters *before* it was used (a held-out estimate).
      n_batches: number of batches used.
    """

    params: Any
    mean_log_likelihoods: Array
    n_batches: int


def fit_online(
    model: Model,
    batches: Iterable[Any],
    *,
    key=None,
    init_params=None,
    reference=None,
    kappa: float = 0.6,
    offset: float = 2.0,
    dtype=None,
) -> OnlineResult:
    """Online (mini-batch) EM: a stochastic approximation of the expected statistics.

    After batch ``t`` (``t = 0, 1, ...``) of ``n_t`` rows, the running statistics per
    row are ``s ← (1 - ρ_t) s + ρ_t · stats_t / n_t`` with the decaying step size
    ``ρ_t = (t + offset)^(-kappa)`` (Cappé & Moulines 2009; ``0.5 < kappa ≤ 1``
    gives convergence), and the params are the closed-form M-step of ``s``. The
    first batch sets ``s`` from the starting params' E-step.

    Args:
      model: an exponential-family mixture.
      batches: an iterable of ``[n_t, D]`` batches (a stream; read once).
      key / init_params / reference / dtype: as in ``fit_streaming`` (starting
        params and standardization from the first batch by default).
      kappa: step-size decay exponent in (0.5, 1].
      offset: ``offset ≥ 1`` delays the decay (larger = smaller early steps).

    Example:
      >>> result = jaxem.fit_online(model, (x[i : i + 4096] for i in range(0, len(x), 4096)), key=0)
    """
    _additive(model)
    if not 0.5 < float(kappa) <= 1.0:
        raise ValueError(f"kappa must be in (0.5, 1], got {kappa!r}")
    if not float(offset) >= 1.0:
        raise ValueError(f"offset must be >= 1, got {offset!r}")
    iterator = iter(batches)
    first = next(iterator, None)
    if first is None:
        raise ValueError("batches yielded no data")
    if dtype is None:
        dtype = validation.to_float(jnp.asarray(np.asarray(first[:1]))).dtype
    reference, params = _start(model, [first], key, init_params, reference, dtype)
    running = None
    trace = []
    t = 0
    for batch in _prepend(first, iterator):
        x = _as_chunk(batch, dtype)
        if x.shape[0] == 0:
            continue
        # plain statistics: the running mean mixes batches of different params
        log_lik, stats = _chunk_statistics(model, params, x, reference, centred=False)
        trace.append(float(log_lik) / x.shape[0])
        per_row = stats / x.shape[0]
        rho = 1.0 if running is None else float((t + offset) ** (-kappa))
        running = per_row if running is None else (1.0 - rho) * running + rho * per_row
        params = _maximize(model, running, reference, params)
        t += 1
    return OnlineResult(params=params, mean_log_likelihoods=jnp.asarray(trace), n_batches=t)


def _prepend(first, iterator):
    yield first
    yield from iterator
