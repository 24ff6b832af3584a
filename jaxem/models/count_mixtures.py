"""Mixtures of Bernoulli, categorical (multinomial) and Poisson components.

All three are exponential-family mixtures (families in
``jaxem/_src/families/{bernoulli,categorical,poisson}.py``): features computed once
per fit, log-potentials one matrix product, closed-form M-step from
``posteriorᵀ @ T(x)`` with a pseudo-count of 10·eps, so no probability reaches 0 or
1 and no rate reaches 0 exactly. They start from k-means++ seeding of the rows
(in JAX, so it runs inside vmapped restarts) and the M-step of the nearest-centre
hard assignment.
"""

from __future__ import annotations

from typing import Optional

from jaxem._src import priors, validation
from jaxem._src.base import Model
from jaxem._src.families import bernoulli, categorical, poisson
from jaxem._src.families.bernoulli import BernoulliMixtureParams, bernoulli_mixture_params
from jaxem._src.families.categorical import CategoricalMixtureParams, categorical_mixture_params
from jaxem._src.families.poisson import PoissonMixtureParams, poisson_mixture_params
from jaxem._src.mixture import component_mixture
from jaxem._src.registry import register_model

__all__ = [
    "BernoulliMixtureParams",
    "CategoricalMixtureParams",
    "PoissonMixtureParams",
    "bernoulli_mixture",
    "bernoulli_mixture_params",
    "categorical_mixture",
    "categorical_mixture_params",
    "poisson_mixture",
    "poisson_mixture_params",
]


@register_model("bernoulli_mixture")
def bernoulli_mixture(n_components: int, *, prior: Optional[priors.MixturePrior] = None) -> Model:
    """A mixture of products of independent Bernoullis, for binary data ``x [N, D]``.

    M-step: ``p_kd = (Σ_n r_nk x_nd + ε) / (Σ_n r_nk + 2ε)``, kept inside
    ``[eps, 1 - eps]`` of the dtype.

    Args:
      n_components: number of components K.
      prior: optional ``jaxem.priors.MixturePrior`` (Dirichlet weights,
        ``jaxem.priors.BetaPrior`` components): MAP-EM.

    Returns:
      A ``Model`` with ``BernoulliMixtureParams(weights [K], probs [K, D])``.

    Examples:
      >>> x_binary = np.random.default_rng(0).random((200, 6)) < [0.1, 0.1, 0.9, 0.9, 0.5, 0.5]
      >>> model = jaxem.models.bernoulli_mixture(2)
      >>> result = jaxem.fit(model, x_binary.astype(np.float32), key=0, n_restarts=4)
      >>> result.params.probs.shape                               # [K, D]
      (2, 6)
    """
    n_components = validation.check_positive_int(n_components, "n_components")
    weights_prior, component_prior = priors.check_mixture_prior(
        prior, n_components, lambda value: bernoulli.check_prior(value, n_components, "prior.components")
    )
    return component_mixture(
        bernoulli.component("probs", component_prior),
        n_components,
        params_type=BernoulliMixtureParams,
        weights_prior=weights_prior,
    )


@register_model("categorical_mixture")
def categorical_mixture(n_components: int, *, n_trials: int = 1, prior: Optional[priors.MixturePrior] = None) -> Model:
    """A mixture of multinomials over ``S`` categories, for counts ``x [N, S]``.

    Row ``n`` holds how often each category occurred in item ``n`` (a one-hot row is
    a single categorical draw; rows may have different totals). M-step:
    ``p_k ∝ Σ_n r_nk x_n + ε``.

    Args:
      n_components: number of components K.
      n_trials: number of draws per row, used only by ``sample``.
      prior: optional ``jaxem.priors.MixturePrior`` (Dirichlet weights, and a
        Dirichlet concentration of each row of ``probs``: a scalar, ``[S]`` or
        ``[K, S]``): MAP-EM.

    Returns:
      A ``Model`` with ``CategoricalMixtureParams(weights [K], probs [K, S])``.

    Examples:
      >>> word_counts = np.random.default_rng(0).multinomial(20, [0.4, 0.3, 0.2, 0.1], size=100)
      >>> model = jaxem.models.categorical_mixture(2)
      >>> result = jaxem.fit(model, word_counts.astype(np.float32), key=0, n_restarts=4)
      >>> result.params.probs.shape                               # [K, S]
      (2, 4)
    """
    n_trials = validation.check_positive_int(n_trials, "n_trials")
    n_components = validation.check_positive_int(n_components, "n_components")
    weights_prior, component_prior = priors.check_mixture_prior(
        prior, n_components, lambda value: categorical.check_prior(value, n_components, None, "prior.components")
    )
    component = categorical.counts_component("probs", n_trials=n_trials, prior=component_prior)
    return component_mixture(component, n_components, params_type=CategoricalMixtureParams, weights_prior=weights_prior)


@register_model("poisson_mixture")
def poisson_mixture(n_components: int, *, prior: Optional[priors.MixturePrior] = None) -> Model:
    """A mixture of products of independent Poissons, for counts ``x [N, D]``.

    M-step: ``λ_kd = (Σ_n r_nk x_nd + ε) / (Σ_n r_nk + ε)``.

    Args:
      n_components: number of components K.
      prior: optional ``jaxem.priors.MixturePrior`` (Dirichlet weights,
        ``jaxem.priors.GammaPrior`` rates): MAP-EM.

    Returns:
      A ``Model`` with ``PoissonMixtureParams(weights [K], rates [K, D])``.

    Examples:
      >>> counts = np.random.default_rng(0).poisson([[2.0], [9.0]] * 50)   # [100, 1]
      >>> model = jaxem.models.poisson_mixture(2)
      >>> result = jaxem.fit(model, counts, key=0, n_restarts=4)
      >>> rates = np.sort(np.asarray(result.params.rates).ravel())
      >>> bool(np.allclose(rates, [2.0, 9.0], atol=1.0))
      True
    """
    n_components = validation.check_positive_int(n_components, "n_components")
    weights_prior, component_prior = priors.check_mixture_prior(
        prior, n_components, lambda value: poisson.check_prior(value, n_components, "prior.components")
    )
    return component_mixture(
        poisson.component("rates", component_prior),
        n_components,
        params_type=PoissonMixtureParams,
        weights_prior=weights_prior,
    )
