"""Hidden Markov models with independent binary emissions (family:
``jaxem/_src/families/bernoulli.py``)."""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxem._src import hmm_missing_elementwise, priors, sequences, validation
from jaxem._src.base import Array, Model
from jaxem._src.display import params_repr
from jaxem._src.families import bernoulli
from jaxem._src.hmm import component_hmm
from jaxem._src.registry import register_model

__all__ = ["BernoulliHMMParams", "bernoulli_hmm", "bernoulli_hmm_params"]


class BernoulliHMMParams(NamedTuple):
    """Parameters of a Bernoulli HMM.

    Attributes:
      initial_probs: ``[K]`` initial state probabilities.
      transition_matrix: ``[K, K]``, row ``i`` is p(z_t = · | z_t-1 = i).
      probs: ``[K, D]``, probability that feature ``d`` is 1 in state ``k``.
    """

    initial_probs: Array
    transition_matrix: Array
    probs: Array

    __repr__ = params_repr


def bernoulli_hmm_params(initial_probs, transition_matrix, probs) -> BernoulliHMMParams:
    """Builds Bernoulli HMM params from a user's arrays.

    Args:
      initial_probs: ``[K]`` non-negative, summing to one.
      transition_matrix: ``[K, K]`` non-negative, rows summing to one.
      probs: ``[K, D]`` (or ``[K]`` for one binary feature per step), strictly
        between 0 and 1.

    Examples:
      >>> from jaxem.models import bernoulli_hmm_params
      >>> params = bernoulli_hmm_params([0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]], [[0.1, 0.8], [0.7, 0.2]])
    """
    probs = validation.as_float_array(probs, "probs", ndim=(1, 2))
    if probs.ndim == 1:
        probs = probs[:, None]
    if bool(jnp.any((probs <= 0) | (probs >= 1))):
        raise ValueError("probs must lie strictly between 0 and 1")
    k = probs.shape[0]
    initial_probs = validation.check_probabilities(initial_probs, "initial_probs", (k,))
    transition_matrix = validation.check_probabilities(transition_matrix, "transition_matrix", (k, k))
    dtype = jnp.result_type(initial_probs.dtype, transition_matrix.dtype, probs.dtype)
    return BernoulliHMMParams(initial_probs.astype(dtype), transition_matrix.astype(dtype), probs.astype(dtype))


def init_probs(key: Array, features, lengths: Array, params) -> BernoulliHMMParams:
    """Starting emissions: the pooled frequency of each feature, half and half with
    Uniform(0, 1) draws, kept in ``[0.02, 0.98]``. (k-means++ seeds are data points,
    binary, so a state seeded on them starts with probabilities at 0 or 1, where EM
    stays.)"""
    x = features.x
    mask = sequences.step_mask(lengths, x.shape[1])[..., None]
    frequencies = jnp.sum(jnp.where(mask, x, jnp.zeros_like(x)), axis=(0, 1)) / jnp.sum(mask).astype(x.dtype)
    noise = jax.random.uniform(key, params.probs.shape, x.dtype)
    return params._replace(probs=jnp.clip(0.5 * frequencies[None, :] + 0.5 * noise, 0.02, 0.98))


@register_model("bernoulli_hmm")
def bernoulli_hmm(
    n_states: int,
    *,
    transition_mask: Optional[Array] = None,
    parallel: bool = False,
    prior: Optional[priors.HMMPrior] = None,
    missing: str = "reject",
) -> Model:
    """A hidden Markov model whose emissions are D independent binary features.

    Data: one sequence of 0/1 vectors ``[T, D]`` (``[T]`` means D = 1) or
    ``jaxem.Sequences(obs [B, T_max, D], lengths [B])``. Features ``[1, x]``,
    coefficients ``[Σ_d log(1 - p_kd), logit p_k]``; the emission M-step is
    ``p_kd = Σ_t γ_tk x_td / Σ_t γ_tk`` (a tiny pseudo-count keeps it inside
    ``(0, 1)``). Memory is O(B · T · (K + D)).

    Args:
      n_states: number of hidden states K.
      transition_mask: optional ``[K, K]`` bool of allowed transitions.
      missing: ``"reject"`` (default: NaN in the data is an error) or
        ``"marginalize"``: NaN entries are missing at random and drop out of the
        product over features (``jaxem/_src/hmm_missing_elementwise.py``).
      parallel: compute the log-partition in parallel over time
        (``lax.associative_scan``; see ``jaxem.chain_latent``).
      prior: optional ``jaxem.priors.HMMPrior`` whose ``emissions`` is a
        ``jaxem.priors.BetaPrior`` of the probabilities: MAP-EM (``docs/priors.md``).

    Returns:
      A ``Model`` whose params are ``BernoulliHMMParams``. ``init`` mixes the
      pooled frequencies half and half with Uniform(0, 1) draws (``init_probs``),
      with initial probabilities and transition rows drawn from Dirichlet(1/K) as
      hmmlearn does (``docs/starts.md``); ``sample(key, params, n)``
      draws one sequence ``(x [n, D] bool, z [n])``.

    Examples:
      >>> import jax, jaxem
      >>> model = jaxem.models.bernoulli_hmm(2)
      >>> params = jaxem.models.bernoulli_hmm_params([0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]],
      ...                                            [[0.1, 0.9, 0.2], [0.8, 0.1, 0.7]])
      >>> x, z = jaxem.sample(model, params, jax.random.key(0), 200)
      >>> result = jaxem.fit(model, x, key=0, n_restarts=4)
    """
    n_states = validation.check_positive_int(n_states, "n_states")
    if missing not in ("reject", "marginalize"):
        raise ValueError(f"missing must be 'reject' or 'marginalize', got {missing!r}")
    initial, transition, emissions = priors.check_hmm_prior(
        prior, n_states, lambda value: bernoulli.check_prior(value, n_states, "prior.emissions")
    )
    if missing == "marginalize" and prior is not None:
        raise ValueError("missing='marginalize' does not take a prior yet; pass prior=None")
    model = component_hmm(
        bernoulli.component("probs", emissions)._replace(init_states=init_probs),
        n_states,
        params_type=BernoulliHMMParams,
        transition_mask=transition_mask,
        parallel=bool(parallel),
        initial_prior=initial,
        transition_prior=transition,
    )
    if missing == "marginalize":
        return hmm_missing_elementwise.marginalizing_elementwise_hmm(
            model, "probs", hmm_missing_elementwise.bernoulli_log_density, hmm_missing_elementwise.bernoulli_maximize, transition_mask
        )
    return model
