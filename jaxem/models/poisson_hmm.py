"""Hidden Markov models with Poisson (count) emissions."""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import families, hmm, validation
from jaxem._src.base import Array, Model
from jaxem._src.registry import register_model


class PoissonHMMParams(NamedTuple):
    """Parameters of a Poisson HMM.

    Attributes:
      initial_probs: ``[K]`` initial state probabilities.
      transition_matrix: ``[K, K]``, row ``i`` is p(z_t = · | z_t-1 = i).
      rates: ``[K, D]`` Poisson rates of the D independent counts in each state.
    """

    initial_probs: Array
    transition_matrix: Array
    rates: Array


def poisson_hmm_params(initial_probs, transition_matrix, rates) -> PoissonHMMParams:
    """Builds Poisson HMM params from a user's arrays.

    Args:
      initial_probs: ``[K]`` non-negative, summing to one.
      transition_matrix: ``[K, K]`` non-negative, rows summing to one.
      rates: ``[K, D]`` (or ``[K]`` for one count per step), positive.

    Example:
      >>> params = poisson_hmm_params([0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]], [1.0, 6.0])
    """
    rates = validation.as_float_array(rates, "rates", ndim=(1, 2))
    if rates.ndim == 1:
        rates = rates[:, None]
    if not bool(jnp.all(rates > 0)):
        raise ValueError("rates must be positive")
    k = rates.shape[0]
    initial_probs = hmm.check_probabilities(initial_probs, "initial_probs", (k,))
    transition_matrix = hmm.check_probabilities(transition_matrix, "transition_matrix", (k, k))
    dtype = jnp.result_type(initial_probs.dtype, transition_matrix.dtype, rates.dtype)
    return PoissonHMMParams(initial_probs.astype(dtype), transition_matrix.astype(dtype), rates.astype(dtype))


@register_model("poisson_hmm")
def poisson_hmm(n_states: int, *, transition_mask: Optional[Array] = None, parallel: bool = False) -> Model:
    """A hidden Markov model whose emissions are independent Poisson counts.

    Data: one sequence of non-negative integer counts ``[T, D]`` (``[T]`` means
    D = 1) or ``jaxem.Sequences(obs [B, T_max, D], lengths [B])``. Features
    ``[1, -Σ log x!, x]``; memory is O(B · T · (K + D)).

    Args:
      n_states: number of hidden states K.
      transition_mask: optional ``[K, K]`` bool of allowed transitions.
      parallel: compute the log-partition in parallel over time
        (``lax.associative_scan``; see ``jaxem.chain_latent``) instead of sequentially.

    Returns:
      A ``Model`` whose params are ``PoissonHMMParams``. ``init`` seeds the rates by
      k-means++ on the pooled steps, with uniform initial probabilities and "sticky"
      random transitions; ``sample(key, params, n)`` draws one sequence
      ``(x [n, D] int32, z [n])``.

    Example:
      >>> model = jaxem.models.poisson_hmm(2)
      >>> result = jaxem.fit(model, counts, key=0, n_restarts=8)
    """
    n_states = validation.check_positive_int(n_states, "n_states")
    family = families.poisson_family(field="rates")

    def encode(obs, mask):
        x = validation.to_float(obs)
        return jnp.where(mask[..., None], x, jnp.zeros_like(x))

    def template(data):
        x = data.features.x
        zeros = lambda s: jnp.zeros(s, x.dtype)  # noqa: E731
        return PoissonHMMParams(zeros((n_states,)), zeros((n_states, n_states)), zeros((n_states, x.shape[-1])))

    def check_obs(values):
        values = np.asarray(values)
        if values.size and np.any(values < 0):
            raise ValueError("obs must hold non-negative counts (Poisson), got a negative value")
        if values.size and np.any(values != np.round(values)):
            raise ValueError("obs must hold integer counts (Poisson)")

    def check_emissions(params, data_shape):
        if not isinstance(params, PoissonHMMParams):
            raise TypeError(f"params must be PoissonHMMParams, got {type(params).__name__}")
        expected = (n_states, data_shape[-1])
        if tuple(jnp.shape(params.rates)) != expected:
            raise ValueError(f"params.rates must have shape {expected} for n_states={n_states} and obs, got {jnp.shape(params.rates)}")

    def emit(key, params, z):
        return jax.random.poisson(key, params.rates[z]).astype(jnp.int32)

    return hmm.exponential_family_hmm(
        family,
        n_states=n_states,
        event_ndim=1,
        encode=encode,
        init_emissions=hmm.kmeans_emission_init(family, n_states),
        template=template,
        check_obs=check_obs,
        check_emissions=check_emissions,
        emit=emit,
        n_emission_parameters=lambda params: int(np.prod(jnp.shape(params.rates))),
        transition_mask=transition_mask,
        parallel=bool(parallel),
    )
