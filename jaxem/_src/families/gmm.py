"""Per-state Gaussian mixtures: the emissions of a GMM-HMM (hmmlearn's ``GMMHMM``).

State ``k`` emits from a mixture of ``M`` Gaussians with weights ``weights [K, M]``,
``means [K, M, D]`` and a factor of each precision, ``precisions_cholesky``
(``P = U Uᵀ``), whose shape is ``K`` stacked factors of one Gaussian mixture of the
covariance type: ``[K, M, D, D]`` full, ``[K, D, D]`` tied (one covariance shared
by the mixture components *of each state*, as in hmmlearn), ``[K, M, D]`` diag,
``[K, M]`` spherical.

The data are the Gaussian family's features ``T(x') = [1, x', quad(x')]`` of the
standardized data (``jaxem/_src/families/gaussian.py``); the coefficients of each
state are those of its mixture's components, ``[K, M, F]``, so the emission
log-potentials ``[B, T, K, M]`` are one contraction, with ``log w_km`` on the
constant column. The expected statistics are one more contraction with the
posterior ``p(z_t = k, m_t = m | x) [B, T, K, M]``, and each state's M-step is the
Gaussian family's closed form for its M components (``gaussian.maximize`` mapped
over the states) plus the normalized counts for its weights.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import validation
from jaxem._src.base import Array
from jaxem._src.display import params_repr
from jaxem._src.expfam import log_probabilities, mixture_weights
from jaxem._src.families import gaussian
from jaxem._src.families.covariance import Covariance, covariance_of, covariances_from_factor


class GMMHMMParams(NamedTuple):
    """Parameters of a GMM-HMM (original data units).

    Attributes:
      initial_probs: ``[K]`` initial state probabilities.
      transition_matrix: ``[K, K]``, row ``i`` is p(z_t = · | z_t-1 = i).
      weights: ``[K, M]`` mixture weights of each state (rows sum to one).
      means: ``[K, M, D]`` component means.
      precisions_cholesky: factors ``U`` of the component precisions, ``P = U Uᵀ``:
        ``[K, M, D, D]`` full, ``[K, D, D]`` tied, ``[K, M, D]`` diag, ``[K, M]``
        spherical. ``gmm_hmm_covariances(params, covariance_type)`` gives
        hmmlearn's ``covars_``.
    """

    initial_probs: Array
    transition_matrix: Array
    weights: Array
    means: Array
    precisions_cholesky: Array

    __repr__ = params_repr


def factor_shape(covariance: Covariance, k: int, m: int, d: int) -> tuple:
    """The shape of ``precisions_cholesky`` for K states of M components in D dimensions."""
    return (k,) + covariance.factor_shape(m, d)


def coefficients(params, features: gaussian.GaussianFeatures, covariance: Covariance) -> Array:
    """``[K, M, F]`` natural coefficients (column 0 includes ``log w_km``), so that
    ``T(x') @ coefficients[k, m] = log w_km + log N(x | μ_km, Σ_km)``."""
    dtype = features.stats.dtype
    per_state = jax.vmap(functools.partial(gaussian.natural_coefficients, features=features, covariance=covariance))
    table = per_state(params.means.astype(dtype), params.precisions_cholesky.astype(dtype))
    return table.at[:, :, 0].add(log_probabilities(params.weights.astype(dtype)))


def maximize(statistics: Array, features: gaussian.GaussianFeatures, params, covariance: Covariance, reg_covar: float):
    """Closed-form M-step of the emission fields from ``[K, M, F]`` expected
    statistics (``[..., 0]``: expected counts of each state's components).

    Weights keep their exact zeros (structural, as ``mixture_weights``).
    """

    def state(stats_k, weights_k, means_k):
        means, factor = gaussian.maximize(stats_k, features, means_k, covariance, reg_covar)
        return mixture_weights(stats_k[:, 0], weights_k), means, factor

    weights, means, factor = jax.vmap(state)(statistics, params.weights, params.means)
    dtype = params.means.dtype
    return params._replace(weights=weights.astype(dtype), means=means, precisions_cholesky=factor.astype(dtype))


def covariance_matrices(params, covariance: Covariance) -> Array:
    """``[K, M, D, D]`` covariance matrices of every component."""
    _, m, d = params.means.shape
    return jax.vmap(lambda u: covariances_from_factor(u, m, d, covariance))(params.precisions_cholesky)


def draw(key: Array, params, states: Array, covariance: Covariance) -> Array:
    """``[n, D]`` draws, one from the mixture of each state in ``states [n]``."""
    component_key, noise_key = jax.random.split(key)
    mix = jax.random.categorical(component_key, jnp.log(params.weights[states]), axis=-1)
    lower = jnp.linalg.cholesky(covariance_matrices(params, covariance))[states, mix]  # [n, D, D]
    noise = jax.random.normal(noise_key, (states.shape[0], params.means.shape[2]), params.means.dtype)
    return params.means[states, mix] + jnp.einsum("nij,nj->ni", lower, noise)


def n_parameters(params, covariance: Covariance) -> int:
    """Free emission parameters: ``K (M - 1)`` weights, ``K M D`` means, and the covariances."""
    k, m, d = jnp.shape(params.means)
    return k * (m - 1) + k * m * d + k * covariance.n_parameters(m, d)


def check_params(params, k: int, m: int, d, covariance: Covariance) -> None:
    """Shapes (and, when concrete, values) of the emission fields (``d`` may be None)."""
    for name in ("weights", "means", "precisions_cholesky"):
        leaf = getattr(params, name)
        if not isinstance(leaf, (jax.Array, np.ndarray)) or not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(f"params.{name} must be a floating-point array, got {type(leaf).__name__}")
    if tuple(jnp.shape(params.weights)) != (k, m):
        raise ValueError(f"params.weights must have shape ({k}, {m}) for n_states={k}, n_mix={m}, got {jnp.shape(params.weights)}")
    shape = tuple(jnp.shape(params.means))
    if len(shape) != 3 or shape[:2] != (k, m) or (d is not None and shape[2] != d):
        raise ValueError(f"params.means must have shape ({k}, {m}, {'D' if d is None else d}) for n_states={k}, n_mix={m}, got {shape}")
    expected = factor_shape(covariance, k, m, shape[2])
    if tuple(jnp.shape(params.precisions_cholesky)) != expected:
        raise ValueError(
            f"params.precisions_cholesky has shape {jnp.shape(params.precisions_cholesky)}, "
            f"expected {expected} for covariance_type={covariance.name!r}"
        )
    validation.check_param_values(params.weights, "weights", simplex=True)
    validation.check_param_values(params.means, "means")
    validation.check_param_values(params.precisions_cholesky, "precisions_cholesky")
    if validation.is_concrete(params.precisions_cholesky) and not bool(
        jnp.all(covariance.factor_diagonal(jnp.asarray(params.precisions_cholesky)) != 0)
    ):
        raise ValueError("params.precisions_cholesky must be invertible (non-zero diagonal)")


def gmm_hmm_params(initial_probs, transition_matrix, weights, means, covariances, covariance_type: str = "diag") -> GMMHMMParams:
    """Builds GMM-HMM params from a user's arrays (hmmlearn's ``GMMHMM`` attributes).

    Args:
      initial_probs: ``[K]`` non-negative, summing to one (``startprob_``).
      transition_matrix: ``[K, K]`` rows on the simplex (``transmat_``).
      weights: ``[K, M]`` rows on the simplex (``weights_``).
      means: ``[K, M, D]`` (``means_``).
      covariances: hmmlearn's ``covars_``: ``[K, M, D, D]`` full, ``[K, D, D]``
        tied, ``[K, M, D]`` diag, ``[K, M]`` spherical; positive definite.
      covariance_type: ``"diag"`` (default), ``"full"``, ``"tied"`` or ``"spherical"``.

    Examples:
      >>> from jaxem.models import gmm_hmm_params
      >>> params = gmm_hmm_params([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [[0.3, 0.7], [0.5, 0.5]],
      ...                         [[[0.0], [2.0]], [[5.0], [8.0]]], [[[1.0], [0.5]], [[1.0], [2.0]]])
    """
    covariance = covariance_of(covariance_type)
    means = validation.as_float_array(means, "means", ndim=3)
    k, m, d = means.shape
    weights = validation.check_probabilities(weights, "weights", (k, m))
    initial_probs = validation.check_probabilities(initial_probs, "initial_probs", (k,))
    transition_matrix = validation.check_probabilities(transition_matrix, "transition_matrix", (k, k))
    expected = factor_shape(covariance, k, m, d)
    covariances = validation.as_float_array(covariances, "covariances", ndim=len(expected))
    if tuple(covariances.shape) != expected:
        raise ValueError(f"covariances for covariance_type={covariance.name!r} must have shape {expected}, got {covariances.shape}")
    dtype = jnp.result_type(initial_probs.dtype, transition_matrix.dtype, weights.dtype, means.dtype, covariances.dtype)
    factor = jnp.stack([gaussian.user_factor(c, covariance, m, d, dtype) for c in covariances])
    return GMMHMMParams(
        initial_probs.astype(dtype), transition_matrix.astype(dtype), weights.astype(dtype), means.astype(dtype), factor.astype(dtype)
    )


def gmm_hmm_covariances(params: GMMHMMParams, covariance_type: str) -> Array:
    """hmmlearn's ``covars_`` of ``params``: ``[K, M, D, D]`` full, ``[K, D, D]``
    tied, ``[K, M, D]`` diag, ``[K, M]`` spherical.

    Examples:
      >>> params = jaxem.models.gmm_hmm_params([0.5, 0.5], [[0.95, 0.05], [0.05, 0.95]],
      ...     [[0.5, 0.5], [0.3, 0.7]], [[[0.0], [3.0]], [[10.0], [14.0]]],
      ...     [[[1.0], [1.0]], [[1.0], [0.5]]])
      >>> jaxem.models.gmm_hmm_covariances(params, "diag").shape   # [K, M, D]
      (2, 2, 1)
    """
    covariance = covariance_of(covariance_type)
    full = covariance_matrices(params, covariance)
    return jax.vmap(covariance.reduce_covariances)(full)
