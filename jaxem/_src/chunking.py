"""The E-step of an additive M-step, streamed over row chunks.

For a model whose M-step is an ``AdditiveMStep`` (every exponential-family mixture),
an EM step needs only the log-likelihood and the additive expected statistics
(``[K, F]``), so the rows can be processed ``chunk_size`` at a time in a
``lax.fori_loop``: each chunk is ``AdditiveMStep.rows`` of the prepared data (a
``lax.dynamic_slice`` of every per-row field, no padded copy), its E-step is the
usual autodiff ``e_step`` and its statistics ``AdditiveMStep.statistics``. When
``chunk_size`` does not divide ``N``, the last chunk is the last ``chunk_size``
rows with the already-counted ones weighted 0 (``chunk_weight``), so the step is
compiled once. Peak extra memory is ``O(chunk_size · (K + F))`` instead of
``O(N · K)``, and the result equals the unchunked step up to the order of
floating-point additions.

"Chunk" means a block of rows here and nowhere else. The chunk size is a static
setting of the M-step (``with_chunk_size``), chosen at the public boundary, so the
engine calls ``log_likelihood_and_statistics`` and never sees it.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jaxem._src import validation
from jaxem._src.base import AdditiveMStep, Model
from jaxem._src.inference import e_step

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


def auto_chunk_size(model: Model, data) -> Optional[int]:
    """The ``chunk_size="auto"`` choice: ``rows_per_chunk`` rows for a model with an
    ``AdditiveMStep`` on more than ``MIN_ROWS_TO_CHUNK`` rows on one device, else
    ``None`` (unchunked). The temporaries are then O(chunk) instead of O(N · K),
    and a chunk's features stay in cache between the two matrix products. Data
    sharded over several devices are not chunked (a chunk would gather rows
    across them).
    """
    additive = model.additive
    if additive is None:
        return None
    for leaf in jax.tree_util.tree_leaves(data):
        sharding = getattr(leaf, "sharding", None)
        if sharding is not None and len(sharding.device_set) > 1:
            return None
    prepared = jax.eval_shape(model.prepare, data)
    widest = max((row_field(prepared, name) for name in additive.per_row), key=lambda leaf: leaf.size)
    if widest.ndim != 2:
        return None
    n, n_features = widest.shape
    return rows_per_chunk(n_features, widest.dtype.itemsize) if n > MIN_ROWS_TO_CHUNK else None


def row_field(data, name: str):
    """The field ``name`` of prepared data; a dotted name (``"features.stats"``)
    reads a field of a nested NamedTuple (an HMM's ``ChainData``)."""
    for part in name.split("."):
        data = getattr(data, part)
    return data


def check_chunkable(model: Model, what: str = "chunk_size") -> AdditiveMStep:
    """``model.additive``, or a ``ValueError`` naming ``what`` needed it."""
    if model.additive is None:
        raise ValueError(
            f"{what} needs a model whose M-step works from additive expected statistics "
            "(an exponential-family mixture, e.g. jaxem.models.gaussian_mixture); "
            "this model's m_step is a plain function"
        )
    return model.additive


def with_chunk_size(model: Model, chunk_size, data) -> Model:
    """``model`` with its ``AdditiveMStep`` set to ``chunk_size`` rows per chunk.

    ``chunk_size`` is ``fit``'s argument: ``"auto"`` (``auto_chunk_size``),
    ``None`` (one pass) or a positive int (``ValueError`` for a model without an
    additive M-step). Models built from equal options stay equal, so ``jit``
    caches are shared.
    """
    if isinstance(chunk_size, str) and chunk_size == "auto":
        rows = auto_chunk_size(model, data)
    elif chunk_size is None:
        rows = None
    else:
        check_chunkable(model)
        rows = validation.check_positive_int(chunk_size, "chunk_size")
    additive = model.additive
    if additive is None or additive.chunk_size == rows:
        return model
    return model._replace(m_step=additive._replace(chunk_size=rows))


def chunk_statistics(model: Model, params, features, sample_weight=None, centred: bool = True):
    """``(log_likelihood, statistics)`` of prepared rows in one pass.

    The posterior is the gradient of the log-partition (``jaxem.e_step``); the
    statistics are ``AdditiveMStep.statistics`` of it (``posteriorᵀ @ T(x)``),
    taken about ``params`` (a Gaussian's current means) unless ``centred`` is
    False (statistics that are mixed across params, as online EM does).
    """
    log_lik, posterior = e_step(model, params, features, sample_weight)
    return log_lik, model.additive.expected_statistics(features, posterior, params if centred else None)


def statistics(model: Model, params, features, sample_weight=None, *, chunk_size: int, centred: bool = True):
    """``(total log-likelihood, statistics)`` summed over row chunks.

    Args:
      model: a model with an ``AdditiveMStep``.
      params: its parameters.
      features: prepared data (``model.prepare(x)``).
      sample_weight: optional ``[N]`` weights.
      chunk_size: rows per chunk (static).
      centred: as in ``chunk_statistics``.
    """
    additive = model.additive
    n = additive.n_rows(features)
    chunk_size = min(chunk_size, n)
    dtype = getattr(features, additive.per_row[0]).dtype

    def body(i, carry):
        start = jnp.minimum(i * chunk_size, n - chunk_size)
        weight = chunk_weight(sample_weight, start, i * chunk_size, chunk_size, n, dtype)
        log_lik, sums = chunk_statistics(model, params, additive.rows(features, start, chunk_size), weight, centred)
        return carry[0] + log_lik, jax.tree_util.tree_map(jnp.add, carry[1], sums)

    shapes = jax.eval_shape(lambda: chunk_statistics(model, params, additive.rows(features, 0, chunk_size), None, centred))
    zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return jax.lax.fori_loop(0, -(-n // chunk_size), body, zeros)


def log_likelihood_and_statistics(model: Model, params, features, sample_weight=None):
    """``(total log-likelihood, statistics)`` in chunks of ``model.additive.chunk_size``
    rows, or in one pass when it is ``None``."""
    chunk_size = model.additive.chunk_size
    if chunk_size is None:
        return chunk_statistics(model, params, features, sample_weight)
    return statistics(model, params, features, sample_weight, chunk_size=chunk_size)


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


def per_row_slicer(per_row: tuple):
    """An ``AdditiveMStep.rows`` for NamedTuple data whose ``per_row`` fields have
    the rows on axis 0 (the other fields are shared by all rows)."""

    def rows(data, start, size: int):
        return data._replace(
            **{name: jax.lax.dynamic_slice_in_dim(getattr(data, name), start, size, axis=0) for name in per_row}
        )

    return rows

