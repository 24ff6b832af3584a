"""Hidden Markov models with categorical (discrete symbol) emissions (family:
``jaxem/_src/families/categorical.py``)."""

from __future__ import annotations

from typing import Optional

from jaxem._src import priors, validation
from jaxem._src.base import Array, Model
from jaxem._src.families import categorical
from jaxem._src.families.categorical import CategoricalHMMParams, categorical_hmm_params
from jaxem._src.hmm import component_hmm
from jaxem._src.registry import register_model

__all__ = ["CategoricalHMMParams", "categorical_hmm", "categorical_hmm_params"]


@register_model("categorical_hmm")
def categorical_hmm(
    n_states: int,
    n_symbols: int,
    *,
    transition_mask: Optional[Array] = None,
    parallel: bool = False,
    prior: Optional[priors.HMMPrior] = None,
) -> Model:
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
      prior: optional ``jaxem.priors.HMMPrior`` whose ``emissions`` is a Dirichlet
        concentration (``>= 1``; a scalar, ``[S]`` or ``[K, S]``) of the emission
        rows: MAP-EM (``jaxem.priors.hmmlearn_categorical`` maps hmmlearn's priors).

    Returns:
      A ``Model`` whose params are ``CategoricalHMMParams``. ``init`` draws the
      emission rows from Dirichlet(1) and the initial probabilities and transition
      rows from Dirichlet(1/K), as hmmlearn does (``docs/starts.md``);
      ``sample(key, params, n)`` draws one sequence ``(x [n] int32, z [n])``.

    Examples:
      >>> symbols = np.random.default_rng(0).integers(0, 4, size=(3, 50))   # 3 sequences of 50 symbols
      >>> model = jaxem.models.categorical_hmm(2, n_symbols=4)
      >>> data = jaxem.Sequences(symbols, [50, 40, 30])
      >>> result = jaxem.fit(model, data, key=0, n_restarts=4, max_iter=20)
      >>> result.params.emission_probs.shape                      # [K, S]
      (2, 4)
    """
    n_states = validation.check_positive_int(n_states, "n_states")
    n_symbols = validation.check_positive_int(n_symbols, "n_symbols")
    initial, transition, emissions = priors.check_hmm_prior(
        prior, n_states, lambda value: categorical.check_prior(value, n_states, n_symbols, "prior.emissions")
    )
    return component_hmm(
        categorical.symbols_component(n_symbols, "emission_probs", emissions),
        n_states,
        params_type=CategoricalHMMParams,
        transition_mask=transition_mask,
        parallel=bool(parallel),
        initial_prior=initial,
        transition_prior=transition,
    )
