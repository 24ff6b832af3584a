"""Row buckets: small data padded to a few sizes, so that one program serves many.

A compiled fit is specialized to the number of rows ``N``, so the folds of a
cross-validation, bootstrap samples and subsets each compiled their own program.
``pad_rows`` pads the prepared rows of an exponential-family mixture up to the
next bucket size (``bucket_size``: powers of two and 1.5 times them, fewer than
half as many rows again) with rows whose features are all zero and whose
``sample_weight`` is 0:

* they add exact zeros to the log-likelihood (``0 · log K``) and to the
  expected statistics (zero features), so every EM step equals the unpadded one
  up to the order of the sums;
* the number of observations is the sum of the weights, so it counts the real
  rows only (the convergence tolerance per observation is unchanged);
* the seeding sees them as absent: an all-zero statistics row has a 0 where every
  real row has the 1 of the features' ones column, and the seeders never draw
  such a row (``seeding.py``: ``present``).

Only data of at most ``MAX_BUCKETED_ROWS`` rows is padded (beyond that the
compilation is a small part of a fit, and the rows are chunked instead), and only
for models whose ``init`` was declared to skip padding rows
(``skips_padding``: ``jaxem.component_mixture`` does); a user's own ``init`` given
to ``exponential_family_mixture`` is not padded for.
"""

from __future__ import annotations

import weakref

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import validation
from jaxem._src.base import Model
from jaxem._src.chunking import MIN_ROWS_TO_CHUNK
from jaxem._src.inference import float_dtype

MAX_BUCKETED_ROWS = MIN_ROWS_TO_CHUNK
MIN_BUCKET = 16

# The init functions that never draw a padding row (see ``skips_padding``).
_SKIPS_PADDING: "weakref.WeakSet" = weakref.WeakSet()


def skips_padding(init):
    """Declares that ``init`` (a model's ``init``) ignores rows whose statistics are
    all zero, so that ``pad_rows`` may pad for it; returns ``init``."""
    _SKIPS_PADDING.add(init)
    return init


def bucket_size(n: int) -> int:
    """The smallest of 16, 24, 32, 48, 64, 96, ... (``2^k`` and ``3 · 2^(k-1)``) that is ``>= n``.

    Examples:
      >>> [bucket_size(n) for n in (10, 100, 150, 272)]
      [16, 128, 192, 384]
    """
    size = MIN_BUCKET
    while size < n:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


def can_pad(model: Model, data) -> bool:
    """Whether ``pad_rows`` applies: an additive (exponential-family) M-step,
    unchunked, an ``init`` that skips padding rows, data on one device."""
    additive = model.additive
    if additive is None or additive.chunk_size is not None or model.init not in _SKIPS_PADDING:
        return False
    for leaf in jax.tree_util.tree_leaves(data):
        sharding = getattr(leaf, "sharding", None)
        if sharding is not None and len(sharding.device_set) > 1:
            return False
    return additive.n_rows(data) <= MAX_BUCKETED_ROWS


def _pad(leaf, extra: int):
    widths = [(0, extra)] + [(0, 0)] * (leaf.ndim - 1)
    if validation.is_concrete(leaf):  # on the host: no program compiled per N
        return jnp.asarray(np.pad(np.asarray(leaf), widths))
    return jnp.pad(leaf, widths)


def pad_rows(model: Model, data, sample_weight):
    """``(data, sample_weight)`` padded to ``bucket_size`` rows (unchanged when
    ``can_pad`` is False; weights of ones when ``sample_weight`` is ``None``).

    Args:
      model: the model (its ``AdditiveMStep`` names the per-row fields).
      data: prepared data (``model.prepare``), ``N`` rows.
      sample_weight: ``[N]`` weights or ``None`` (all ones).

    Returns:
      Prepared data of ``bucket_size(N)`` rows, the extra ones all zeros, and
      ``[bucket_size(N)]`` weights, 0 on the extra rows.
    """
    if not can_pad(model, data):
        return data, sample_weight
    additive = model.additive
    n = additive.n_rows(data)
    extra = bucket_size(n) - n
    if sample_weight is None:  # also when extra == 0: the same program as the padded sizes
        sample_weight = np.ones((n,), float_dtype(data))
    if extra == 0:
        return data, jnp.asarray(sample_weight)
    padded = data._replace(**{name: _pad(getattr(data, name), extra) for name in additive.per_row})
    return padded, _pad(sample_weight, extra)
