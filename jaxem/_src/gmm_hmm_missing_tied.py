"""Tied-covariance GMM-HMMs with missing values (NaN), integrated out exactly.

Used by ``gmm_hmm(..., covariance_type="tied", missing="marginalize")``. In a tied
GMM-HMM the ``M`` components of each state share one full covariance (not shared
across states), so each state is a tied Gaussian mixture of its own: the emission
table and the M-step are the Gaussian mixture's incomplete-data algebra
(``jaxem/_src/missing.py``, ``covariance_type="tied"``) mapped over the states
(``jax.vmap``), fed the joint posterior of state and component. The other
covariance types flatten the ``K M`` components instead
(``jaxem/_src/gmm_hmm.py: marginalizing_gmm_hmm``), which would pool a tied
covariance over all states.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import hmm_missing
from jaxem._src import missing as missing_lib
from jaxem._src.base import Array, Model
from jaxem._src.chain import ChainPotentials
from jaxem._src.expfam import mixture_weights
from jaxem._src.families.covariance import Covariance
from jaxem._src.families.gaussian import GaussianMixtureParams
from jaxem._src.gmm_hmm import marginalizing_gmm_hmm
from jaxem._src.hmm import normalized_counts


def marginalizing_tied_gmm_hmm(model: Model, covariance: Covariance, reg_covar: float, transition_mask: Optional[Array]) -> Model:
    """The tied GMM-HMM ``model`` (params ``weights [K, M]``, ``means [K, M, D]``,
    ``precisions_cholesky [K, D, D]``) on data with NaN entries (missing at random)."""
    mask = None if transition_mask is None else jnp.asarray(np.asarray(transition_mask))

    def rows(data: hmm_missing.MissingChainData) -> missing_lib.MissingData:
        b, t, d = data.x.shape
        return missing_lib.MissingData(data.x.reshape(b * t, d), data.mask.reshape(b * t, d))

    def log_joint(params, data: hmm_missing.MissingChainData) -> ChainPotentials:
        b, t, _ = data.x.shape
        k, m, _ = params.means.shape
        dtype = data.x.dtype
        flat = rows(data)

        def state(weights, means, factor):  # [N, M]
            return missing_lib.log_joint(GaussianMixtureParams(weights, means, factor), flat, covariance)

        emission = jax.vmap(state, out_axes=1)(params.weights, params.means, params.precisions_cholesky)
        return ChainPotentials(
            log_initial=jnp.log(params.initial_probs.astype(dtype)),
            log_transition=jnp.log(params.transition_matrix.astype(dtype)),
            log_emission=emission.reshape(b, t, k, m),
        )

    def m_step(data: hmm_missing.MissingChainData, posterior: ChainPotentials, params):
        b, t, _ = data.x.shape
        k, m, _ = params.means.shape
        flat = rows(data)
        joint = jnp.moveaxis(posterior.log_emission.reshape(b * t, k, m), 1, 0)  # [K, N, M], 0 on padding

        def state(weights, means, factor, responsibilities):
            return missing_lib.m_step(flat, responsibilities, GaussianMixtureParams(weights, means, factor), covariance, reg_covar)

        new = jax.vmap(state)(params.weights, params.means, params.precisions_cholesky, joint)
        counts = jnp.sum(posterior.log_emission, axis=(0, 1))
        dtype = params.initial_probs.dtype
        return params._replace(
            weights=jax.vmap(mixture_weights)(counts, params.weights).astype(dtype),
            means=new.means,
            precisions_cholesky=new.precisions_cholesky,
            initial_probs=normalized_counts(posterior.log_initial, mask=params.initial_probs > 0).astype(dtype),
            transition_matrix=normalized_counts(posterior.log_transition, mask=mask).astype(dtype),
        )

    # the data handling (prepare, check, init by imputation) is that of the other covariance types
    return marginalizing_gmm_hmm(model, covariance, reg_covar, transition_mask)._replace(log_joint=log_joint, m_step=m_step)
