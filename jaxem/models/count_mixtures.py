"""Mixtures of Bernoulli, categorical (multinomial) and Poisson components.

All three are exponential-family mixtures (``jaxem/_src/families.py``): features
computed once per fit, log-potentials one matrix product, closed-form M-step from
``posteriorᵀ @ T(x)`` with a pseudo-count of 10·eps, so no probability reaches 0 or
1 and no rate reaches 0 exactly. They start from k-means++ seeding of the rows
(in JAX, so it runs inside vmapped restarts) and the M-step of the nearest-centre
hard assignment.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import families, seeding, validation
from jaxem._src.base import Array, Model
from jaxem._src.expfam import ExpFamily, exponential_family_mixture, hard_assignment_stats, mixture_weights
from jaxem._src.registry import register_model


class BernoulliMixtureParams(NamedTuple):
    """Parameters of a Bernoulli mixture.

    Attributes:
      weights: ``[K]`` mixing weights.
      probs: ``[K, D]`` probability that feature ``d`` is 1 in component ``k``.
    """

    weights: Array
    probs: Array


class CategoricalMixtureParams(NamedTuple):
    """Parameters of a categorical (multinomial) mixture.

    Attributes:
      weights: ``[K]`` mixing weights.
      probs: ``[K, S]`` category probabilities of each component (rows sum to 1).
    """

    weights: Array
    probs: Array


class PoissonMixtureParams(NamedTuple):
    """Parameters of a mixture of independent Poissons.

    Attributes:
      weights: ``[K]`` mixing weights.
      rates: ``[K, D]`` Poisson rate of feature ``d`` in component ``k``.
    """

    weights: Array
    rates: Array


def _count_mixture(
    n_components: int,
    family: ExpFamily,
    params_type,
    field: str,
    check_values: Callable[[Array], None],
    draw: Callable[[Array, Array], Array],
    free_per_component: Callable[[int], int],
) -> Model:
    n_components = validation.check_positive_int(n_components, "n_components")

    def init(key: Array, features: families.CountFeatures):
        x = features.x
        centres = seeding.kmeans_plus_plus(key, x, n_components)
        labels = seeding.nearest_centre(x, centres)
        stats = hard_assignment_stats(features.stats, labels, n_components)
        template = params_type(jnp.zeros((n_components,), x.dtype), jnp.zeros((n_components, x.shape[1]), x.dtype))
        params = family.maximize(stats, features, template)
        return params._replace(weights=mixture_weights(stats[:, 0]))

    def check(data, params=None):
        if isinstance(data, families.CountFeatures):
            n, d = data.x.shape
        else:
            x = validation.as_rows(data)
            n, d = x.shape
            if validation.is_concrete(x):
                check_values(x)
        if params is None:
            validation.check_n_components(n_components, n)
            return
        if not isinstance(params, params_type):
            raise TypeError(f"params must be {params_type.__name__}, got {type(params).__name__}")
        shape = tuple(jnp.shape(getattr(params, field)))
        if shape != (n_components, d):
            raise ValueError(
                f"params.{field} has shape {shape}, expected ({n_components}, {d}) for "
                f"n_components={n_components} and x with {d} features"
            )

    def sample(key: Array, params, n: int):
        z_key, x_key = jax.random.split(key)
        z = jax.random.categorical(z_key, jnp.log(params.weights), shape=(n,))
        return draw(x_key, getattr(params, field)[z]), z

    def n_parameters(params) -> int:
        k, d = jnp.shape(getattr(params, field))
        return k * free_per_component(d) + k - 1

    return exponential_family_mixture(family, init=init, check=check, sample=sample, n_parameters=n_parameters)


def _check_binary(x: Array) -> None:
    if not bool(jnp.all((x == 0) | (x == 1))):
        raise ValueError("x must be binary (every entry 0 or 1) for a Bernoulli mixture")


def _check_counts(x: Array) -> None:
    if bool(jnp.any(x < 0)):
        raise ValueError("x must hold non-negative counts (found a negative entry)")
    if not bool(jnp.all(x == jnp.round(x))):
        raise ValueError("x must hold integer counts (found a non-integer entry)")


@register_model("bernoulli_mixture")
def bernoulli_mixture(n_components: int) -> Model:
    """A mixture of products of independent Bernoullis, for binary data ``x [N, D]``.

    M-step: ``p_kd = (Σ_n r_nk x_nd + ε) / (Σ_n r_nk + 2ε)``, kept inside
    ``[eps, 1 - eps]`` of the dtype.

    Args:
      n_components: number of components K.

    Returns:
      A ``Model`` with ``BernoulliMixtureParams(weights [K], probs [K, D])``.

    Example:
      >>> model = jaxem.models.bernoulli_mixture(3)
      >>> result = jaxem.fit(model, x_binary, key=0, n_restarts=8)
    """

    def draw(key, probs):
        return jax.random.bernoulli(key, probs).astype(probs.dtype)

    return _count_mixture(
        n_components, families.bernoulli_family("probs"), BernoulliMixtureParams, "probs", _check_binary, draw, lambda d: d
    )


@register_model("categorical_mixture")
def categorical_mixture(n_components: int, *, n_trials: int = 1) -> Model:
    """A mixture of multinomials over ``S`` categories, for counts ``x [N, S]``.

    Row ``n`` holds how often each category occurred in item ``n`` (a one-hot row is
    a single categorical draw; rows may have different totals). M-step:
    ``p_k ∝ Σ_n r_nk x_n + ε``.

    Args:
      n_components: number of components K.
      n_trials: number of draws per row, used only by ``sample``.

    Returns:
      A ``Model`` with ``CategoricalMixtureParams(weights [K], probs [K, S])``.

    Example:
      >>> model = jaxem.models.categorical_mixture(2)
      >>> result = jaxem.fit(model, word_counts, key=0, n_restarts=8)
    """
    n_trials = validation.check_positive_int(n_trials, "n_trials")

    def draw(key, probs):
        trials = jnp.full(probs.shape[:-1], n_trials, probs.dtype)
        return jax.random.multinomial(key, trials, probs, dtype=probs.dtype)

    return _count_mixture(
        n_components, families.categorical_family("probs"), CategoricalMixtureParams, "probs", _check_counts, draw,
        lambda s: s - 1,
    )


@register_model("poisson_mixture")
def poisson_mixture(n_components: int) -> Model:
    """A mixture of products of independent Poissons, for counts ``x [N, D]``.

    M-step: ``λ_kd = (Σ_n r_nk x_nd + ε) / (Σ_n r_nk + ε)``.

    Args:
      n_components: number of components K.

    Returns:
      A ``Model`` with ``PoissonMixtureParams(weights [K], rates [K, D])``.

    Example:
      >>> model = jaxem.models.poisson_mixture(2)
      >>> result = jaxem.fit(model, counts, key=0, n_restarts=8)
    """

    def draw(key, rates):
        return jax.random.poisson(key, rates).astype(rates.dtype)

    return _count_mixture(
        n_components, families.poisson_family("rates"), PoissonMixtureParams, "rates", _check_counts, draw, lambda d: d
    )


# ----------------------------------------------------------------------------------
# Params from a user's arrays.


def _weights_and(weights, values, name: str):
    weights = validation.as_float_array(weights, "weights", ndim=1)
    values = validation.as_float_array(values, name, ndim=2)
    k = values.shape[0]
    if weights.shape != (k,):
        raise ValueError(f"weights must have shape ({k},) to match {name} {values.shape}, got {weights.shape}")
    if bool(jnp.any(weights < 0)) or abs(float(jnp.sum(weights)) - 1.0) > 1e-4:
        raise ValueError("weights must be non-negative and sum to one")
    dtype = jnp.result_type(weights.dtype, values.dtype)
    return weights.astype(dtype), values.astype(dtype)


def bernoulli_mixture_params(weights, probs) -> BernoulliMixtureParams:
    """``BernoulliMixtureParams`` from ``weights [K]`` and ``probs [K, D]`` in (0, 1)."""
    weights, probs = _weights_and(weights, probs, "probs")
    if bool(jnp.any((probs <= 0) | (probs >= 1))):
        raise ValueError("probs must lie strictly between 0 and 1")
    return BernoulliMixtureParams(weights, probs)


def categorical_mixture_params(weights, probs) -> CategoricalMixtureParams:
    """``CategoricalMixtureParams`` from ``weights [K]`` and ``probs [K, S]`` (positive rows summing to 1)."""
    weights, probs = _weights_and(weights, probs, "probs")
    if bool(jnp.any(probs <= 0)) or not np.allclose(np.asarray(jnp.sum(probs, axis=1)), 1.0, atol=1e-4):
        raise ValueError("each row of probs must be positive and sum to one")
    return CategoricalMixtureParams(weights, probs)


def poisson_mixture_params(weights, rates) -> PoissonMixtureParams:
    """``PoissonMixtureParams`` from ``weights [K]`` and positive ``rates [K, D]``."""
    weights, rates = _weights_and(weights, rates, "rates")
    if bool(jnp.any(rates <= 0)):
        raise ValueError("rates must be positive")
    return PoissonMixtureParams(weights, rates)
