"""Hidden Markov models with multivariate Gaussian emissions."""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax.numpy as jnp

from jaxem._src import gaussian, hmm, validation
from jaxem._src.base import Array, Model
from jaxem._src.registry import register_model


class GaussianHMMParams(NamedTuple):
    """Parameters of a Gaussian HMM (original data units).

    Attributes:
      initial_probs: ``[K]`` initial state probabilities.
      transition_matrix: ``[K, K]``, row ``i`` is p(z_t = · | z_t-1 = i).
      means: ``[K, D]`` emission means.
      precisions_cholesky: factor ``U`` of the emission precisions, ``P = U Uᵀ``, as
        in ``GaussianMixtureParams``: ``[K, D, D]`` full, ``[D, D]`` tied, ``[K, D]``
        diag, ``[K]`` spherical. ``jaxem.models.covariances(params)`` gives
        ``[K, D, D]`` covariance matrices.
    """

    initial_probs: Array
    transition_matrix: Array
    means: Array
    precisions_cholesky: Array


def gaussian_hmm_params(
    initial_probs, transition_matrix, means, covariances, covariance_type: str = "diag"
) -> GaussianHMMParams:
    """Builds Gaussian HMM params from a user's arrays.

    Args:
      initial_probs: ``[K]`` non-negative, summing to one.
      transition_matrix: ``[K, K]`` non-negative, rows summing to one.
      means: ``[K, D]``.
      covariances: hmmlearn's / scikit-learn's shape for the type: ``[K, D, D]``
        (full), ``[D, D]`` (tied), ``[K, D]`` (diag), ``[K]`` (spherical).
      covariance_type: ``"diag"`` (default), ``"full"``, ``"tied"`` or ``"spherical"``.

    Example:
      >>> params = gaussian_hmm_params([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]],
      ...                              [[0.0], [3.0]], [[1.0], [0.5]])
    """
    gaussian.check_covariance_type(covariance_type)
    means = validation.as_float_array(means, "means", ndim=2)
    k, d = means.shape
    initial_probs = hmm.check_probabilities(initial_probs, "initial_probs", (k,))
    transition_matrix = hmm.check_probabilities(transition_matrix, "transition_matrix", (k, k))
    covariances = gaussian.covariances_argument(covariances, covariance_type, k, d)
    dtype = jnp.result_type(initial_probs.dtype, transition_matrix.dtype, means.dtype, covariances.dtype)
    factor = gaussian.factor_from_user_covariances(covariances.astype(dtype), covariance_type)
    return GaussianHMMParams(initial_probs.astype(dtype), transition_matrix.astype(dtype), means.astype(dtype), factor)


@register_model("gaussian_hmm")
def gaussian_hmm(
    n_states: int,
    *,
    covariance_type: str = "diag",
    reg_covar: float = 1e-6,
    transition_mask: Optional[Array] = None,
    parallel: bool = False,
) -> Model:
    """A hidden Markov model with Gaussian emissions.

    Data: one sequence ``[T, D]`` (``[T]`` means D = 1) or a padded batch
    ``jaxem.Sequences(obs [B, T_max, D], lengths [B])``. The E-step is the gradient
    of the normalized forward recursion (``jaxem.chain_latent``); the emission table
    ``[B, T, K]`` is one contraction of the features ``[1, x', quad(x')]`` (data
    centred and scaled once, as in ``gaussian_mixture``) with the natural
    parameters; the M-step is closed form. Memory is O(B · T · (K + F)) for
    ``F = 1 + D + quad`` features, e.g. ~30 MB for T = 100 000, K = 8, D = 2 in float32.

    Args:
      n_states: number of hidden states K.
      covariance_type: ``"diag"``, ``"full"``, ``"tied"`` or ``"spherical"``.
      reg_covar: added to every emission variance in the M-step (data units).
      transition_mask: optional ``[K, K]`` bool of allowed transitions (e.g.
        ``numpy.triu(numpy.ones((K, K), bool))`` for left-to-right); disallowed
        ones stay exactly zero.
      parallel: compute the log-partition in parallel over time
        (``lax.associative_scan``; see ``jaxem.chain_latent``) instead of sequentially.

    Returns:
      A ``Model`` whose params are ``GaussianHMMParams``. ``init`` seeds the means
      by k-means++ on the pooled steps, starts from uniform initial probabilities and
      "sticky" random transitions (half self-transition); ``sample(key, params, n)``
      draws one sequence of ``n`` steps, ``(x [n, D], z [n])``.

    Example:
      >>> model = jaxem.models.gaussian_hmm(3, covariance_type="full")
      >>> result = jaxem.fit(model, jaxem.Sequences(obs, lengths), key=0, n_restarts=8)
      >>> paths = jaxem.viterbi(model, result.params, jaxem.Sequences(obs, lengths))
    """
    n_states = validation.check_positive_int(n_states, "n_states")
    gaussian.check_covariance_type(covariance_type)
    reg_covar = validation.check_nonnegative_float(reg_covar, "reg_covar")
    family = gaussian.gaussian_family(covariance_type, reg_covar)

    def encode(obs, mask):
        # Padded steps take the mean of the valid steps: finite, and the shift and
        # scale of the standardization stay those of the data.
        x = validation.to_float(obs)
        valid = mask[..., None]
        total = jnp.sum(jnp.where(valid, x, jnp.zeros_like(x)), axis=(0, 1))
        mean = total / jnp.sum(mask).astype(x.dtype)
        return jnp.where(valid, x, jnp.broadcast_to(mean, x.shape))

    def template(data):
        x = data.features.x
        d = x.shape[-1]
        shape = gaussian.factor_shapes(n_states, d)[covariance_type]
        zeros = lambda s: jnp.zeros(s, x.dtype)  # noqa: E731
        return GaussianHMMParams(zeros((n_states,)), zeros((n_states, n_states)), zeros((n_states, d)), zeros(shape))

    def check_emissions(params, data_shape):
        if not isinstance(params, GaussianHMMParams):
            raise TypeError(f"params must be GaussianHMMParams, got {type(params).__name__}")
        k, d_params = jnp.shape(params.means)
        d = data_shape[-1]
        if d_params != d:
            raise ValueError(f"obs has {d} features but params.means has {d_params}")
        if k != n_states:
            raise ValueError(f"params have {k} states but the model has n_states={n_states}")
        expected = gaussian.factor_shapes(k, d)[covariance_type]
        if tuple(jnp.shape(params.precisions_cholesky)) != expected:
            raise ValueError(
                f"params.precisions_cholesky has shape {jnp.shape(params.precisions_cholesky)}, "
                f"expected {expected} for covariance_type={covariance_type!r}"
            )

    def emit(key, params, z):
        return gaussian.draw(key, params.means, params.precisions_cholesky, z, covariance_type)

    def n_emission_parameters(params) -> int:
        k, d = params.means.shape
        return gaussian.n_covariance_parameters(covariance_type, k, d) + k * d

    return hmm.exponential_family_hmm(
        family,
        n_states=n_states,
        event_ndim=1,
        encode=encode,
        init_emissions=hmm.kmeans_emission_init(family, n_states),
        template=template,
        check_obs=lambda values: None,
        check_emissions=check_emissions,
        emit=emit,
        n_emission_parameters=n_emission_parameters,
        transition_mask=transition_mask,
        parallel=bool(parallel),
    )
