"""The Poisson family: independent counts per feature, ``x [..., D]``, ``rates [K, D]``.

Features ``[1, -Σ_d log x_d!, x]`` (column 0 all ones; the base measure is a
column whose coefficient is 1 for every component), coefficients
``[-Σ_d λ_kd, 1, log λ_k]``; M-step ``λ_k = (Σ_n r_nk x_n + ε) / (Σ_n r_nk + ε)``
with the ``tiny_count`` pseudo-count ε, so no rate reaches 0. Serves
``poisson_mixture`` (field ``rates``) and ``poisson_hmm`` (field ``rates``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import validation
from jaxem._src.base import Array
from jaxem._src.display import params_repr
from jaxem._src.component import Component, is_prepared, matrix_field
from jaxem._src.expfam import ExpFamily, ones_column, tiny_count
from jaxem._src.families import count_densities


class PoissonFeatures(NamedTuple):
    """Prepared Poisson data.

    Attributes:
      stats: ``[..., 2 + D]`` features ``[1, -Σ_d log x_d!, x]``.
      x: ``[..., D]`` the counts as floats.
    """

    stats: Array
    x: Array


class PoissonMixtureParams(NamedTuple):
    """Parameters of a mixture of independent Poissons.

    Attributes:
      weights: ``[K]`` mixing weights.
      rates: ``[K, D]`` Poisson rate of feature ``d`` in component ``k``.
    """

    weights: Array
    rates: Array

    __repr__ = params_repr


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

    __repr__ = params_repr


class GammaPrior(NamedTuple):
    """Gamma(shape, rate) prior of every Poisson rate (the conjugate prior).

    Log density ``(shape − 1) log λ − rate · λ`` (up to a constant); the MAP
    M-step is ``λ_kd = (Σ_n r_nk x_nd + shape − 1) / (Σ_n r_nk + rate)``.

    Attributes:
      shape: ``>= 1`` (below 1 the density is unbounded at 0: no MAP); a scalar,
        ``[D]`` or ``[K, D]``.
      rate: ``>= 0``; a scalar, ``[D]`` or ``[K, D]``.
    """

    shape: object = 1.0
    rate: object = 0.0


def check_prior(prior, k: int, name: str = "prior"):
    """A ``GammaPrior`` (or its fields as a plain tuple, as read back from a saved
    model) checked, with float64 NumPy fields; ``None`` passes."""
    if prior is None:
        return None
    shape, rate = prior = validation.prior_fields(prior, GammaPrior, name)
    if not np.all(shape >= 1.0):
        raise ValueError(f"{name}.shape must be >= 1 (below 1 the Gamma density has no MAP), got {shape.tolist()!r}")
    if not np.all(rate >= 0.0):
        raise ValueError(f"{name}.rate must be >= 0, got {rate.tolist()!r}")
    for field, value in (("shape", shape), ("rate", rate)):
        if value.ndim > 2 or (value.ndim == 2 and value.shape[0] not in (1, k)):
            raise ValueError(f"{name}.{field} has shape {value.shape}, which does not broadcast to ({k}, D)")
    return prior


def poisson_family(field: str = "rates", prior: GammaPrior | None = None) -> ExpFamily:
    """The Poisson ``ExpFamily``, reading and writing ``params.<field> [K, D]``,
    with the MAP M-step of an optional checked ``GammaPrior``."""

    def prepare(x):
        if is_prepared(x, PoissonFeatures):
            return x
        x = validation.to_float(x)
        log_base = -jnp.sum(jax.scipy.special.gammaln(x + 1.0), axis=-1, keepdims=True)
        return PoissonFeatures(jnp.concatenate([ones_column(x), log_base, x], axis=-1), x)

    def coefficients(params, features):
        rates = getattr(params, field).astype(features.stats.dtype)
        k = rates.shape[0]
        constant = -jnp.sum(rates, axis=1, keepdims=True)
        return jnp.concatenate([constant, jnp.ones((k, 1), rates.dtype), jnp.log(rates)], axis=1)

    def maximize(statistics, features, params):
        eps = tiny_count(statistics.dtype)
        sums, counts = statistics[:, 2:], statistics[:, :1]
        if prior is not None:
            sums = sums + jnp.broadcast_to(jnp.asarray(prior.shape, sums.dtype) - 1.0, sums.shape)
            counts = counts + jnp.broadcast_to(jnp.asarray(prior.rate, sums.dtype), sums.shape)
        rates = (sums + eps) / (counts + eps)
        return params._replace(**{field: rates.astype(getattr(params, field).dtype)})

    def log_densities(params, features, offsets=None):
        # large counts: the saddle-point form, whose rounding does not grow with x log x
        # (the condition is on the data alone: a branch, also under vmap over restarts)
        rates = getattr(params, field).astype(features.stats.dtype)
        fast = coefficients(params, features)
        offsets = jnp.zeros(rates.shape[:1], fast.dtype) if offsets is None else offsets.astype(fast.dtype)
        lead = (1,) * (features.x.ndim - 1)
        return jax.lax.cond(
            count_densities.needs_exact(features.x),
            lambda: count_densities.poisson_log_densities(features.x, rates) + offsets.reshape(lead + offsets.shape),
            lambda: features.stats @ fast.at[:, 0].add(offsets).T,
        )

    def log_prior(params):
        rates = getattr(params, field)
        shape, rate = (jnp.broadcast_to(jnp.asarray(v, rates.dtype), rates.shape) for v in prior)
        return jnp.sum(jnp.where(shape > 1, (shape - 1.0) * jnp.log(rates), jnp.zeros_like(rates)) - rate * rates)

    return ExpFamily(
        prepare=prepare, coefficients=coefficients, maximize=maximize, log_prior=None if prior is None else log_prior,
        log_densities=log_densities,
    )


def check_counts(x, name: str) -> None:
    """``ValueError`` unless every entry of ``x`` is a non-negative integer, and
    small enough that the sums of the M-step cannot overflow the compute dtype."""
    if bool(jnp.any(x < 0)):
        raise ValueError(f"{name} must hold non-negative counts (found a negative entry)")
    if not bool(jnp.all(x == jnp.round(x))):
        raise ValueError(f"{name} must hold integer counts (found a non-integer entry)")
    dtype = validation.to_float(jnp.zeros((1,), jnp.asarray(x).dtype)).dtype
    largest = float(jnp.max(jnp.asarray(x, dtype))) if jnp.size(x) else 0.0
    limit = float(jnp.finfo(dtype).max) / (16.0 * max(int(jnp.size(x)), 1))
    if largest > limit:
        raise ValueError(
            f"{name} holds counts up to {largest:.3g}: their sums overflow {jnp.dtype(dtype).name} "
            f"(at most {limit:.3g} for {jnp.size(x)} entries); use float64 (jax_enable_x64) or rescale"
        )


def component(field: str = "rates", prior: GammaPrior | None = None) -> Component:
    """The Poisson ``Component`` on ``params.<field> [K, D]``, with an optional
    checked ``GammaPrior`` (``check_prior``)."""

    def draw(key, params, labels):
        return jax.random.poisson(key, getattr(params, field)[labels]).astype(jnp.int32)

    def n_parameters(params) -> int:
        return int(np.prod(jnp.shape(getattr(params, field))))

    return Component(
        family=poisson_family(field, prior),
        features_type=PoissonFeatures,
        **matrix_field(field, positive=True),
        check_values=check_counts,
        draw=draw,
        n_parameters=n_parameters,
    )


def positive_rates(rates, ndim=2) -> Array:
    """A user's ``rates``, checked positive (``[K]`` becomes ``[K, 1]`` when ``ndim`` allows 1)."""
    rates = validation.as_float_array(rates, "rates", ndim=ndim)
    if rates.ndim == 1:
        rates = rates[:, None]
    if not bool(jnp.all(rates > 0)):
        raise ValueError("rates must be positive")
    return rates


def poisson_mixture_params(weights, rates) -> PoissonMixtureParams:
    """``PoissonMixtureParams`` from ``weights [K]`` and positive ``rates [K, D]``.

    Examples:
      >>> params = jaxem.models.poisson_mixture_params([0.3, 0.7], [[1.0], [6.0]])
      >>> params.rates.shape
      (2, 1)
    """
    weights, rates = validation.weights_and(weights, rates, "rates")
    return PoissonMixtureParams(weights, positive_rates(rates))


def poisson_hmm_params(initial_probs, transition_matrix, rates) -> PoissonHMMParams:
    """Builds Poisson HMM params from a user's arrays.

    Args:
      initial_probs: ``[K]`` non-negative, summing to one.
      transition_matrix: ``[K, K]`` non-negative, rows summing to one.
      rates: ``[K, D]`` (or ``[K]`` for one count per step), positive.

    Examples:
      >>> params = jaxem.models.poisson_hmm_params([0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]], [[1.0], [6.0]])
      >>> params.rates.shape
      (2, 1)
    """
    rates = positive_rates(rates, ndim=(1, 2))
    k = rates.shape[0]
    initial_probs = validation.check_probabilities(initial_probs, "initial_probs", (k,))
    transition_matrix = validation.check_probabilities(transition_matrix, "transition_matrix", (k, k))
    dtype = jnp.result_type(initial_probs.dtype, transition_matrix.dtype, rates.dtype)
    return PoissonHMMParams(initial_probs.astype(dtype), transition_matrix.astype(dtype), rates.astype(dtype))
