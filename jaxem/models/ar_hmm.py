"""Linear autoregressive HMMs (AR-HMM; family ``jaxem/_src/families/autoregressive.py``)."""

from __future__ import annotations

from typing import Optional

import jax
import numpy as np

from jaxem._src import sequences as seqs_lib
from jaxem._src import validation
from jaxem._src.base import Array, Model
from jaxem._src.component import check_params_type
from jaxem._src.families import autoregressive
from jaxem._src.families.autoregressive import ARHMMParams
from jaxem._src.families.covariance import covariance_of
from jaxem._src.families.gaussian import user_factor
from jaxem._src.hmm import ChainData, check_chain_params, component_hmm
from jaxem._src.registry import register_model

__all__ = ["ARHMMParams", "ar_hmm", "ar_hmm_params"]


def ar_hmm_params(initial_probs, transition_matrix, coefficients, intercepts, covariances, covariance_type: str = "full") -> ARHMMParams:
    """Builds AR-HMM params from a user's arrays.

    Args:
      initial_probs: ``[K]`` non-negative, summing to one.
      transition_matrix: ``[K, K]`` rows on the simplex.
      coefficients: ``[K, D, p D]``, ``[A_k1, ..., A_kp]`` (block ``j`` multiplies ``x_t-j``).
      intercepts: ``[K, D]``.
      covariances: noise covariances in hmmlearn's shape for the type:
        ``[K, D, D]`` full, ``[D, D]`` tied, ``[K, D]`` diag, ``[K]`` spherical.
      covariance_type: ``"full"`` (default), ``"tied"``, ``"diag"`` or ``"spherical"``.

    Examples:
      >>> from jaxem.models import ar_hmm_params
      >>> params = ar_hmm_params([0.5, 0.5], [[0.95, 0.05], [0.05, 0.95]],
      ...                        [[[0.9]], [[-0.5]]], [[0.0], [2.0]], [[[0.1]], [[0.2]]])
    """
    covariance = covariance_of(covariance_type)
    intercepts = validation.as_float_array(intercepts, "intercepts", ndim=2)
    k, d = intercepts.shape
    coefficients = validation.as_float_array(coefficients, "coefficients", ndim=3)
    if coefficients.shape[:2] != (k, d) or coefficients.shape[2] % d or coefficients.shape[2] == 0:
        raise ValueError(f"coefficients must have shape ({k}, {d}, p * {d}) for p >= 1 lags, got {coefficients.shape}")
    initial_probs = validation.check_probabilities(initial_probs, "initial_probs", (k,))
    transition_matrix = validation.check_probabilities(transition_matrix, "transition_matrix", (k, k))
    dtype = np.result_type(initial_probs.dtype, transition_matrix.dtype, coefficients.dtype, intercepts.dtype)
    factor = user_factor(covariances, covariance, k, d, dtype)
    dtype = factor.dtype
    return ARHMMParams(
        initial_probs.astype(dtype), transition_matrix.astype(dtype), coefficients.astype(dtype), intercepts.astype(dtype), factor
    )


@register_model("ar_hmm")
def ar_hmm(
    n_states: int,
    *,
    order: int = 1,
    covariance_type: str = "full",
    reg_covar: float = 1e-6,
    transition_mask: Optional[Array] = None,
    parallel: bool = False,
) -> Model:
    """A hidden Markov model with linear autoregressive emissions:
    ``x_t = A_k1 x_t-1 + ... + A_kp x_t-p + b_k + ε_t``, ``ε_t ~ N(0, Σ_k)`` in state k.

    Data: one sequence ``[T, D]`` (``[T]`` means D = 1) or
    ``jaxem.Sequences(obs [B, T_max, D], lengths [B])``. The first ``order`` steps
    of each sequence are conditioned on (they have no lags: no emission term, the
    states still run through them), so the log-likelihood is
    ``log p(x_p, ..., x_T-1 | x_0, ..., x_p-1)``. The E-step is the gradient of the
    forward recursion; the M-step is closed-form weighted least squares for
    ``[b_k, A_k]`` and the weighted residual covariance for ``Σ_k``. Memory is
    O(B · T · (K + F)) for ``F ≈ (D + R)² / 2`` features, ``R = 1 + order · D``.

    Args:
      n_states: number of hidden states K.
      order: the number of lags p (>= 1).
      covariance_type: of the noise: ``"full"`` (default), ``"tied"``, ``"diag"``
        or ``"spherical"``.
      reg_covar: added to every noise variance in the M-step (data units).
      transition_mask: optional ``[K, K]`` bool of allowed transitions.
      parallel: compute the log-partition in parallel over time.

    Returns:
      A ``Model`` whose params are ``ARHMMParams``. ``init`` runs the M-step of a
      k-means++ hard assignment of the steps; ``sample(key, params, n)`` draws one
      sequence ``(x [n, D], z [n])`` starting from zero lags.

    Examples:
      >>> import jax, jaxem
      >>> model = jaxem.models.ar_hmm(2, order=1)
      >>> params = jaxem.models.ar_hmm_params([0.5, 0.5], [[0.95, 0.05], [0.05, 0.95]],
      ...     [[[0.9]], [[-0.5]]], [[0.0], [2.0]], [[[0.1]], [[0.2]]])
      >>> x, z = jaxem.sample(model, params, jax.random.key(0), 500)
      >>> result = jaxem.fit(model, x, key=0, n_restarts=4)
    """
    n_states = validation.check_positive_int(n_states, "n_states")
    order = validation.check_positive_int(order, "order")
    covariance = covariance_of(covariance_type)
    reg_covar = validation.check_nonnegative_float(reg_covar, "reg_covar")
    model = component_hmm(
        autoregressive.component(order, covariance, reg_covar),
        n_states,
        params_type=ARHMMParams,
        transition_mask=transition_mask,
        parallel=bool(parallel),
    )
    chain_check = model.check

    def check(data, params=None):
        chain_check(data, params)
        if not isinstance(data, ChainData):
            seqs = seqs_lib.as_sequences(data, 1)
            if validation.is_concrete(seqs.lengths) and int(np.max(np.asarray(seqs.lengths))) <= order:
                raise ValueError(f"obs must have a sequence longer than order={order} (the first {order} steps are lags only)")

    compiled_sample = jax.jit(autoregressive.sample_sequence, static_argnums=(2, 3, 4))

    def sample(key, params, n: int):
        check_params_type(params, ARHMMParams)
        check_chain_params(params, n_states)
        autoregressive.check_params(params, n_states, None, order, covariance)
        return compiled_sample(key, params, n, order, covariance)

    return model._replace(check=check, sample=sample)
