"""EM over data that do not fit in memory: a streaming fit and online (mini-batch) EM.

Both work for models whose M-step maps additive expected statistics to parameters
(``AdditiveMStep``: every exponential-family mixture and every HMM of
``component_hmm``). Each chunk of raw items (rows of a mixture; a ``jaxem.Sequences``
batch of an HMM, e.g. from ``sequence_chunks`` over a memmap) is turned into
features and ``(log-likelihood, statistics)`` by one jitted function; the host only
adds the small statistics (``[K, F]``; an HMM's ``ChainStatistics``). Every chunk is
checked once (``model.check`` with the current params: NaN, width, out-of-range
symbols...), and a bad one is refused with a ``ValueError`` naming its index.

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
from jaxem._src import update as update_lib
from jaxem._src.base import Array, Model
from jaxem._src.engine import as_key
from jaxem._src.inference import n_observations
from jaxem._src.loop import FitResult, met_tol
from jaxem._src.sequences import Sequences

Chunks = Union[Callable[[], Iterable[Any]], Iterable[Any]]


def _chunk_iterator(chunks: Chunks):
    """A fresh iterator over the chunks (a callable is called; a sequence or a NumPy
    array / memmap is iterated; a one-shot iterator works for one pass only)."""
    return iter(chunks()) if callable(chunks) else iter(chunks)


def _check_reiterable(chunks) -> None:
    """``TypeError`` for a one-shot iterator (a generator, ``iter(...)``, a file
    object): batch EM reads the data once per iteration, so the second pass would
    find it exhausted."""
    if not callable(chunks) and iter(chunks) is chunks:
        raise TypeError(
            f"chunks is a one-shot iterator ({type(chunks).__name__}), but fit_streaming reads every chunk "
            "once per EM iteration: pass a list of chunks, an array or memmap, or a function returning a "
            "fresh iterator (e.g. lambda: (x[i:i + n] for i in range(0, len(x), n))); fit_online reads a "
            "stream once"
        )


def _additive(model: Model):
    return chunking.check_chunkable(model, "a streaming fit")


def _as_chunk(model: Model, chunk, dtype, index: int, params=None):
    """Chunk ``index`` as JAX arrays in ``dtype`` (a ``Sequences`` keeps its integer
    symbols and lengths); checked by ``model.check`` when ``params`` are given."""
    if isinstance(chunk, Sequences):
        obs = np.asarray(chunk.obs)  # a memmap slice is read here
        chunk = Sequences(obs, np.asarray(chunk.lengths))
    else:
        chunk = np.asarray(chunk)
        if chunk.dtype == object:
            raise ValueError(f"chunk {index}: expected a numeric array or a jaxem.Sequences, got ragged or object data")
    if params is not None:
        try:
            model.check(chunk, params)
        except (ValueError, TypeError) as error:
            raise ValueError(f"chunk {index}: {error}") from None
    elif not isinstance(chunk, Sequences) and not np.all(np.isfinite(chunk)):
        raise ValueError(f"chunk {index}: contains NaN or infinite values")
    if isinstance(chunk, Sequences):
        obs = chunk.obs if not np.issubdtype(chunk.obs.dtype, np.floating) else chunk.obs.astype(dtype)
        return Sequences(jnp.asarray(obs), jnp.asarray(chunk.lengths, jnp.int32))
    return jnp.asarray(chunk, dtype)


def _n_items(chunk) -> int:
    return int(np.shape(chunk.lengths if isinstance(chunk, Sequences) else chunk)[0])


def _add(total, part):
    return part if total is None else jax.tree_util.tree_map(jnp.add, total, part)


@functools.partial(jax.jit, static_argnames=("model", "chunk_size", "centred"))
def _chunk_statistics(model: Model, params, x, reference, chunk_size=None, centred=True):
    """``(log-likelihood, statistics, number of observations)`` of one raw chunk."""
    features = model.additive.prepare_like(x, reference)
    size = chunk_size or model.additive.n_rows(features)
    log_lik, stats = chunking.statistics(model, params, features, None, chunk_size=size, centred=centred)
    return log_lik, stats, n_observations(model, params, features)


@functools.partial(jax.jit, static_argnums=0)
def _log_prior(model: Model, params):
    return update_lib.log_prior(model, params)


@functools.partial(jax.jit, static_argnames="model")
def _maximize(model: Model, stats, reference, params):
    return model.additive.maximize(stats, reference, params)


def _pass(model, params, chunks, reference, dtype, chunk_size, check: bool = False):
    """One pass over the data: ``(total log-likelihood, statistics, n observations)``;
    with ``check``, every chunk is checked first (``_as_chunk``)."""
    total = None
    for index, chunk in enumerate(_chunk_iterator(chunks)):
        x = _as_chunk(model, chunk, dtype, index, params if check else None)
        if _n_items(x) == 0:
            continue
        total = _add(total, _chunk_statistics(model, params, x, reference, chunk_size))
    if total is None:
        raise ValueError("chunks yielded no data")
    return total


def _default_dtype(first):
    leaf = first.obs if isinstance(first, Sequences) else first
    return validation.to_float(jnp.asarray(np.asarray(leaf[:1]))).dtype


def _start(model, chunks, key, init_params, reference, dtype):
    first = None
    if reference is None or init_params is None:
        first = next(_chunk_iterator(chunks), None)
        if first is None:
            raise ValueError("chunks yielded no data")
        try:
            model.check(first, None if init_params is None else init_params)
        except (ValueError, TypeError) as error:
            raise ValueError(f"chunk 0: {error}") from None
        first = _as_chunk(model, first, dtype, 0)
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


def sequence_chunks(obs, lengths, n_sequences: int) -> Callable[[], Iterable[Sequences]]:
    """Batches of ``n_sequences`` sequences from hmmlearn's layout (e.g. a memmap).

    Args:
      obs: ``[sum(lengths), ...]`` the sequences one after another (a NumPy
        memmap is read one batch at a time).
      lengths: ``[B]`` positive integer lengths.
      n_sequences: sequences per batch.

    Returns:
      A callable returning a fresh iterator of ``jaxem.Sequences`` batches, each
      padded to the longest of all ``lengths`` (so that one compiled step serves
      every batch; the last batch may hold fewer sequences), for
      ``fit_streaming`` / ``fit_online``.

    Examples:
      >>> import numpy as np
      >>> obs, lengths = np.arange(10.0)[:, None], np.array([3, 3, 4])
      >>> [batch.lengths.tolist() for batch in jaxem.sequence_chunks(obs, lengths, 2)()]
      [[3, 3], [4]]
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer) or np.any(lengths < 1):
        raise ValueError("lengths must be a 1-D array of positive integers")
    if int(lengths.sum()) != np.shape(obs)[0]:
        raise ValueError(f"lengths sum to {int(lengths.sum())} but obs has {np.shape(obs)[0]} rows")
    n_sequences = validation.check_positive_int(n_sequences, "n_sequences")
    starts = np.concatenate([[0], np.cumsum(lengths)])
    t_max = int(lengths.max())

    def batches():
        for first in range(0, lengths.shape[0], n_sequences):
            last = min(first + n_sequences, lengths.shape[0])
            block = np.asarray(obs[starts[first] : starts[last]])
            padded = np.zeros((last - first, t_max) + block.shape[1:], block.dtype)
            for b in range(last - first):
                begin = starts[first + b] - starts[first]
                padded[b, : lengths[first + b]] = block[begin : begin + lengths[first + b]]
            yield Sequences(padded, lengths[first:last].astype(np.int32))

    return batches


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
    """Batch EM over chunks of items read one at a time (e.g. from a NumPy memmap).

    Every iteration makes one pass over ``chunks``, adding each chunk's expected
    sufficient statistics (computed by a jitted function), then takes the
    closed-form M-step; the result is the same as ``jaxem.fit`` on all the rows
    at once. A final pass computes the log-likelihood of the returned params.

    Args:
      model: an exponential-family mixture (e.g. ``jaxem.models.gaussian_mixture``)
        or an HMM (e.g. ``jaxem.models.gaussian_hmm``).
      chunks: a callable returning a fresh iterable of chunks (called once per
        pass), or a re-iterable sequence of chunks: ``[n_i, D]`` rows for a
        mixture, ``jaxem.Sequences`` batches for an HMM (``sequence_chunks``).
        Chunks of a new shape compile once each, so keep their sizes equal (the
        last may differ). Every chunk is checked on the first pass; a bad one
        (NaN, another width, out-of-range symbols) raises a ``ValueError``
        naming its index.
      key: PRNG key or int, to draw starting params from the first chunk with
        ``model.init`` (ignored when ``init_params`` is given).
      init_params: starting parameters.
      max_iter: maximum number of passes (EM iterations).
      tol: tolerance on the change in log-likelihood per observation (row, or
        step of a sequence), as in ``jaxem.fit``: a rise below ``tol``, or a fall
        within rounding (a larger fall never counts as convergence).
      reference: prepared features whose standardization (``shift``, ``scale``)
        every chunk uses; defaults to ``model.prepare(first chunk)``.
      chunk_size: optionally split each chunk further into rows of this size on
        the device (see ``fit(..., chunk_size=)``).
      dtype: compute dtype of the chunks (default: that of the first chunk, as a
        JAX array: float32 unless ``jax_enable_x64``).

    Returns:
      A ``FitResult`` with one restart.

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")                  # or np.load("big.npy", mmap_mode="r")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> chunks = lambda: (x[i : i + 100] for i in range(0, len(x), 100))  # a fresh pass each call
      >>> result = jaxem.fit_streaming(model, chunks, key=0, max_iter=50)
      >>> result.params.means.shape
      (2, 2)
    """
    _additive(model)
    _check_reiterable(chunks)
    max_iter = validation.check_positive_int(max_iter, "max_iter")
    tol = validation.check_nonnegative_float(tol, "tol")
    if chunk_size is not None:
        chunk_size = validation.check_positive_int(chunk_size, "chunk_size")
    if dtype is None:
        first = next(_chunk_iterator(chunks), None)
        if first is None:
            raise ValueError("chunks yielded no data")
        dtype = _default_dtype(first)
    reference, params = _start(model, chunks, key, init_params, reference, dtype)
    history = np.full((max_iter,), np.nan)
    previous = -math.inf
    converged = False
    n_iter = 0
    while n_iter < max_iter and not converged:
        log_lik, stats, n = _pass(model, params, chunks, reference, dtype, chunk_size, check=n_iter == 0)
        log_lik = float(log_lik) + float(_log_prior(model, params))  # the objective: + log prior (MAP-EM)
        n = float(n)
        history[n_iter] = log_lik
        n_iter += 1
        params = _maximize(model, stats, reference, params)
        mean = log_lik / n
        # jaxem.fit's rule (loop.met_tol), in the compute dtype: a rise below tol or a
        # fall within rounding; a larger fall is an oscillation, never convergence
        converged = bool(met_tol(jnp.asarray(mean, dtype), jnp.asarray(previous, dtype), tol))
        previous = mean
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
        log_prior=jnp.asarray(_log_prior(model, params), final.dtype),
    )


class OnlineResult(NamedTuple):
    """What ``fit_online`` reports.

    Attributes:
      params: the parameters after the last batch.
      mean_log_likelihoods: ``[n_batches]`` mean log-likelihood per observation
        (row, or step of a sequence) of each batch under the parameters *before* it was used (a held-out estimate).
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

    After batch ``t`` (``t = 0, 1, ...``) of ``n_t`` items (rows, or sequences of
    an HMM), the running statistics per item are ``s ← (1 - ρ_t) s + ρ_t · stats_t / n_t`` with the decaying step size
    ``ρ_t = (t + offset)^(-kappa)`` (Cappé & Moulines 2009; ``0.5 < kappa ≤ 1``
    gives convergence), and the params are the closed-form M-step of ``s``. The
    first batch sets ``s`` from the starting params' E-step.

    Args:
      model: an exponential-family mixture or an HMM.
      batches: an iterable of ``[n_t, D]`` batches, or of ``jaxem.Sequences``
        batches for an HMM (a stream; read once). A bad batch raises a
        ``ValueError`` naming its index.
      key / init_params / reference / dtype: as in ``fit_streaming`` (starting
        params and standardization from the first batch by default).
      kappa: step-size decay exponent in (0.5, 1].
      offset: ``offset ≥ 1`` delays the decay (larger = smaller early steps).

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> batches = (x[i : i + 64] for i in range(0, len(x), 64))  # any iterable of [B, D] arrays
      >>> online = jaxem.fit_online(model, batches, key=0)
      >>> online.params.means.shape
      (2, 2)
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
        dtype = _default_dtype(first)
    reference, params = _start(model, [first], key, init_params, reference, dtype)
    running = None
    trace = []
    t = 0
    for index, batch in enumerate(_prepend(first, iterator)):
        x = _as_chunk(model, batch, dtype, index, params)
        n_items = _n_items(x)
        if n_items == 0:
            continue
        # plain statistics: the running mean mixes batches of different params
        log_lik, stats, n_obs = _chunk_statistics(model, params, x, reference, centred=False)
        trace.append(float(log_lik) / float(n_obs))
        per_item = jax.tree_util.tree_map(lambda s: s / n_items, stats)
        rho = 1.0 if running is None else float((t + offset) ** (-kappa))
        running = per_item if running is None else jax.tree_util.tree_map(lambda r, p: (1.0 - rho) * r + rho * p, running, per_item)
        params = _maximize(model, running, reference, params)
        t += 1
    return OnlineResult(params=params, mean_log_likelihoods=jnp.asarray(trace), n_batches=t)


def _prepend(first, iterator):
    yield first
    yield from iterator
