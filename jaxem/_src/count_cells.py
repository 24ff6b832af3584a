"""Multinomial rows with missing cells (NaN): the exact likelihood of the observed
cells and the expected counts of the missing ones.

Used by ``categorical_mixture(..., missing="marginalize")`` and
``multinomial_hmm(..., missing="marginalize")``. A row (or step) holds counts
``x [S]`` over ``S`` categories; ``m [S]`` marks the observed cells, ``N_O = Σ_O x``
is their total and ``P_O = Σ_O p_k`` (``P_M = 1 - P_O``, summed directly) the
probability of landing in them under component ``k``. Two cases:

- the number of trials ``n`` is known (``n_trials``): the missing cells hold
  ``L = n - N_O`` draws in all, so the observed cells and that lump are one
  multinomial, ``log p(x_O) = log n! - Σ_O log x! - log L! + Σ_O x log p + L log P_M``;
  the expected count of a missing cell ``j`` is ``L p_j / P_M``;
- it is not (every row has its own total): the row's total is unknown as soon as
  a cell is missing, so the row's likelihood is that of its observed cells given
  their total, ``log N_O! - Σ_O log x! + Σ_O x log p - N_O log P_O`` (each of the
  ``N_O`` draws a categorical draw conditioned to land in ``O``); the EM count of a
  missing cell is the expected number of draws that landed there before each
  observed one, ``N_O p_j / P_O``.

A row with every cell observed gives exactly the complete-data terms; a row with
none observed (``N_O = 0`` and ``n`` unknown, e.g. a missing one-hot symbol)
contributes ``log p = 0`` and no counts. Either way EM stays exact: the M-step
``p_k ∝ Σ_n r_nk E[x_n | x_O, k] + ε`` maximizes the expected complete-data
log-likelihood.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jaxem._src.base import Array
from jaxem._src.expfam import log_probabilities, tiny_count


def _lump(x: Array, mask: Array, probs: Array, n_trials: Optional[int]):
    """``(lump count [N, 1], lump probability [N, K], partial [N, 1])``: the draws
    whose cell is unknown and the probability they are compared with."""
    observed_total = jnp.sum(mask * x, axis=-1, keepdims=True)
    partial = jnp.any(mask == 0, axis=-1, keepdims=True)
    if n_trials is None:
        return observed_total, mask @ probs.T, partial
    return n_trials - observed_total, (1.0 - mask) @ probs.T, partial


def _safe_log(p: Array) -> Array:
    return jnp.log(jnp.where(p > 0, p, jnp.ones_like(p)))


def log_densities(x: Array, mask: Array, probs: Array, n_trials: Optional[int] = None) -> Array:
    """``[N, K]`` log-likelihood of the observed cells of each row (see the module docstring).

    Args:
      x: ``[N, S]`` counts, 0 where missing.
      mask: ``[N, S]`` 1 where observed, 0 where missing (float).
      probs: ``[K, S]`` category probabilities.
      n_trials: the known number of trials of every row, or ``None``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxem._src.count_cells import log_densities
      >>> x, mask = jnp.array([[2.0, 0.0, 1.0]]), jnp.array([[1.0, 0.0, 1.0]])
      >>> table = log_densities(x, mask, jnp.array([[0.5, 0.3, 0.2]]))   # 3 draws in cells 0 and 2
      >>> bool(jnp.allclose(table, jnp.log(3 * (0.5 / 0.7) ** 2 * (0.2 / 0.7))))
      True
    """
    gammaln = jax.scipy.special.gammaln
    probs = probs.astype(x.dtype)
    lump, lump_prob, partial = _lump(x, mask, probs, n_trials)
    observed_total = jnp.sum(mask * x, axis=-1, keepdims=True)
    coefficient = -jnp.sum(mask * gammaln(x + 1.0), axis=-1, keepdims=True)
    if n_trials is None:
        coefficient = coefficient + gammaln(observed_total + 1.0)
        lump_term = -lump * _safe_log(lump_prob)
    else:
        coefficient = coefficient + gammaln(jnp.asarray(n_trials + 1.0, x.dtype)) - gammaln(lump + 1.0)
        lump_term = lump * _safe_log(lump_prob)
    lump_term = jnp.where(partial & (lump > 0), lump_term, jnp.zeros_like(lump_term))
    return coefficient + (mask * x) @ log_probabilities(probs).T + lump_term


def expected_counts(x: Array, mask: Array, posterior: Array, probs: Array, n_trials: Optional[int] = None) -> Array:
    """``[K, S]`` ``Σ_n r_nk E[x_n | x_O, k]``: observed cells as they are, missing
    cells their share of the lump (see the module docstring).

    Args:
      x, mask: as in ``log_densities``.
      posterior: ``[N, K]`` responsibilities.
      probs: ``[K, S]`` the current category probabilities.
      n_trials: as in ``log_densities``.
    """
    probs = probs.astype(x.dtype)
    lump, lump_prob, partial = _lump(x, mask, probs, n_trials)
    ratio = jnp.where(partial & (lump_prob > 0), lump / jnp.where(lump_prob > 0, lump_prob, jnp.ones_like(lump_prob)), 0.0)
    return posterior.T @ (mask * x) + probs * ((posterior * ratio).T @ (1.0 - mask))


def maximize(totals: Array, probs: Array) -> Array:
    """``[K, S]`` ``p_k ∝ totals_k + ε`` (exact zeros of ``probs`` stay zero)."""
    totals = totals + tiny_count(totals.dtype)
    totals = jnp.where(probs > 0, totals, jnp.zeros_like(totals))
    return totals / jnp.sum(totals, axis=1, keepdims=True)
