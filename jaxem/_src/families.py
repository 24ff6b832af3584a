"""Poisson, categorical (multinomial) and Bernoulli components as ``ExpFamily``.

Each family reads and writes one field of the params (``field``), so the same
family serves a mixture (``rates``, ``probs``) and an HMM's emissions
(``emission_probs``). Data may have any leading axes (``[N, D]``, ``[B, T, D]``);
features are ``stats [..., F]`` with column 0 all ones. A per-row base measure
``h(x)`` (the ``log x!`` terms) is a stats column whose coefficient is 1 for every
component, so log-potentials stay one matrix product.

Every maximizer adds the ``tiny_count`` pseudo-count, so no rate reaches 0 and no
probability reaches 0 or 1: a component that loses all its points stays finite.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxem._src.base import Array
from jaxem._src.expfam import ExpFamily, tiny_count
from jaxem._src.validation import to_float


class CountFeatures(NamedTuple):
    """Prepared data of a discrete family.

    Attributes:
      stats: ``[..., F]`` sufficient-statistic features (column 0 all ones).
      x: ``[..., D]`` the data as floats.
    """

    stats: Array
    x: Array


def _ones(x: Array) -> Array:
    return jnp.ones(x.shape[:-1] + (1,), x.dtype)


def poisson_family(field: str = "rates") -> ExpFamily:
    """Independent Poisson counts per feature: ``x [..., D]``, ``rates [K, D]``.

    Features ``[1, -Σ_d log x_d!, x]``; coefficients ``[-Σ_d λ_kd, 1, log λ_k]``.
    M-step: ``λ_k = (Σ_n r_nk x_n + ε) / (Σ_n r_nk + ε)``.
    """

    def prepare(x):
        if isinstance(x, CountFeatures):
            return x
        x = to_float(x)
        log_base = -jnp.sum(jax.scipy.special.gammaln(x + 1.0), axis=-1, keepdims=True)
        return CountFeatures(jnp.concatenate([_ones(x), log_base, x], axis=-1), x)

    def coefficients(params, features):
        rates = getattr(params, field).astype(features.stats.dtype)
        k = rates.shape[0]
        constant = -jnp.sum(rates, axis=1, keepdims=True)
        return jnp.concatenate([constant, jnp.ones((k, 1), rates.dtype), jnp.log(rates)], axis=1)

    def maximize(stats, features, params):
        eps = tiny_count(stats.dtype)
        rates = (stats[:, 2:] + eps) / (stats[:, :1] + eps)
        return params._replace(**{field: rates.astype(getattr(params, field).dtype)})

    return ExpFamily(prepare=prepare, coefficients=coefficients, maximize=maximize)


def categorical_family(field: str = "probs") -> ExpFamily:
    """Multinomial counts over ``S`` categories: ``x [..., S]``, ``probs [K, S]``.

    A one-hot row is a single categorical draw. Features
    ``[1, log multinomial coefficient, x]``; coefficients ``[0, 1, log p_k]``.
    M-step: ``p_k ∝ Σ_n r_nk x_n + ε``.
    """

    def prepare(x):
        if isinstance(x, CountFeatures):
            return x
        x = to_float(x)
        gammaln = jax.scipy.special.gammaln
        log_base = gammaln(jnp.sum(x, axis=-1, keepdims=True) + 1.0) - jnp.sum(
            gammaln(x + 1.0), axis=-1, keepdims=True
        )
        return CountFeatures(jnp.concatenate([_ones(x), log_base, x], axis=-1), x)

    def coefficients(params, features):
        probs = getattr(params, field).astype(features.stats.dtype)
        k = probs.shape[0]
        return jnp.concatenate([jnp.zeros((k, 1), probs.dtype), jnp.ones((k, 1), probs.dtype), jnp.log(probs)], axis=1)

    def maximize(stats, features, params):
        totals = stats[:, 2:] + tiny_count(stats.dtype)
        probs = totals / jnp.sum(totals, axis=1, keepdims=True)
        return params._replace(**{field: probs.astype(getattr(params, field).dtype)})

    return ExpFamily(prepare=prepare, coefficients=coefficients, maximize=maximize)


def bernoulli_family(field: str = "probs") -> ExpFamily:
    """Independent binary features: ``x [..., D]`` in {0, 1}, ``probs [K, D]``.

    Features ``[1, x]``; coefficients ``[Σ_d log(1 - p_kd), logit p_k]``.
    M-step: ``p_k = (Σ_n r_nk x_n + ε) / (Σ_n r_nk + 2ε)``, kept in
    ``[eps, 1 - eps]`` of the dtype.
    """

    def prepare(x):
        if isinstance(x, CountFeatures):
            return x
        x = to_float(x)
        return CountFeatures(jnp.concatenate([_ones(x), x], axis=-1), x)

    def coefficients(params, features):
        dtype = features.stats.dtype
        machine_eps = float(jnp.finfo(dtype).eps)
        # Clipped in the compute dtype: a float64 1 - 1e-15 would round to 1 in float32.
        probs = jnp.clip(getattr(params, field).astype(dtype), machine_eps, 1.0 - machine_eps)
        constant = jnp.sum(jnp.log1p(-probs), axis=1, keepdims=True)
        return jnp.concatenate([constant, jnp.log(probs) - jnp.log1p(-probs)], axis=1)

    def maximize(stats, features, params):
        dtype = stats.dtype
        eps = tiny_count(dtype)
        probs = (stats[:, 1:] + eps) / (stats[:, :1] + 2.0 * eps)
        machine_eps = float(jnp.finfo(dtype).eps)
        probs = jnp.clip(probs, machine_eps, 1.0 - machine_eps)
        return params._replace(**{field: probs.astype(getattr(params, field).dtype)})

    return ExpFamily(prepare=prepare, coefficients=coefficients, maximize=maximize)
