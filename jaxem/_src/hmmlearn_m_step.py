"""hmmlearn's M-step as a jaxem ``m_step``: which parameters are updated (its
``params`` letters) and its MAP updates under its priors, for the HMMs of
``jaxem.hmmlearn``.

The E-step stays jaxem's (the gradient of the chain's log-partition: expected
initial counts ``[K]``, transition counts ``[K, K]`` and smoothed marginals
``[B, T, K]``); this module only turns those expected statistics into hmmlearn
0.3.3's parameter updates, written from its documented formulas:

* initial probabilities / transition rows: ``max(prior - 1 + counts, 0)``
  normalized, exact zeros of the current values kept (a left-to-right chain stays
  one); a row with no mass left keeps its current values (hmmlearn leaves it
  zero and warns);
* categorical / multinomial emissions: the same with ``emissionprob_prior``;
* Poisson rates: ``(lambdas_prior + n ȳ_k) / (lambdas_weight + n)`` with ``n`` the
  total posterior mass (hmmlearn's formula);
* Gaussian means and covariances: the normal / inverse-gamma (diag, spherical) /
  inverse-Wishart (full, tied) MAP updates with ``means_prior``, ``means_weight``,
  ``covars_prior``, ``covars_weight``, in the standardized coordinates of the
  prepared features and mapped back exactly (the updates are affine-equivariant).

``hmmlearn_m_step(kind, letters, prior, covariance_type)`` returns the function;
``prior`` is a ``HmmlearnPrior`` of nested tuples (hashable: it is closed over
and part of the memoized model's identity).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from jaxem._src.base import Array
from jaxem._src.families.covariance import covariance_of


class HmmlearnPrior(NamedTuple):
    """hmmlearn's prior hyperparameters, each a number or nested tuples (NumPy
    broadcasting as in hmmlearn).

    Attributes:
      startprob: Dirichlet concentrations of the initial probabilities.
      transmat: Dirichlet concentrations of each transition row.
      emission: ``emissionprob_prior`` (categorical, multinomial) or
        ``lambdas_prior`` (Poisson); unused for Gaussian emissions.
      emission_weight: ``lambdas_weight`` (Poisson); unused otherwise.
      means: ``means_prior`` (Gaussian).
      means_weight: ``means_weight`` (Gaussian).
      covars: ``covars_prior`` (Gaussian), hmmlearn's shape for the type.
      covars_weight: ``covars_weight`` (Gaussian).
    """

    startprob: Any = 1.0
    transmat: Any = 1.0
    emission: Any = 1.0
    emission_weight: Any = 0.0
    means: Any = 0.0
    means_weight: Any = 0.0
    covars: Any = 1e-2
    covars_weight: Any = 1.0


def map_probabilities(counts: Array, concentration, current: Array) -> Array:
    """Rows (last axis) of ``max(concentration - 1 + counts, 0)`` normalized, zero
    where ``current`` is zero; a row left with no mass keeps ``current``."""
    dtype = counts.dtype
    mass = jnp.maximum(jnp.asarray(concentration, dtype) - 1.0 + counts, 0.0)
    mass = jnp.where(current == 0, jnp.zeros_like(mass), mass)
    total = jnp.sum(mass, axis=-1, keepdims=True)
    return jnp.where(total > 0, mass / jnp.where(total > 0, total, 1.0), current)


def _chain_update(posterior, params, letters: str, prior: HmmlearnPrior):
    dtype = params.transition_matrix.dtype
    updates = {}
    if "s" in letters:
        updates["initial_probs"] = map_probabilities(posterior.log_initial.astype(dtype), prior.startprob, params.initial_probs)
    if "t" in letters:
        updates["transition_matrix"] = map_probabilities(
            posterior.log_transition.astype(dtype), prior.transmat, params.transition_matrix
        )
    return updates


def _occupancy(posterior, x: Array):
    """``(post [K], obs [K, D])``: expected state counts and ``Σ_t γ_tk x_t``."""
    marginals = posterior.log_emission.astype(x.dtype)  # smoothed marginals [B, T, K], zero on padding
    return jnp.sum(marginals, axis=(0, 1)), jnp.einsum("btk,btd->kd", marginals, x)


def _categorical_update(data, posterior, params, letters, prior):
    if "e" not in letters:
        return {}
    _, obs = _occupancy(posterior, data.features.x)
    return {"emission_probs": map_probabilities(obs, prior.emission, params.emission_probs)}


def _poisson_update(data, posterior, params, letters, prior):
    if "l" not in letters:
        return {}
    post, obs = _occupancy(posterior, data.features.x)
    dtype = obs.dtype
    n = jnp.sum(post)
    alpha, beta = jnp.asarray(prior.emission, dtype), jnp.asarray(prior.emission_weight, dtype)
    y_bar = obs / post[:, None]
    rates = (alpha + n * y_bar) / (beta + n)
    # a state with no posterior mass keeps its rates (hmmlearn's would be NaN)
    return {"rates": jnp.where(post[:, None] > 0, rates, params.rates)}


def _standardized(value, shift, scale):
    return (value - shift[None, :]) / scale[None, :]


def _gaussian_update(covariance_type: str):
    covariance = covariance_of(covariance_type)

    def update(data, posterior, params, letters, prior):
        if "m" not in letters and "c" not in letters:
            return {}
        features = data.features
        x, shift, scale = features.x, features.shift, features.scale
        dtype = x.dtype
        k, d = params.means.shape
        marginals = posterior.log_emission.astype(dtype)
        post = jnp.sum(marginals, axis=(0, 1))
        obs = jnp.einsum("btk,btd->kd", marginals, x)
        weight = jnp.broadcast_to(jnp.asarray(prior.means_weight, dtype), (k,))[:, None]
        means_prior = _standardized(jnp.broadcast_to(jnp.asarray(prior.means, dtype), (k, d)), shift, scale)
        means = _standardized(params.means.astype(dtype), shift, scale)
        if "m" in letters:
            means = (weight * means_prior + obs) / (weight + post[:, None])
        updates = {"means": (means * scale[None, :] + shift[None, :]).astype(params.means.dtype)}
        if "c" not in letters:
            return updates
        covars_weight = jnp.asarray(prior.covars_weight, dtype)
        diff = means - means_prior
        if covariance_type in ("diag", "spherical"):
            squares = jnp.einsum("btk,btd->kd", marginals, x * x)
            numerator = weight * diff**2 + squares - 2.0 * means * obs + means**2 * post[:, None]
            cp = jnp.broadcast_to(jnp.asarray(prior.covars, dtype), (k, d)) / (scale * scale)[None, :]
            denominator = jnp.maximum(covars_weight - 1.0, 0.0) + post[:, None]
            variances = (cp + numerator) / jnp.maximum(denominator, 1e-5)
            if covariance_type == "spherical":
                variances = jnp.mean(variances, axis=1)
            factor = covariance.factor_from_covariances(variances)
        else:
            second = jnp.einsum("btk,btd,bte->kde", marginals, x, x)
            cross = obs[:, :, None] * means[:, None, :]
            numerator = (
                weight[:, :, None] * diff[:, :, None] * diff[:, None, :]
                + second
                - cross
                - jnp.swapaxes(cross, 1, 2)
                + means[:, :, None] * means[:, None, :] * post[:, None, None]
            )
            outer_scale = scale[:, None] * scale[None, :]
            extra = jnp.maximum(covars_weight - d, 0.0)
            if covariance_type == "tied":
                cp = jnp.broadcast_to(jnp.asarray(prior.covars, dtype), (d, d)) / outer_scale
                matrices = (cp + jnp.sum(numerator, axis=0)) / (extra + jnp.sum(post))
            else:
                cp = jnp.broadcast_to(jnp.asarray(prior.covars, dtype), (k, d, d)) / outer_scale[None]
                matrices = (cp + numerator) / (extra + post[:, None, None])
            matrices = 0.5 * (matrices + jnp.swapaxes(matrices, -1, -2))
            factor = covariance.factor_from_covariances(matrices)
        factor = covariance.scale_rows(factor, 1.0 / scale)
        updates["precisions_cholesky"] = factor.astype(params.precisions_cholesky.dtype)
        return updates

    return update


_EMISSION_UPDATES = {"categorical": _categorical_update, "multinomial": _categorical_update, "poisson": _poisson_update}


def hmmlearn_m_step(kind: str, letters: str, prior: HmmlearnPrior, covariance_type: str = "diag"):
    """hmmlearn's M-step for the HMM ``kind`` (``"gaussian"``, ``"categorical"``,
    ``"multinomial"``, ``"poisson"``) updating only the parameters named by
    ``letters`` (hmmlearn's ``params``), as ``m_step(data, posterior, params)``."""
    emission = _gaussian_update(covariance_type) if kind == "gaussian" else _EMISSION_UPDATES[kind]

    def m_step(data, posterior, params):
        updates = _chain_update(posterior, params, letters, prior)
        updates.update(emission(data, posterior, params, letters, prior))
        return params._replace(**updates)

    return m_step
