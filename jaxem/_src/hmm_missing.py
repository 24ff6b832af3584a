"""Gaussian HMMs with missing values (NaN), integrated out exactly.

Used by ``gaussian_hmm(..., missing="marginalize")``. Entries are missing at
random. A step with observed features ``O`` has emission ``log N(x_O; μ_k,O,
Σ_k,OO)`` (the marginal of its observed features); a step with nothing observed
has emission 0 (no information). The steps are the rows of the Gaussian mixture's
incomplete-data algebra (``jaxem/_src/missing.py``): its ``log_densities`` give the
``[B, T, K]`` emission table and its ``m_step``, fed the smoothed marginals as
responsibilities, gives the new means and covariances (conditional expectations of
the missing entries given the observed ones, per state). The E-step is still the
gradient of the forward recursion; initial and transition probabilities are
updated as in every HMM. Cost O(B T K D³) per iteration instead of O(B T K D²).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax.numpy as jnp
import numpy as np

from jaxem._src import missing as missing_lib
from jaxem._src import sequences as seqs_lib
from jaxem._src import validation
from jaxem._src.base import Array, Model
from jaxem._src.chain import ChainPotentials
from jaxem._src.families.covariance import Covariance
from jaxem._src.families.gaussian import GaussianMixtureParams
from jaxem._src.hmm import normalized_counts


class MissingChainData(NamedTuple):
    """Prepared HMM data with missing values.

    Attributes:
      x: ``[B, T, D]`` observations, missing entries and padded steps set to 0.
      mask: ``[B, T, D]`` 1 where observed, 0 where missing or padded (float).
      lengths: ``[B]`` int32 sequence lengths.
    """

    x: Array
    mask: Array
    lengths: Array


def prepare(data) -> MissingChainData:
    """``MissingChainData`` from one sequence ``[T, D]`` or ``Sequences`` holding NaN."""
    if isinstance(data, MissingChainData):
        return data
    seqs = seqs_lib.as_sequences(data, 1)
    x = validation.to_float(seqs.obs)
    steps = seqs_lib.step_mask(seqs.lengths, x.shape[1])[..., None]
    observed = steps & ~jnp.isnan(x)
    return MissingChainData(jnp.where(observed, x, jnp.zeros_like(x)), observed.astype(x.dtype), seqs.lengths)


def _rows(data: MissingChainData) -> missing_lib.MissingData:
    b, t, d = data.x.shape
    return missing_lib.MissingData(data.x.reshape(b * t, d), data.mask.reshape(b * t, d))


def check_data(data, name: str = "obs"):
    """Raw chain data checked as ``check_sequences`` does, NaN allowed (inf is not);
    returns the data with NaN replaced by 0, for the complete-data check."""
    if isinstance(data, MissingChainData):
        return seqs_lib.Sequences(data.x, data.lengths)
    obs = data.obs if isinstance(data, seqs_lib.Sequences) else data
    obs = jnp.asarray(validation.as_real_array(obs, name))
    if validation.is_concrete(obs) and bool(jnp.any(jnp.isinf(obs))):
        raise ValueError(f"{name} contains infinite values (NaN marks a missing value; inf is not allowed)")
    filled = jnp.nan_to_num(obs) if jnp.issubdtype(obs.dtype, jnp.floating) else obs
    return seqs_lib.Sequences(filled, data.lengths) if isinstance(data, seqs_lib.Sequences) else filled


def imputed_init(model: Model):
    """``init`` of ``model`` on ``MissingChainData``: the complete-data ``init`` of
    the observations with every missing entry set to its feature's observed mean."""

    def init(key, data: MissingChainData):
        counts = jnp.sum(data.mask, axis=(0, 1))
        means = jnp.sum(data.x, axis=(0, 1)) / jnp.maximum(counts, 1.0)
        filled = jnp.where(data.mask > 0, data.x, jnp.broadcast_to(means, data.x.shape))
        return model.init(key, model.prepare(seqs_lib.Sequences(filled, data.lengths)))

    return init


def nan_tolerant_check(model: Model):
    """``check`` of ``model`` accepting NaN (not inf) in the observations."""

    def check(data, params=None):
        model.check(check_data(data), params)

    return check


def marginalizing_hmm(model: Model, covariance: Covariance, reg_covar: float, transition_mask: Optional[Array]) -> Model:
    """A Gaussian HMM ``model`` whose observations may hold NaN entries, integrated
    out: the same params, ``init`` from column-mean imputation of the observed steps.

    Args:
      model: the complete-data ``gaussian_hmm`` (gives ``init``, ``check`` of params,
        ``latent``, ``sample``, ``n_parameters``).
      covariance: its covariance type.
      reg_covar: added to every variance in the M-step.
      transition_mask: its ``[K, K]`` allowed transitions, or ``None``.
    """
    mask = None if transition_mask is None else jnp.asarray(np.asarray(transition_mask))


    def log_joint(params, data: MissingChainData) -> ChainPotentials:
        b, t, _ = data.x.shape
        dtype = data.x.dtype
        stand_in = GaussianMixtureParams(jnp.ones_like(params.initial_probs), params.means, params.precisions_cholesky)
        emission = missing_lib.log_densities(stand_in, _rows(data), covariance).reshape(b, t, -1)
        return ChainPotentials(
            log_initial=jnp.log(params.initial_probs.astype(dtype)),
            log_transition=jnp.log(params.transition_matrix.astype(dtype)),
            log_emission=emission,
        )

    def m_step(data: MissingChainData, posterior: ChainPotentials, params):
        b, t, _ = data.x.shape
        marginals = posterior.log_emission.reshape(b * t, -1)  # smoothed p(z_t = k | x), 0 on padding
        stand_in = GaussianMixtureParams(jnp.ones_like(params.initial_probs), params.means, params.precisions_cholesky)
        new = missing_lib.m_step(_rows(data), marginals, stand_in, covariance, reg_covar)
        dtype = params.initial_probs.dtype
        return params._replace(
            means=new.means,
            precisions_cholesky=new.precisions_cholesky,
            initial_probs=normalized_counts(posterior.log_initial, mask=params.initial_probs > 0).astype(dtype),
            transition_matrix=normalized_counts(posterior.log_transition, mask=mask).astype(dtype),
        )

    return model._replace(
        init=imputed_init(model), log_joint=log_joint, m_step=m_step, prepare=prepare, prepare_for=None,
        check=nan_tolerant_check(model),
    )
