"""Hidden Markov models with Poisson (count) emissions (family:
``jaxem/_src/families/poisson.py``)."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jaxem._src import hmm_missing_elementwise, priors, validation
from jaxem._src.base import Array, Model
from jaxem._src.families import poisson
from jaxem._src.families.poisson import PoissonHMMParams, poisson_hmm_params
from jaxem._src.hmm import component_hmm
from jaxem._src.registry import register_model

__all__ = ["PoissonHMMParams", "poisson_hmm", "poisson_hmm_params"]

# The weight of the drawn rows in a sticky start (each self-transition is then at least 1 - STICKY_MIX).
STICKY_MIX = 0.1


def sticky_or_sparse_chain(key, transition, mask=None):
    """A start's ``transition [K, K]``: the drawn (sparse, Dirichlet(1/K)) rows
    unchanged, or, by a fair coin from ``key``, made sticky, ``(1 - m) I + m
    transition`` (m = ``STICKY_MIX``: every state stays with probability >= 0.9).

    Sticky starts reach optima whose states persist, which the sparse draws alone
    rarely do (on the ``discoveries`` counts, K = 2, -2.0605 nats/year against
    -2.0618 from 7 of 8 sparse starts); the sparse half keeps exploring other chain
    structures. A ``mask [K, K]`` keeps disallowed transitions (the diagonal too)
    at zero."""
    k = transition.shape[-1]
    sticky = (1.0 - STICKY_MIX) * jnp.eye(k, dtype=transition.dtype) + STICKY_MIX * transition
    if mask is not None:
        sticky = jnp.where(jnp.asarray(mask, bool), sticky, jnp.zeros_like(sticky))
        sticky = sticky / jnp.sum(sticky, axis=-1, keepdims=True)
    return jnp.where(jax.random.bernoulli(key), sticky, transition)


def _with_sticky_or_sparse_chain(init, mask):
    """``init`` whose transition rows are ``sticky_or_sparse_chain``'s (the coin
    from a key folded out of the start's key, the other draws unchanged)."""

    def start(key, data):
        params = init(key, data)
        coin_key = jax.random.fold_in(key, 0x5717C)
        return params._replace(transition_matrix=sticky_or_sparse_chain(coin_key, params.transition_matrix, mask))

    return start


@register_model("poisson_hmm")
def poisson_hmm(
    n_states: int,
    *,
    transition_mask: Optional[Array] = None,
    parallel: bool = False,
    prior: Optional[priors.HMMPrior] = None,
    missing: str = "reject",
) -> Model:
    """A hidden Markov model whose emissions are independent Poisson counts.

    Data: one sequence of non-negative integer counts ``[T, D]`` (``[T]`` means
    D = 1) or ``jaxem.Sequences(obs [B, T_max, D], lengths [B])``. Features
    ``[1, -Σ log x!, x]``; memory is O(B · T · (K + D)).

    Args:
      n_states: number of hidden states K.
      transition_mask: optional ``[K, K]`` bool of allowed transitions.
      missing: ``"reject"`` (default: NaN in the data is an error) or
        ``"marginalize"``: NaN entries are missing at random and drop out of the
        product over features (``jaxem/_src/hmm_missing_elementwise.py``).
      parallel: compute the log-partition in parallel over time
        (``lax.associative_scan``; see ``jaxem.chain_latent``) instead of sequentially.
      prior: optional ``jaxem.priors.HMMPrior`` whose ``emissions`` is a
        ``jaxem.priors.GammaPrior`` of the rates: MAP-EM
        (``jaxem.priors.hmmlearn_poisson`` maps hmmlearn's priors).

    Returns:
      A ``Model`` whose params are ``PoissonHMMParams``. ``init`` starts the rates
      from k-means clusters of the pooled steps, with initial probabilities and
      transition rows drawn from Dirichlet(1/K) as hmmlearn does, and by a fair
      coin per start the transition rows made sticky (``sticky_or_sparse_chain``); ``sample(key, params, n)`` draws one sequence
      ``(x [n, D] int32, z [n])``.

    Examples:
      >>> table, columns = jaxem.load_dataset("discoveries")     # columns: time (year), value (count)
      >>> counts = table[:, 1:]                                    # [100, 1] counts per year
      >>> model = jaxem.models.poisson_hmm(2)
      >>> result = jaxem.fit(model, counts, key=0, n_restarts=4)
      >>> result.params.rates.shape                               # [K, D]
      (2, 1)
    """
    n_states = validation.check_positive_int(n_states, "n_states")
    if missing not in ("reject", "marginalize"):
        raise ValueError(f"missing must be 'reject' or 'marginalize', got {missing!r}")
    initial, transition, emissions = priors.check_hmm_prior(
        prior, n_states, lambda value: poisson.check_prior(value, n_states, "prior.emissions")
    )
    if missing == "marginalize" and prior is not None:
        raise ValueError("missing='marginalize' does not take a prior yet; pass prior=None")
    model = component_hmm(
        poisson.component("rates", emissions),
        n_states,
        params_type=PoissonHMMParams,
        transition_mask=transition_mask,
        parallel=bool(parallel),
        initial_prior=initial,
        transition_prior=transition,
    )
    model = model._replace(init=_with_sticky_or_sparse_chain(model.init, transition_mask))
    if missing == "marginalize":
        return hmm_missing_elementwise.marginalizing_elementwise_hmm(
            model, "rates", hmm_missing_elementwise.poisson_log_density, hmm_missing_elementwise.poisson_maximize, transition_mask
        )
    return model
