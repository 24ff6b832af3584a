"""Hidden Markov models whose emissions are per-state Gaussian mixtures (GMM-HMM).

The latent of a step is the pair (state ``k``, mixture component ``m``). The
log-potentials are a ``ChainPotentials`` whose emission table is
``[B, T, K, M]``, ``log w_km + log N(x_t | μ_km, Σ_km)``; the latent structure
(``mixture_chain_latent``) takes the ``logsumexp`` over ``M`` inside the forward
recursion. So the E-step stays one gradient of the log-partition, and the gradient
with respect to the ``[B, T, K, M]`` table is the joint posterior
``p(z_t = k, m_t = m | x)``: the smoothed state marginals times the within-state
responsibilities, with no separate formula for either. The emission M-step is
closed form (``jaxem/_src/families/gmm.py``); initial and transition
probabilities are as in every HMM (``jaxem/_src/hmm.py``).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import hmm_missing
from jaxem._src import missing as missing_lib
from jaxem._src import sequences as seqs_lib
from jaxem._src.base import Array, Latent, Model
from jaxem._src.chain import ChainPotentials, chain_log_marginal, chain_viterbi
from jaxem._src.component import check_params_type
from jaxem._src.expfam import mixture_weights
from jaxem._src.families import gaussian, gmm
from jaxem._src.families.covariance import Covariance
from jaxem._src.hmm import (
    ChainData,
    check_chain_params,
    check_transition_mask,
    masked_kmeans_plus_plus,
    normalized_counts,
    sticky_transitions,
    _start_states,
)


def state_potentials(potentials: ChainPotentials) -> ChainPotentials:
    """The chain's potentials with the mixture components summed out of the
    emission table (``[B, T, K, M] -> [B, T, K]`` by ``logsumexp``)."""
    return potentials._replace(log_emission=jax.nn.logsumexp(potentials.log_emission, axis=-1))


def mixture_chain_latent(*, parallel: bool = False) -> Latent:
    """The latent structure of an HMM with mixture emissions: a chain over states
    whose emission table ``[B, T, K, M]`` is summed over the last axis.

    The posterior (the gradient) is a ``ChainPotentials`` whose ``log_emission``
    field is ``p(z_t = k, m_t = m | x) [B, T, K, M]``; ``marginals`` returns the
    smoothed state marginals ``[B, T, K]``, ``decode`` the Viterbi state paths.
    """

    def log_marginal(potentials, data):
        return chain_log_marginal(state_potentials(potentials), data.lengths, parallel)

    def decode(potentials, data):
        return chain_viterbi(state_potentials(potentials), data.lengths)

    def marginals(posterior):
        return jnp.sum(posterior.log_emission, axis=-1)

    def sizes(potentials, data):
        return data.lengths.astype(potentials.log_emission.dtype)

    return Latent(log_marginal=log_marginal, decode=decode, marginals=marginals, sizes=sizes)


def init_emissions(key: Array, features: gaussian.GaussianFeatures, lengths: Array, template, covariance: Covariance, reg_covar: float):
    """Starting emissions: k-means++ centres of the pooled steps for the states,
    then k-means++ among each state's nearest steps for its M components' means;
    every covariance the pooled covariance of the data (plus ``reg_covar``), and
    uniform weights (as hmmlearn's ``GMMHMM`` initialization, with k-means++ seeds
    in place of k-means)."""
    k, m, _ = template.means.shape
    x = features.x
    b, t, d = x.shape
    flat = x.reshape(b * t, d)
    mask = seqs_lib.step_mask(lengths, t).reshape(b * t)
    state_key, mix_key = jax.random.split(key)
    centres = masked_kmeans_plus_plus(state_key, flat, mask, k)
    labels = jnp.argmin(jnp.sum((flat[:, None, :] - centres[None, :, :]) ** 2, axis=2), axis=1)

    def state_means(key_k, state):
        return masked_kmeans_plus_plus(key_k, flat, mask & (labels == state), m)

    means = jax.vmap(state_means)(jax.random.split(mix_key, k), jnp.arange(k))  # [K, M, D], standardized
    pooled = jnp.sum(jnp.where(mask[:, None], features.stats.reshape(b * t, -1), 0.0), axis=0)
    statistics = jnp.broadcast_to(pooled, (k, m, pooled.shape[0]))
    ones = jax.tree_util.tree_map(jnp.ones_like, template)
    params = gmm.maximize(statistics, features, ones, covariance, reg_covar)
    means = means * features.scale[None, None, :] + features.shift[None, None, :]
    uniform = jnp.full((k, m), 1.0 / m, x.dtype)
    return params._replace(weights=uniform, means=means.astype(x.dtype))


def gmm_hmm_model(
    n_states: int,
    n_mix: int,
    covariance: Covariance,
    reg_covar: float,
    *,
    transition_mask: Optional[Array] = None,
    parallel: bool = False,
) -> Model:
    """The GMM-HMM ``Model`` (see ``jaxem.models.gmm_hmm`` for the options)."""
    family = gaussian.gaussian_family(covariance, reg_covar)
    mask = None if transition_mask is None else jnp.asarray(check_transition_mask(transition_mask, n_states))

    def prepare(data) -> ChainData:
        if isinstance(data, ChainData):
            family.prepare(data.features)  # refuses another family's features
            return data
        seqs = seqs_lib.as_sequences(data, 1)
        step_mask = seqs_lib.step_mask(seqs.lengths, seqs.obs.shape[1])
        return ChainData(family.prepare(gaussian.mean_padded(seqs.obs, step_mask)), seqs.lengths)

    def log_joint(params, data: ChainData) -> ChainPotentials:
        stats = data.features.stats
        return ChainPotentials(
            log_initial=jnp.log(params.initial_probs.astype(stats.dtype)),
            log_transition=jnp.log(params.transition_matrix.astype(stats.dtype)),
            log_emission=jnp.einsum("btf,kmf->btkm", stats, gmm.coefficients(params, data.features, covariance)),
        )

    def m_step(data: ChainData, posterior: ChainPotentials, params):
        # posterior.log_emission is the gradient: p(z_t = k, m_t = m | x) [B, T, K, M]
        statistics = jnp.einsum("btkm,btf->kmf", posterior.log_emission, data.features.stats)
        params = gmm.maximize(statistics, data.features, params, covariance, reg_covar)
        dtype = params.initial_probs.dtype
        return params._replace(
            initial_probs=normalized_counts(posterior.log_initial, mask=params.initial_probs > 0).astype(dtype),
            transition_matrix=normalized_counts(posterior.log_transition, mask=mask).astype(dtype),
        )

    def zeros(dtype, d):
        return gmm.GMMHMMParams(
            initial_probs=jnp.zeros((n_states,), dtype),
            transition_matrix=jnp.zeros((n_states, n_states), dtype),
            weights=jnp.zeros((n_states, n_mix), dtype),
            means=jnp.zeros((n_states, n_mix, d), dtype),
            precisions_cholesky=jnp.zeros(gmm.factor_shape(covariance, n_states, n_mix, d), dtype),
        )

    def init(key: Array, data: ChainData):
        emission_key, transition_key = jax.random.split(key)
        dtype = data.features.x.dtype
        template = zeros(dtype, data.features.x.shape[-1])
        params = init_emissions(emission_key, data.features, data.lengths, template, covariance, reg_covar)
        initial = jnp.full((n_states,), 1.0 / n_states, dtype)
        if mask is not None:
            initial = normalized_counts(jnp.zeros((n_states,), dtype), mask=_start_states(mask))
        return params._replace(initial_probs=initial, transition_matrix=sticky_transitions(transition_key, n_states, dtype, mask))

    def check_params(params, d):
        check_params_type(params, gmm.GMMHMMParams)
        check_chain_params(params, n_states)
        gmm.check_params(params, n_states, n_mix, d, covariance)

    def check(data, params=None):
        if isinstance(data, ChainData):
            d = family.prepare(data.features).x.shape[-1]
        else:
            seqs = seqs_lib.check_sequences(data, 1)
            d = seqs.obs.shape[-1]
        if params is not None:
            check_params(params, d)

    def sample(key: Array, params, n: int):
        state_key, emission_key = jax.random.split(key)
        keys = jax.random.split(state_key, n)
        log_transition = jnp.log(params.transition_matrix)
        first = jax.random.categorical(keys[0], jnp.log(params.initial_probs))

        def step(state, step_key):
            new = jax.random.categorical(step_key, log_transition[state])
            return new, new

        _, rest = jax.lax.scan(step, first, keys[1:])
        z = jnp.concatenate([first[None], rest])
        return gmm.draw(emission_key, params, z, covariance), z

    compiled_sample = jax.jit(sample, static_argnums=2)

    def checked_sample(key: Array, params, n: int):
        check_params(params, None)
        return compiled_sample(key, params, n)

    def n_parameters(params) -> int:
        k = n_states
        free_transitions = k * (k - 1) if mask is None else int(np.sum(np.maximum(np.asarray(mask).sum(axis=1) - 1, 0)))
        return (k - 1) + free_transitions + gmm.n_parameters(params, covariance)

    return Model(
        init=init,
        log_joint=log_joint,
        latent=mixture_chain_latent(parallel=bool(parallel)),
        m_step=m_step,
        prepare=prepare,
        check=check,
        sample=checked_sample,
        n_parameters=n_parameters,
    )



def marginalizing_gmm_hmm(model: Model, covariance: Covariance, reg_covar: float, transition_mask: Optional[Array]) -> Model:
    """The GMM-HMM ``model`` on data with NaN entries (missing at random): every
    component's density is the marginal of the step's observed features, and the
    emission M-step is the Gaussian mixture's incomplete-data M-step
    (``jaxem/_src/missing.py``) over the ``K M`` components, fed the joint posterior
    of state and component. Not for ``tied`` (its covariance is pooled per state).
    """
    mask = None if transition_mask is None else jnp.asarray(np.asarray(transition_mask))

    def flat(params) -> gaussian.GaussianMixtureParams:
        k, m, d = params.means.shape
        factor = params.precisions_cholesky
        return gaussian.GaussianMixtureParams(params.weights.reshape(k * m), params.means.reshape(k * m, d), factor.reshape((k * m,) + factor.shape[2:]))

    def log_joint(params, data: hmm_missing.MissingChainData) -> ChainPotentials:
        b, t, _ = data.x.shape
        k, m, _ = params.means.shape
        dtype = data.x.dtype
        rows = missing_lib.MissingData(data.x.reshape(b * t, -1), data.mask.reshape(b * t, -1))
        emission = missing_lib.log_joint(flat(params), rows, covariance).reshape(b, t, k, m)
        return ChainPotentials(
            log_initial=jnp.log(params.initial_probs.astype(dtype)),
            log_transition=jnp.log(params.transition_matrix.astype(dtype)),
            log_emission=emission,
        )

    def m_step(data: hmm_missing.MissingChainData, posterior: ChainPotentials, params):
        b, t, _ = data.x.shape
        k, m, d = params.means.shape
        rows = missing_lib.MissingData(data.x.reshape(b * t, -1), data.mask.reshape(b * t, -1))
        joint = posterior.log_emission.reshape(b * t, k * m)
        new = missing_lib.m_step(rows, joint, flat(params), covariance, reg_covar)
        counts = jnp.sum(posterior.log_emission, axis=(0, 1))
        weights = jax.vmap(mixture_weights)(counts, params.weights)
        dtype = params.initial_probs.dtype
        return params._replace(
            weights=weights.astype(dtype),
            means=new.means.reshape(k, m, d),
            precisions_cholesky=new.precisions_cholesky.reshape(params.precisions_cholesky.shape),
            initial_probs=normalized_counts(posterior.log_initial, mask=params.initial_probs > 0).astype(dtype),
            transition_matrix=normalized_counts(posterior.log_transition, mask=mask).astype(dtype),
        )

    return model._replace(
        init=hmm_missing.imputed_init(model),
        log_joint=log_joint,
        m_step=m_step,
        prepare=hmm_missing.prepare,
        check=hmm_missing.nan_tolerant_check(model),
    )
