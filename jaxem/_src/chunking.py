"""Row chunking: the E-step and the expected statistics streamed over row chunks.

For an exponential-family mixture an EM step needs only the *additive* expected
sufficient statistics ``Σ_n r_nk T(x_n)`` (``[K, F]``) and the log-likelihood, so the
rows can be processed ``chunk_size`` at a time in a ``lax.fori_loop``: each chunk is a
``lax.dynamic_slice`` of the prepared features (no padded copy of the data), its
E-step is the usual autodiff ``e_step`` and its statistics one matrix product. When
``chunk_size`` does not divide ``N``, the last chunk is the last ``chunk_size``
rows with the already-counted ones weighted 0 (``chunk_weight``), so the step is
compiled once. Peak extra memory
is ``O(chunk_size · (K + F))`` instead of ``O(N · K)``, and the result equals the
unchunked step up to the order of floating-point additions.

Chunking applies to models whose ``m_step`` is an exponential-family
``MixtureMStep`` (every built-in mixture) and whose prepared data have per-row
fields ``stats [N, F]`` and ``x [N, D]`` (the other fields, such as a Gaussian's
``shift`` and ``scale``, are shared by all rows).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxem._src.base import Array, Model
from jaxem._src.expfam import MixtureMStep, expected_stats


# ``chunk_size="auto"``: the largest power-of-two rows per chunk, between these
# bounds, whose features take at most CHUNK_BYTES (about one core's L2 cache: a
# chunk's features are read by both matrix products of the step). Measured (fit,
# N = 200 000, D = 16, K = 32, ms/iteration, 2-core AMD EPYC Zen 4 with 2 MiB L2 per
# core; benchmarks/RESULTS.md) over 2048/4096/8192/16384 rows: full float32
# 40/39/42/44, full float64 87/86/103/120, diag float32 29/20/21/18, diag float64
# 38/27/26/28; this rule picks 4096, 2048, 16384 and 8192 rows.
CHUNK_BYTES = 3 * 2**20
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 2048, 16384
# Fewer rows than this are not chunked (one pass is as fast and compiles faster).
MIN_ROWS_TO_CHUNK = 32768


def rows_per_chunk(n_features: int, itemsize: int) -> int:
    """The ``"auto"`` rows per chunk for ``[N, n_features]`` features of ``itemsize`` bytes."""
    rows = MAX_CHUNK_ROWS
    while rows > MIN_CHUNK_ROWS and rows * n_features * itemsize > CHUNK_BYTES:
        rows //= 2
    return rows


def auto_chunk_size(model: Model, data):
    """The ``chunk_size="auto"`` choice: ``rows_per_chunk`` rows for an
    exponential-family mixture on more than ``MIN_ROWS_TO_CHUNK`` rows on one
    device, else ``None`` (unchunked). The temporaries are then O(chunk) instead
    of O(N · K), and a chunk's features stay in cache between the two matrix
    products. Data sharded over several devices are not chunked (a chunk would
    gather rows across them).
    """
    if not supports_statistics(model):
        return None
    for leaf in jax.tree_util.tree_leaves(data):
        sharding = getattr(leaf, "sharding", None)
        if sharding is not None and len(sharding.device_set) > 1:
            return None
    prepared = jax.eval_shape(model.prepare, data)
    if not hasattr(prepared, "stats") or prepared.stats.ndim != 2:
        return None
    n, n_features = prepared.stats.shape
    return rows_per_chunk(n_features, prepared.stats.dtype.itemsize) if n > MIN_ROWS_TO_CHUNK else None


def supports_statistics(model: Model) -> bool:
    """Whether ``model``'s M-step works from additive expected statistics."""
    return isinstance(model.m_step, MixtureMStep)


def check_chunkable(model: Model, what: str = "chunk_size") -> None:
    if not supports_statistics(model):
        raise ValueError(
            f"{what} needs a model whose M-step works from additive expected statistics "
            "(an exponential-family mixture, e.g. jaxem.models.gaussian_mixture); "
            "this model's m_step is a plain function"
        )


def rows(features, start, size: int):
    """Rows ``start:start+size`` of the per-row fields (``stats``, ``x``) of features."""
    return features._replace(
        stats=jax.lax.dynamic_slice_in_dim(features.stats, start, size, axis=0),
        x=jax.lax.dynamic_slice_in_dim(features.x, start, size, axis=0),
    )


def chunk_statistics(model: Model, params, features, sample_weight=None):
    """``(log_likelihood, stats [K, F])`` of one chunk of prepared rows.

    The posterior is the gradient of the log-partition (``jaxem.e_step``); the
    statistics are ``posteriorᵀ @ T(x)`` (column 0: expected counts).
    """
    from jaxem._src.engine import e_step  # engine imports this module lazily

    log_lik, posterior = e_step(model, params, features, sample_weight)
    return log_lik, expected_stats(posterior, features.stats)


def statistics(model: Model, params, features, sample_weight=None, *, chunk_size: int):
    """``(total log-likelihood, [K, F] expected statistics)`` over row chunks.

    Args:
      model: an exponential-family mixture.
      params: its parameters.
      features: prepared data (``model.prepare(x)``) with ``stats [N, F]``.
      sample_weight: optional ``[N]`` weights.
      chunk_size: rows per chunk (static).
    """
    n = features.stats.shape[0]
    chunk_size = min(chunk_size, n)

    def body(i, carry):
        start = jnp.minimum(i * chunk_size, n - chunk_size)
        weight = chunk_weight(sample_weight, start, i * chunk_size, chunk_size, n, features.stats.dtype)
        log_lik, stats = chunk_statistics(model, params, rows(features, start, chunk_size), weight)
        return carry[0] + log_lik, carry[1] + stats

    shapes = jax.eval_shape(lambda: chunk_statistics(model, params, rows(features, 0, chunk_size)))
    zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return jax.lax.fori_loop(0, -(-n // chunk_size), body, zeros)


def chunk_weight(sample_weight, start, first_new, chunk_size: int, n: int, dtype):
    """``[chunk_size]`` weights of rows ``start:start+chunk_size`` (or None: all 1).

    When ``chunk_size`` does not divide ``N``, the last chunk is the last
    ``chunk_size`` rows, overlapping its predecessor, so that one compiled step
    serves every chunk (a separate tail chunk compiled the step twice); its rows
    before ``first_new`` were already counted and get weight exactly 0, so they
    add exact zeros to the log-likelihood and the statistics (they are real,
    finite rows, so ``0 · log p`` is 0, not NaN).
    """
    weight = None if sample_weight is None else jax.lax.dynamic_slice_in_dim(sample_weight, start, chunk_size)
    if n % chunk_size == 0:  # no overlap
        return weight
    fresh = start + jnp.arange(chunk_size) >= first_new
    if weight is None:
        return fresh.astype(dtype)
    return jnp.where(fresh, weight, jnp.zeros((), weight.dtype))


def em_step(model: Model, params, features, sample_weight=None, *, chunk_size: int):
    """One EM step over row chunks: ``(new_params, log_likelihood of params)``."""
    log_lik, stats = statistics(model, params, features, sample_weight, chunk_size=chunk_size)
    return model.m_step.from_stats(stats, features, params), log_lik


def log_likelihood(model: Model, params, features, sample_weight=None, *, chunk_size: int) -> Array:
    """Total log-likelihood, summed over row chunks."""
    return statistics(model, params, features, sample_weight, chunk_size=chunk_size)[0]
