"""Conjugate priors: MAP-EM with closed-form M-steps.

A model built with ``prior=`` maximizes ``Q(θ) + log p(θ)`` in its M-step, so EM
ascends the log posterior ``log p(x; θ) + log p(θ)`` (the monotone-ascent
argument holds unchanged for Q + log prior): the fit's ``history`` and stopping
rule follow it, the best restart is the highest log posterior, and
``FitResult.log_prior`` reports ``log p(θ)`` beside ``log_likelihood`` (which
``bic``/``aic`` use alone). Log densities are up to a constant that does not
depend on the params (several defaults are improper).

Each conjugate prior adds pseudo-statistics to the expected statistics, so the
MAP M-step is the same closed form on the fast path, chunked, sharded and
streamed. The priors themselves live with their families, one per file:

==========================  ===============================  ==========================
params                      prior                            file
==========================  ===============================  ==========================
weights, initial, rows      Dirichlet concentration ``α``    ``families/dirichlet.py``
Gaussian means, covariance  ``GaussianPrior`` (NIW form)     ``families/gaussian.py``
categorical emission rows   Dirichlet concentration ``α``    ``families/categorical.py``
Poisson rates               ``GammaPrior(shape, rate)``      ``families/poisson.py``
Bernoulli probabilities     ``BetaPrior(a, b)``              ``families/bernoulli.py``
regression coefs, variance  ``RegressionPrior`` (NIG)        ``families/regression.py``
==========================  ===============================  ==========================

This module holds the model-level bundles (``HMMPrior``, ``MixturePrior``), the
constructors with weak defaults, and hmmlearn's parameterization mapped exactly
(``hmmlearn_gaussian``, ...).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np

from jaxem._src import update as update_lib
from jaxem._src.base import Model
from jaxem._src.families import dirichlet
from jaxem._src.families.covariance import covariance_of
from jaxem._src.families.gaussian import GaussianPrior
from jaxem._src.families.poisson import GammaPrior


class HMMPrior(NamedTuple):
    """The prior of an HMM's params.

    Attributes:
      initial_probs: Dirichlet concentration ``α >= 1`` of the initial
        probabilities (a scalar or ``[K]``), or ``None`` (flat).
      transition_matrix: Dirichlet concentration of every transition row (a
        scalar, ``[K]`` or ``[K, K]``; row ``i`` gets ``α[i]``), or ``None``.
      emissions: the emission family's prior (e.g. a ``GaussianPrior``), or ``None``.
    """

    initial_probs: Any = None
    transition_matrix: Any = None
    emissions: Any = None


class MixturePrior(NamedTuple):
    """The prior of a mixture's params.

    Attributes:
      weights: Dirichlet concentration ``α >= 1`` of the mixing weights (a
        scalar or ``[K]``), or ``None`` (flat).
      components: the component family's prior (e.g. a ``GaussianPrior``), or ``None``.
    """

    weights: Any = None
    components: Any = None


def check_mixture_prior(prior, n_components: int, check_components) -> tuple:
    """``(weights, components)`` of ``prior`` (a ``MixturePrior`` or ``None``)
    checked; ``check_components(value) -> checked`` for the component prior."""
    prior = as_named(prior, MixturePrior)
    if prior is None:
        return None, None
    weights = components = None
    if prior.weights is not None:
        weights = dirichlet.check_concentration(prior.weights, "prior.weights", (n_components,))
    if prior.components is not None:
        components = check_components(prior.components)
    return weights, components


def as_named(value, cls):
    """``value`` as ``cls`` (a NamedTuple): itself, or its fields as a plain tuple
    (how a saved model's options are read back), or ``None``."""
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, (tuple, list)) and len(value) == len(cls._fields):
        return cls(*value)
    raise TypeError(f"prior must be a jaxem.priors.{cls.__name__} or None, got {type(value).__name__}")


def check_hmm_prior(prior, n_states: int, check_emissions) -> tuple:
    """``(initial, transition, emissions)`` of ``prior`` (an ``HMMPrior`` or
    ``None``) checked; ``check_emissions(value) -> checked`` for the emission prior."""
    prior = as_named(prior, HMMPrior)
    if prior is None:
        return None, None, None
    initial = transition = emissions = None
    if prior.initial_probs is not None:
        initial = dirichlet.check_concentration(prior.initial_probs, "prior.initial_probs", (n_states,))
    if prior.transition_matrix is not None:
        transition = dirichlet.check_concentration(prior.transition_matrix, "prior.transition_matrix", (n_states, n_states))
        if transition.ndim == 1:  # one concentration per row
            transition = transition[:, None]
    if prior.emissions is not None:
        emissions = check_emissions(prior.emissions)
    return initial, transition, emissions


def normal_inverse_wishart(mean=0.0, mean_weight=0.0, scale=0.0, dof=None, *, n_features: int) -> GaussianPrior:
    """A standard normal-inverse-Wishart prior NIW(m, κ, Ψ, dof) as a ``GaussianPrior``:
    ``μ | Σ ~ N(m, Σ / κ)``, ``Σ ~ W⁻¹(Ψ, dof)``, i.e. ``covariances_weight =
    dof + D + 2`` (``dof + D + 1`` when ``κ = 0``: no prior on the mean).

    Args:
      mean: ``m``, a scalar, ``[D]`` or ``[K, D]``.
      mean_weight: ``κ >= 0``.
      scale: ``Ψ``: a scalar (``Ψ = s I``) or the covariance type's shape.
      dof: degrees of freedom, ``> D - 1`` for a proper inverse-Wishart
        (default ``D - 1``: its limit, the weakest).
      n_features: D.

    Examples:
      >>> prior = jaxem.priors.normal_inverse_wishart(0.0, 0.01, 0.1, n_features=2)
      >>> float(prior.covariances_weight)
      5.0
    """
    d = int(n_features)
    dof = float(d - 1) if dof is None else float(dof)
    offset = d + 2 if np.any(np.asarray(mean_weight) > 0) else d + 1
    return GaussianPrior(mean, mean_weight, scale, dof + offset)


def weak_gaussian(x, covariance_type: str = "full", *, strength: float = 1.0, scale: float = 0.01) -> GaussianPrior:
    """A weak data-scaled ``GaussianPrior``: ``strength`` pseudo-observations of the
    covariance at ``scale`` times each feature's variance, no pull on the means.

    Every MAP covariance is then at least ``strength · scale · var(x) / (n_k +
    strength)`` per feature, so no component collapses onto a point or a
    subspace, whatever the data; a component with no data gets ``scale · var(x)``.

    Args:
      x: ``[N, D]`` data (NumPy or JAX), read once for its variances.
      covariance_type: the model's covariance type.
      strength: ``ν``, pseudo-observations (> 0).
      scale: the prior covariance as a fraction of the data's variances (> 0).

    Examples:
      >>> import numpy as np
      >>> prior = jaxem.priors.weak_gaussian(np.arange(8.0).reshape(4, 2), "diag")
      >>> prior.covariances.shape
      (2,)
    """
    covariance = covariance_of(covariance_type)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must be [N, D] data with N >= 2, got shape {x.shape}")
    if not (strength > 0 and scale > 0):
        raise ValueError(f"strength and scale must be > 0, got {strength!r} and {scale!r}")
    variances = np.nanvar(x, axis=0)
    variances = np.where(variances > 0, variances, 1.0)
    psi = {
        "full": np.diag(variances),
        "tied": np.diag(variances),
        "diag": variances,
        "spherical": np.asarray(np.mean(variances)),
    }[covariance.name]
    return GaussianPrior(0.0, 0.0, strength * scale * psi, float(strength))


def hmmlearn_gaussian(
    n_states: int,
    n_features: int,
    covariance_type: str = "diag",
    *,
    startprob_prior=1.0,
    transmat_prior=1.0,
    means_prior=0.0,
    means_weight=0.0,
    covars_prior=1e-2,
    covars_weight=1.0,
) -> HMMPrior:
    """hmmlearn's ``GaussianHMM`` priors (0.3.3, same names and defaults) as an ``HMMPrior``.

    With ``jaxem.models.gaussian_hmm(n_states, covariance_type=...,
    reg_covar=0.0, prior=hmmlearn_gaussian(...))`` one ``jaxem.em_step`` is one
    hmmlearn iteration (``_do_mstep``): ``means = (means_weight · means_prior +
    Σ γ x) / (means_weight + Σ γ)``; covariances ``(covars_prior + c_n) /
    (max(covars_weight − 1, 0) + Σ γ)`` (diag, spherical: the mean over features)
    or ``/ (max(covars_weight − D, 0) + Σ γ)`` (full, tied). That is the exact MAP
    of the ``GaussianPrior`` with ``covariances_weight = max(covars_weight − 1,
    0)`` (resp. ``− D``). ``startprob_prior``/``transmat_prior`` are Dirichlet
    concentrations (``>= 1``; below 1 hmmlearn clips at 0, which maximizes no
    posterior, and jaxem refuses them). A scalar ``covars_prior`` is added by
    hmmlearn to every entry of a full/tied matrix, so it maps to ``Ψ = s 11ᵀ``
    (a ``GaussianPrior``'s own scalar means ``s I``).

    Examples:
      >>> prior = jaxem.priors.hmmlearn_gaussian(2, 3, "full", covars_prior=0.1, covars_weight=5.0)
      >>> float(prior.emissions.covariances_weight)
      2.0
    """
    covariance = covariance_of(covariance_type)
    k, d = int(n_states), int(n_features)
    weight = np.asarray(covars_weight, dtype=np.float64)
    if weight.ndim != 0:
        raise ValueError(f"covars_weight must be a scalar (as in hmmlearn), got shape {weight.shape}")
    offset = d if covariance.name in ("full", "tied") else 1
    psi = np.asarray(covars_prior, dtype=np.float64)
    if covariance.name in ("full", "tied") and psi.ndim == 0:  # hmmlearn adds a scalar to every entry
        psi = np.full((d, d), float(psi))
    if covariance.name == "spherical":  # hmmlearn averages the per-feature variances
        psi = np.mean(np.broadcast_to(psi, (k, d)), axis=1) if psi.ndim else psi
    emissions = GaussianPrior(
        np.asarray(means_prior, dtype=np.float64),
        np.asarray(means_weight, dtype=np.float64),
        psi,
        np.asarray(max(float(weight) - offset, 0.0)),
    )
    return HMMPrior(startprob_prior, transmat_prior, emissions)


def hmmlearn_categorical(
    n_states: int, n_symbols: int, *, startprob_prior=1.0, transmat_prior=1.0, emissionprob_prior=1.0
) -> HMMPrior:
    """hmmlearn's ``CategoricalHMM`` priors (0.3.3) as an ``HMMPrior`` for
    ``jaxem.models.categorical_hmm``: every one a Dirichlet concentration
    (``>= 1``), the update ``∝ stats + prior − 1`` exactly as hmmlearn's.

    Examples:
      >>> prior = jaxem.priors.hmmlearn_categorical(2, 3, emissionprob_prior=2.0)
    """
    del n_states, n_symbols  # shapes are checked by the model
    return HMMPrior(startprob_prior, transmat_prior, emissionprob_prior)


def hmmlearn_poisson(n_states: int, *, startprob_prior=1.0, transmat_prior=1.0, lambdas_prior=0.0, lambdas_weight=0.0) -> HMMPrior:
    """hmmlearn's ``PoissonHMM`` priors (0.3.3) as an ``HMMPrior`` for
    ``jaxem.models.poisson_hmm``.

    ``lambdas_prior = α``, ``lambdas_weight = β`` (hmmlearn's alpha-beta
    notation) become ``GammaPrior(shape=α + 1, rate=β)``, whose MAP is the
    posterior mean of a Gamma(α, β) prior, ``λ_k = (α + Σ_t γ_tk x_t) / (β + Σ_t
    γ_tk)``. hmmlearn 0.3.3 computes ``(α + n ȳ_k) / (β + n)`` with ``n`` the
    total count over *all* states instead of state k's, which agrees with this
    only for one state or ``α = β = 0``; jaxem keeps the per-state posterior.

    Examples:
      >>> prior = jaxem.priors.hmmlearn_poisson(2, lambdas_prior=1.0, lambdas_weight=0.5)
      >>> prior.emissions
      GammaPrior(shape=2.0, rate=0.5)
    """
    del n_states
    shape = np.asarray(lambdas_prior, dtype=np.float64) + 1.0
    emissions = GammaPrior(float(shape) if shape.ndim == 0 else shape, float(lambdas_weight) if np.ndim(lambdas_weight) == 0 else np.asarray(lambdas_weight, dtype=np.float64))
    return HMMPrior(startprob_prior, transmat_prior, emissions)


def log_prior(model: Model, params):
    """The log prior density of ``params`` under ``model``'s prior (up to a
    constant; 0 for a model without a prior).

    Examples:
      >>> import jaxem
      >>> model = jaxem.models.gaussian_hmm(2, prior=jaxem.priors.hmmlearn_gaussian(2, 1, transmat_prior=2.0))
      >>> params = jaxem.models.gaussian_hmm_params([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [[0.0], [3.0]], [[1.0], [0.5]])
      >>> bool(jaxem.priors.log_prior(model, params) < 0)
      True
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a jaxem Model, got {type(model).__name__}")
    return update_lib.log_prior(model, params)

