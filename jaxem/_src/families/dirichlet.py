"""The Dirichlet prior on probability vectors: mixing weights, HMM initial
probabilities and transition rows, categorical emission rows (and, with two
categories, the Beta prior of a Bernoulli probability).

A Dirichlet(α) prior adds ``α - 1`` pseudo-counts to the expected counts ``n``;
the MAP probabilities are

    p_i ∝ n_i + α_i − 1 (+ the tiny pseudo-count),

hmmlearn's ``startprob_prior``/``transmat_prior``/``emissionprob_prior`` update.
The log density is ``Σ_i (α_i − 1) log p_i`` up to a constant that does not
depend on ``p``. Concentrations below 1 are refused at the public boundary
(``check_concentration``): the density is then unbounded at the faces of the
simplex, so no MAP exists (hmmlearn clips ``n + α − 1`` at 0 instead, which
maximizes nothing).
"""

from __future__ import annotations

from typing import Optional

import jax.numpy as jnp
import numpy as np

from jaxem._src.base import Array
from jaxem._src.expfam import tiny_count


def check_concentration(concentration, name: str, shape: Optional[tuple] = None) -> np.ndarray:
    """A Dirichlet concentration as float64 NumPy, checked finite and ``>= 1``, and
    broadcastable to ``shape`` when given (``ValueError`` naming ``name``)."""
    try:
        value = np.asarray(concentration, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or an array of numbers, got {type(concentration).__name__}") from None
    if not np.all(np.isfinite(value)) or np.any(value < 1.0):
        raise ValueError(
            f"{name} must be finite and >= 1 (a Dirichlet concentration below 1 has no MAP), got {concentration!r}"
        )
    if shape is not None:
        try:
            np.broadcast_to(value, shape)
        except ValueError:
            raise ValueError(f"{name} has shape {value.shape}, which does not broadcast to {shape}") from None
    return value


def pseudo_counts(concentration, like: Array) -> Array:
    """``α − 1`` broadcast to ``like``'s shape and dtype (zeros for ``None``)."""
    if concentration is None:
        return jnp.zeros_like(like)
    return jnp.broadcast_to(jnp.asarray(concentration, like.dtype) - 1.0, like.shape)


def map_probabilities(counts: Array, concentration, axis: int = -1, mask: Optional[Array] = None) -> Array:
    """MAP probabilities ``∝ counts + α − 1 + ε`` along ``axis``; entries where
    ``mask`` is False stay exactly zero (structural zeros)."""
    counts = counts + pseudo_counts(concentration, counts) + tiny_count(counts.dtype)
    if mask is not None:
        counts = jnp.where(mask, counts, jnp.zeros_like(counts))
    return counts / jnp.sum(counts, axis=axis, keepdims=True)


def log_density(probs: Array, concentration) -> Array:
    """``Σ (α − 1) log p`` over all entries (a scalar; 0 for ``None``). Entries
    with ``α = 1`` or ``p = 0`` (structural zeros) contribute nothing."""
    if concentration is None:
        return jnp.zeros((), probs.dtype)
    weight = pseudo_counts(concentration, probs)
    used = (weight != 0) & (probs > 0)
    safe = jnp.where(used, probs, jnp.ones_like(probs))
    return jnp.sum(jnp.where(used, weight * jnp.log(safe), jnp.zeros_like(probs)))
