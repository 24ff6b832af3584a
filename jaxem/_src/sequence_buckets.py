"""Sequence buckets: HMM batches padded to a few shapes, so one program serves many.

A compiled HMM fit is specialized to the batch's ``B`` sequences and ``T_max``
steps, so fits on subsets of the sequences, or on series of other lengths, each
compiled their own program. ``pad_sequences`` pads the *prepared* batch
(``ChainData``) to ``batch_bucket(B)`` sequences and ``buckets.bucket_size(T_max)``
steps:

* the extra steps of every sequence lie past its length, and the extra sequences
  have length 0; their features are all zero. The forward recursion, the
  statistics, the counts and the k-means start all follow the lengths, so a
  sequence of length 0 contributes nothing (``AdditiveMStep.zero_rows_are_empty``)
  and padded steps are never looked at: every EM step equals the unpadded one up
  to the order of the sums;
* the padding happens after ``prepare``, so a family's standardization (the
  Gaussian's) is that of the real steps: padding never enters it;
* ``sample_weight`` gets 0 for the extra sequences (ones for the real ones when
  none was given, so weighted and unweighted fits share the program).

Only batches of at most ``MAX_BUCKETED_STEPS`` steps after padding are padded (on
long series compilation is a small part of a fit and every padded step costs a
step of the recursion), and only for models whose ``init`` was declared to ignore
sequences of length 0 (``skips_empty_sequences``: the k-means start of
``jaxem.component_hmm``).
"""

from __future__ import annotations

import weakref

import jax
import numpy as np

from jaxem._src import buckets, validation
from jaxem._src.base import Model
from jaxem._src.inference import float_dtype

MAX_BUCKETED_STEPS = buckets.MAX_BUCKETED_ROWS

_SKIPS_EMPTY: "weakref.WeakSet" = weakref.WeakSet()


def skips_empty_sequences(init):
    """Declares that ``init`` (an HMM's ``init``) draws nothing from sequences of
    length 0 nor from steps past a sequence's length; returns ``init``."""
    _SKIPS_EMPTY.add(init)
    return init


def batch_bucket(b: int) -> int:
    """``B`` itself up to 4, then the smallest of 4, 6, 8, 12, 16, 24, ... that is ``>= B``.

    Examples:
      >>> [batch_bucket(b) for b in (1, 3, 5, 7, 9, 40)]
      [1, 3, 6, 8, 12, 48]
    """
    if b <= 4:
        return b
    size = 4
    while size < b:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


def padded_shape(b: int, t: int) -> tuple[int, int]:
    """``(B, T_max)`` after padding: ``(batch_bucket(B), buckets.bucket_size(T_max))``."""
    return batch_bucket(b), buckets.bucket_size(t)


def can_pad(model: Model, data) -> bool:
    """Whether ``pad_sequences`` applies: prepared HMM data (``ChainData``) of an
    unchunked additive M-step whose empty sequences contribute nothing, an ``init``
    that skips them, data on one device, at most ``MAX_BUCKETED_STEPS`` padded steps."""
    additive = model.additive
    if additive is None or not additive.zero_rows_are_empty or additive.chunk_size is not None:
        return False
    if model.init not in _SKIPS_EMPTY or not hasattr(data, "lengths") or not hasattr(data, "features"):
        return False
    for leaf in jax.tree_util.tree_leaves(data):
        sharding = getattr(leaf, "sharding", None)
        if sharding is not None and len(sharding.device_set) > 1:
            return False
    b, t = padded_shape(*data.features.stats.shape[:2])
    return b * t <= MAX_BUCKETED_STEPS


def _pad(leaf, widths):
    if validation.is_concrete(leaf):  # on the host: no program compiled per shape
        return jax.device_put(np.pad(np.asarray(leaf), widths))
    return jax.numpy.pad(leaf, widths)


def pad_sequences(model: Model, data, sample_weight):
    """``(data, sample_weight)`` padded to ``padded_shape`` (unchanged when
    ``can_pad`` is False).

    Args:
      model: an HMM (e.g. ``jaxem.models.gaussian_hmm``).
      data: its prepared data (``ChainData``: ``features`` with ``[B, T, ...]``
        per-step fields, ``lengths [B]``).
      sample_weight: ``[B]`` weights or ``None``.

    Returns:
      The batch with zero features on the extra steps and sequences, length 0
      for the extra sequences, and ``[batch_bucket(B)]`` weights (0 on the extra ones).
    """
    if not can_pad(model, data):
        return data, sample_weight
    b, t = data.features.stats.shape[:2]
    new_b, new_t = padded_shape(b, t)
    if sample_weight is None:  # also when nothing is padded: the same program as the padded shapes
        sample_weight = np.ones((b,), float_dtype(data))

    def pad_field(leaf):
        if np.ndim(leaf) >= 2 and tuple(np.shape(leaf)[:2]) == (b, t):  # per step
            return _pad(leaf, [(0, new_b - b), (0, new_t - t)] + [(0, 0)] * (np.ndim(leaf) - 2))
        return leaf  # shared by all steps (a standardization)

    features = jax.tree_util.tree_map(pad_field, data.features)
    lengths = _pad(data.lengths, [(0, new_b - b)])
    return data._replace(features=features, lengths=lengths), _pad(sample_weight, [(0, new_b - b)])
