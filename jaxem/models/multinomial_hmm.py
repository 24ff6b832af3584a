"""Hidden Markov models with multinomial emissions: counts over S categories per
step, with a known number of trials (hmmlearn's ``MultinomialHMM``; family:
``jaxem/_src/families/categorical.py``)."""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax.numpy as jnp
import numpy as np

from jaxem._src import priors, validation
from jaxem._src.base import Array, Model
from jaxem._src.display import params_repr
from jaxem._src.families import categorical
from jaxem._src.families.poisson import check_counts
from jaxem._src.hmm import component_hmm
from jaxem._src.registry import register_model

__all__ = ["MultinomialHMMParams", "multinomial_hmm", "multinomial_hmm_params"]


class MultinomialHMMParams(NamedTuple):
    """Parameters of a multinomial HMM.

    Attributes:
      initial_probs: ``[K]`` initial state probabilities.
      transition_matrix: ``[K, K]``, row ``i`` is p(z_t = · | z_t-1 = i).
      emission_probs: ``[K, S]``, row ``k`` the category probabilities of state ``k``
        (hmmlearn's ``emissionprob_``).
    """

    initial_probs: Array
    transition_matrix: Array
    emission_probs: Array

    __repr__ = params_repr


def multinomial_hmm_params(initial_probs, transition_matrix, emission_probs) -> MultinomialHMMParams:
    """Builds multinomial HMM params from a user's arrays.

    Args:
      initial_probs: ``[K]`` non-negative, summing to one.
      transition_matrix: ``[K, K]`` non-negative, rows summing to one.
      emission_probs: ``[K, S]`` non-negative, rows summing to one (exact zeros
        are structural: EM keeps them zero).

    Examples:
      >>> from jaxem.models import multinomial_hmm_params
      >>> params = multinomial_hmm_params([0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]],
      ...                                 [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    """
    emission_probs = validation.as_float_array(emission_probs, "emission_probs", ndim=2)
    k = emission_probs.shape[0]
    emission_probs = validation.check_probabilities(emission_probs, "emission_probs", emission_probs.shape)
    initial_probs = validation.check_probabilities(initial_probs, "initial_probs", (k,))
    transition_matrix = validation.check_probabilities(transition_matrix, "transition_matrix", (k, k))
    dtype = jnp.result_type(initial_probs.dtype, transition_matrix.dtype, emission_probs.dtype)
    return MultinomialHMMParams(initial_probs.astype(dtype), transition_matrix.astype(dtype), emission_probs.astype(dtype))


def count_checker(n_trials: Optional[int]):
    """``(values [n, S], name) -> None``: non-negative integer counts, each step's
    total equal to ``n_trials`` when it is given."""

    def check_values(values, name):
        check_counts(values, name)
        if n_trials is not None:
            totals = np.sum(np.asarray(values), axis=-1)
            if np.any(totals != n_trials):
                raise ValueError(
                    f"{name} must sum to n_trials={n_trials} at every step "
                    f"(found totals from {totals.min():g} to {totals.max():g})"
                )

    return check_values


@register_model("multinomial_hmm")
def multinomial_hmm(
    n_states: int,
    *,
    n_trials: Optional[int] = None,
    transition_mask: Optional[Array] = None,
    parallel: bool = False,
    prior: Optional[priors.HMMPrior] = None,
) -> Model:
    """A hidden Markov model whose emission at each step is a vector of counts over
    S categories drawn from a multinomial with the state's probabilities.

    Data: non-negative integer counts ``[T, S]`` or
    ``jaxem.Sequences(obs [B, T_max, S], lengths [B])``. Features
    ``[1, log multinomial coefficient, x]``, so the log-likelihood is the full
    multinomial log-pmf (as hmmlearn's ``score``); the emission M-step is
    ``p_k ∝ Σ_t γ_tk x_t``. Memory is O(B · T · (K + S)).

    Args:
      n_states: number of hidden states K.
      n_trials: the number of trials of every step; when given, every step's
        counts must sum to it (``ValueError`` otherwise) and ``sample`` draws with
        it. ``None`` (the default) accepts any totals, as hmmlearn does when its
        ``n_trials`` is left unset; ``sample`` then needs it.
      transition_mask: optional ``[K, K]`` bool of allowed transitions.
      parallel: compute the log-partition in parallel over time.
      prior: optional ``jaxem.priors.HMMPrior`` whose ``emissions`` is a Dirichlet
        concentration (``>= 1``; a scalar, ``[S]`` or ``[K, S]``) of the emission
        rows: MAP-EM (``docs/priors.md``).

    Returns:
      A ``Model`` whose params are ``MultinomialHMMParams``; ``init`` seeds the
      emissions by k-means++ on the pooled steps; ``sample(key, params, n)`` draws
      ``(x [n, S], z [n])``.

    Examples:
      >>> import jax, jaxem
      >>> model = jaxem.models.multinomial_hmm(2, n_trials=5)
      >>> params = jaxem.models.multinomial_hmm_params([0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]],
      ...                                              [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
      >>> x, z = jaxem.sample(model, params, jax.random.key(0), 200)
      >>> result = jaxem.fit(model, x, key=0, n_restarts=4)
    """
    n_states = validation.check_positive_int(n_states, "n_states")
    if n_trials is not None:
        n_trials = validation.check_positive_int(n_trials, "n_trials")
    initial, transition, emissions = priors.check_hmm_prior(
        prior, n_states, lambda value: categorical.check_prior(value, n_states, None, "prior.emissions")
    )
    component = categorical.counts_component(
        "emission_probs", n_trials=1 if n_trials is None else n_trials, prior=emissions
    )
    component = component._replace(check_values=count_checker(n_trials))
    model = component_hmm(
        component,
        n_states,
        params_type=MultinomialHMMParams,
        transition_mask=transition_mask,
        parallel=bool(parallel),
        initial_prior=initial,
        transition_prior=transition,
    )
    if n_trials is None:
        model = model._replace(sample=_needs_n_trials)
    return model


def _needs_n_trials(key, params, n):
    del key, params, n
    raise ValueError("sampling a multinomial_hmm needs its number of trials: build it with multinomial_hmm(K, n_trials=...)")
