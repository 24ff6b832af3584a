"""The Bernoulli family: independent binary features, ``x [..., D]`` in {0, 1}, ``probs [K, D]``.

Features ``[1, x]``, coefficients ``[Σ_d log(1 - p_kd), logit p_k]``; M-step
``p_k = (Σ_n r_nk x_n + ε) / (Σ_n r_nk + 2ε)`` with the ``tiny_count``
pseudo-count ε, kept in ``[eps, 1 - eps]`` of the dtype. Serves
``bernoulli_mixture`` (field ``probs``).
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


class BernoulliFeatures(NamedTuple):
    """Prepared binary data.

    Attributes:
      stats: ``[..., 1 + D]`` features ``[1, x]``.
      x: ``[..., D]`` the data as floats.
    """

    stats: Array
    x: Array


class BernoulliMixtureParams(NamedTuple):
    """Parameters of a Bernoulli mixture.

    Attributes:
      weights: ``[K]`` mixing weights.
      probs: ``[K, D]`` probability that feature ``d`` is 1 in component ``k``.
    """

    weights: Array
    probs: Array

    __repr__ = params_repr


class BetaPrior(NamedTuple):
    """Beta(a, b) prior of every Bernoulli probability (the conjugate prior).

    Log density ``(a − 1) log p + (b − 1) log(1 − p)`` (up to a constant); the MAP
    M-step is ``p_kd = (Σ_n r_nk x_nd + a − 1) / (Σ_n r_nk + a + b − 2)``.

    Attributes:
      a: ``>= 1`` (pseudo-counts of ones, plus 1): a scalar, ``[D]`` or ``[K, D]``.
      b: ``>= 1`` (pseudo-counts of zeros, plus 1): a scalar, ``[D]`` or ``[K, D]``.
    """

    a: object = 1.0
    b: object = 1.0


def check_prior(prior, k: int, name: str = "prior"):
    """A ``BetaPrior`` (or its fields as a plain tuple) checked, with float64
    NumPy fields; ``None`` passes."""
    if prior is None:
        return None
    prior = validation.prior_fields(prior, BetaPrior, name)
    for field, value in zip(prior._fields, prior):
        if not np.all(value >= 1.0):
            raise ValueError(f"{name}.{field} must be finite and >= 1 (below 1 the Beta density has no MAP)")
        if value.ndim > 2 or (value.ndim == 2 and value.shape[0] not in (1, k)):
            raise ValueError(f"{name}.{field} has shape {value.shape}, which does not broadcast to ({k}, D)")
    return prior


def bernoulli_family(field: str = "probs", prior: BetaPrior | None = None) -> ExpFamily:
    """The Bernoulli ``ExpFamily``, reading and writing ``params.<field> [K, D]``,
    with the MAP M-step of an optional checked ``BetaPrior``."""

    def prepare(x):
        if is_prepared(x, BernoulliFeatures):
            return x
        x = validation.to_float(x)
        return BernoulliFeatures(jnp.concatenate([ones_column(x), x], axis=-1), x)

    def coefficients(params, features):
        dtype = features.stats.dtype
        machine_eps = float(jnp.finfo(dtype).eps)
        # Clipped in the compute dtype: a float64 1 - 1e-15 would round to 1 in float32.
        probs = jnp.clip(getattr(params, field).astype(dtype), machine_eps, 1.0 - machine_eps)
        constant = jnp.sum(jnp.log1p(-probs), axis=1, keepdims=True)
        return jnp.concatenate([constant, jnp.log(probs) - jnp.log1p(-probs)], axis=1)

    def maximize(statistics, features, params):
        dtype = statistics.dtype
        eps = tiny_count(dtype)
        ones, counts = statistics[:, 1:], statistics[:, :1]
        if prior is not None:
            a, b = (jnp.broadcast_to(jnp.asarray(v, dtype) - 1.0, ones.shape) for v in prior)
            ones, counts = ones + a, counts + a + b
        probs = (ones + eps) / (counts + 2.0 * eps)
        machine_eps = float(jnp.finfo(dtype).eps)
        probs = jnp.clip(probs, machine_eps, 1.0 - machine_eps)
        return params._replace(**{field: probs.astype(getattr(params, field).dtype)})

    def log_prior(params):
        probs = getattr(params, field)
        a, b = (jnp.broadcast_to(jnp.asarray(v, probs.dtype) - 1.0, probs.shape) for v in prior)
        return jnp.sum(jnp.where(a > 0, a * jnp.log(probs), 0.0) + jnp.where(b > 0, b * jnp.log1p(-probs), 0.0))

    return ExpFamily(
        prepare=prepare, coefficients=coefficients, maximize=maximize, log_prior=None if prior is None else log_prior
    )


def check_binary(x, name: str) -> None:
    """``ValueError`` unless every entry of ``x`` is 0 or 1."""
    if not bool(jnp.all((x == 0) | (x == 1))):
        raise ValueError(f"{name} must be binary (every entry 0 or 1) for a Bernoulli model")


def component(field: str = "probs", prior: BetaPrior | None = None) -> Component:
    """The Bernoulli ``Component`` on ``params.<field> [K, D]``, with an optional
    checked ``BetaPrior``."""

    def draw(key, params, labels):
        return jax.random.bernoulli(key, getattr(params, field)[labels])

    def n_parameters(params) -> int:
        k, d = jnp.shape(getattr(params, field))
        return k * d

    return Component(
        family=bernoulli_family(field, prior),
        features_type=BernoulliFeatures,
        **matrix_field(field, unit=True),
        check_values=check_binary,
        draw=draw,
        n_parameters=n_parameters,
    )


def bernoulli_mixture_params(weights, probs) -> BernoulliMixtureParams:
    """``BernoulliMixtureParams`` from ``weights [K]`` and ``probs [K, D]`` in (0, 1).

    Examples:
      >>> params = jaxem.models.bernoulli_mixture_params([0.5, 0.5], [[0.1, 0.9], [0.8, 0.2]])
      >>> params.probs.shape
      (2, 2)
    """
    weights, probs = validation.weights_and(weights, probs, "probs")
    if bool(jnp.any((probs <= 0) | (probs >= 1))):
        raise ValueError("probs must lie strictly between 0 and 1")
    return BernoulliMixtureParams(weights, probs)
