"""Hidden Markov models with categorical (discrete symbol) emissions."""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import families, hmm, sequences, validation
from jaxem._src.base import Array, Model
from jaxem._src.registry import register_model


class CategoricalHMMParams(NamedTuple):
    """Parameters of a categorical HMM.

    Attributes:
      initial_probs: ``[K]`` initial state probabilities.
      transition_matrix: ``[K, K]``, row ``i`` is p(z_t = · | z_t-1 = i).
      emission_probs: ``[K, S]``, row ``k`` is p(x_t = · | z_t = k).
    """

    initial_probs: Array
    transition_matrix: Array
    emission_probs: Array


def categorical_hmm_params(initial_probs, transition_matrix, emission_probs) -> CategoricalHMMParams:
    """Builds categorical HMM params from a user's arrays.

    Args:
      initial_probs: ``[K]`` non-negative, summing to one.
      transition_matrix: ``[K, K]`` non-negative, rows summing to one.
      emission_probs: ``[K, S]`` non-negative, rows summing to one.

    Example:
      >>> params = categorical_hmm_params([1.0, 0.0], [[0.9, 0.1], [0.1, 0.9]],
      ...                                 [[0.5, 0.5, 0.0], [0.1, 0.1, 0.8]])
    """
    emission_probs = validation.as_float_array(emission_probs, "emission_probs", ndim=2)
    k = emission_probs.shape[0]
    emission_probs = hmm.check_probabilities(emission_probs, "emission_probs", emission_probs.shape)
    initial_probs = hmm.check_probabilities(initial_probs, "initial_probs", (k,))
    transition_matrix = hmm.check_probabilities(transition_matrix, "transition_matrix", (k, k))
    dtype = jnp.result_type(initial_probs.dtype, transition_matrix.dtype, emission_probs.dtype)
    return CategoricalHMMParams(initial_probs.astype(dtype), transition_matrix.astype(dtype), emission_probs.astype(dtype))


@register_model("categorical_hmm")
def categorical_hmm(n_states: int, n_symbols: int, *, transition_mask: Optional[Array] = None, parallel: bool = False) -> Model:
    """A hidden Markov model whose emissions are symbols in ``[0, n_symbols)``.

    Data: one sequence of integer symbols ``[T]`` or
    ``jaxem.Sequences(obs [B, T_max], lengths [B])``. The emission table is one
    contraction of the one-hot features ``[B, T, S + 2]`` with ``log emission_probs``;
    memory is O(B · T · (K + S)).

    Args:
      n_states: number of hidden states K.
      n_symbols: number of symbols S.
      transition_mask: optional ``[K, K]`` bool of allowed transitions.
      parallel: compute the log-partition in parallel over time
        (``lax.associative_scan``; see ``jaxem.chain_latent``) instead of sequentially.

    Returns:
      A ``Model`` whose params are ``CategoricalHMMParams``. ``init`` mixes the
      pooled symbol frequencies half and half with random Dirichlet(1) rows, with
      uniform initial probabilities and "sticky" random transitions;
      ``sample(key, params, n)`` draws one sequence ``(x [n] int32, z [n])``.

    Example:
      >>> model = jaxem.models.categorical_hmm(2, n_symbols=4)
      >>> result = jaxem.fit(model, jaxem.Sequences(symbols, lengths), key=0, n_restarts=8)
    """
    n_states = validation.check_positive_int(n_states, "n_states")
    n_symbols = validation.check_positive_int(n_symbols, "n_symbols")
    family = families.categorical_family(field="emission_probs")
    dtype = jnp.asarray(0.0).dtype

    def encode(obs, mask):
        symbols = jnp.where(mask, obs, jnp.zeros_like(obs)).astype(jnp.int32)
        return jax.nn.one_hot(symbols, n_symbols, dtype=dtype)

    def template(data):
        zeros = lambda s: jnp.zeros(s, data.features.x.dtype)  # noqa: E731
        return CategoricalHMMParams(zeros((n_states,)), zeros((n_states, n_states)), zeros((n_states, n_symbols)))

    def init_emissions(key, data, params):
        x = data.features.x
        mask = sequences.step_mask(data.lengths, x.shape[1])[..., None]
        counts = jnp.sum(jnp.where(mask, x, jnp.zeros_like(x)), axis=(0, 1))
        frequencies = hmm.normalized_counts(counts)
        noise = hmm.flat_dirichlet(key, (n_states, n_symbols), x.dtype)
        return params._replace(emission_probs=0.5 * frequencies[None, :] + 0.5 * noise)

    def check_obs(values):
        values = np.asarray(values)
        if values.size and (np.any(values != np.round(values)) or values.min() < 0 or values.max() >= n_symbols):
            raise ValueError(f"obs must hold integer symbols in [0, n_symbols={n_symbols})")

    def check_emissions(params, data_shape):
        del data_shape
        if not isinstance(params, CategoricalHMMParams):
            raise TypeError(f"params must be CategoricalHMMParams, got {type(params).__name__}")
        if tuple(jnp.shape(params.emission_probs)) != (n_states, n_symbols):
            raise ValueError(
                f"params.emission_probs must have shape ({n_states}, {n_symbols}) for n_states={n_states}, "
                f"n_symbols={n_symbols}, got {jnp.shape(params.emission_probs)}"
            )

    def emit(key, params, z):
        return jax.random.categorical(key, jnp.log(params.emission_probs[z]), axis=-1).astype(jnp.int32)

    return hmm.exponential_family_hmm(
        family,
        n_states=n_states,
        event_ndim=0,
        encode=encode,
        init_emissions=init_emissions,
        template=template,
        check_obs=check_obs,
        check_emissions=check_emissions,
        emit=emit,
        n_emission_parameters=lambda params: n_states * (n_symbols - 1),
        transition_mask=transition_mask,
        parallel=bool(parallel),
    )
