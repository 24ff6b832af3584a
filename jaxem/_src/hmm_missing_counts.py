"""Categorical and multinomial HMMs with missing values (NaN).

Used by ``categorical_hmm(..., missing="marginalize")`` and
``multinomial_hmm(..., missing="marginalize")``; missing at random.

- categorical (one symbol per step): a NaN symbol is a step with nothing
  observed. It is encoded as an all-zero one-hot row, whose features
  ``[1, 0, 0...]`` meet the coefficients ``[0, 1, log p_k]`` in an emission of
  exactly 0 and add nothing to the emission statistics. The model stays on the
  exponential-family path (``AdditiveMStep``: chunking, streaming, priors), with
  only the encoding and the data check changed.
- multinomial (counts over S categories per step): a step's emission is the
  likelihood of its observed cells (``jaxem/_src/count_cells.py``: with
  ``n_trials`` the missing cells share the ``n - N_O`` remaining draws; without,
  the observed cells given their total), and the emission M-step uses the
  expected counts of the missing cells given the observed ones. The data are
  prepared as for the Gaussian HMM (``jaxem/_src/hmm_missing.py``).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import count_cells, hmm_missing
from jaxem._src import sequences as seqs_lib
from jaxem._src import validation
from jaxem._src.base import Array, Model
from jaxem._src.chain import ChainPotentials
from jaxem._src.component import Component
from jaxem._src.hmm import normalized_counts


def missing_symbols(component: Component, n_symbols: int) -> Component:
    """The categorical ``symbols_component`` with NaN symbols encoded as all-zero rows."""

    def encode(obs, mask):
        observed = mask & ~jnp.isnan(obs) if jnp.issubdtype(obs.dtype, jnp.floating) else mask
        symbols = jnp.where(observed, obs, jnp.zeros_like(obs)).astype(jnp.int32)
        dtype = jnp.asarray(0.0).dtype  # JAX's default float, as the complete-data encoding
        return jax.nn.one_hot(symbols, n_symbols, dtype=dtype) * observed[..., None].astype(dtype)

    return component._replace(encode=encode)


def check_step_totals(data, n_trials: int) -> None:
    """``ValueError`` unless every step's observed counts sum to ``n_trials``
    (complete steps) or at most ``n_trials`` (steps with a missing cell)."""
    seqs = seqs_lib.as_sequences(data, 1)
    if not validation.is_concrete(seqs):
        return
    values = np.asarray(seqs_lib.valid_values(seqs), dtype=float)
    totals = np.nansum(values, axis=-1)
    partial = np.isnan(values).any(axis=-1)
    if np.any(totals[~partial] != n_trials) or np.any(totals[partial] > n_trials):
        raise ValueError(
            f"obs must sum to n_trials={n_trials} at every complete step, and to at most n_trials at a step "
            "with a missing cell"
        )


def marginalizing_multinomial_hmm(model: Model, n_trials: Optional[int], transition_mask: Optional[Array]) -> Model:
    """The multinomial HMM ``model`` (``emission_probs [K, S]``; built without the
    per-step total check) on counts with NaN cells.

    Args:
      model: the complete-data ``multinomial_hmm`` (gives ``init``, the params
        check, ``latent``, ``sample``, ``n_parameters``).
      n_trials: the known number of trials of every step, or ``None``.
      transition_mask: its ``[K, K]`` allowed transitions, or ``None``.
    """
    mask = None if transition_mask is None else jnp.asarray(np.asarray(transition_mask))
    nan_check = hmm_missing.nan_tolerant_check(model)

    def rows(data: hmm_missing.MissingChainData):
        b, t, s = data.x.shape
        return data.x.reshape(b * t, s), data.mask.reshape(b * t, s)

    def log_joint(params, data: hmm_missing.MissingChainData) -> ChainPotentials:
        b, t, _ = data.x.shape
        dtype = data.x.dtype
        x, observed = rows(data)
        emission = count_cells.log_densities(x, observed, params.emission_probs, n_trials).reshape(b, t, -1)
        seen = jnp.any(data.mask > 0, axis=-1, keepdims=True)  # False on padding and on all-missing steps
        return ChainPotentials(
            log_initial=jnp.log(params.initial_probs.astype(dtype)),
            log_transition=jnp.log(params.transition_matrix.astype(dtype)),
            # a step with nothing observed has emission exactly 0 (with n_trials, log Σ p would round)
            log_emission=jnp.where(seen, emission, jnp.zeros_like(emission)),
        )

    def m_step(data: hmm_missing.MissingChainData, posterior: ChainPotentials, params):
        b, t, _ = data.x.shape
        x, observed = rows(data)
        marginals = posterior.log_emission.reshape(b * t, -1)  # 0 on padding
        probs = params.emission_probs.astype(data.x.dtype)
        totals = count_cells.expected_counts(x, observed, marginals, probs, n_trials)
        dtype = params.initial_probs.dtype
        return params._replace(
            emission_probs=count_cells.maximize(totals, probs).astype(params.emission_probs.dtype),
            initial_probs=normalized_counts(posterior.log_initial, mask=params.initial_probs > 0).astype(dtype),
            transition_matrix=normalized_counts(posterior.log_transition, mask=mask).astype(dtype),
        )

    def check(data, params=None):
        nan_check(data, params)
        if n_trials is not None and not isinstance(data, hmm_missing.MissingChainData):
            check_step_totals(data, n_trials)

    return model._replace(
        init=hmm_missing.imputed_init(model), log_joint=log_joint, m_step=m_step, prepare=hmm_missing.prepare,
        prepare_for=None, check=check,
    )
