"""Log-probabilities of large counts without cancellation (Loader's saddle-point form).

The exponential-family form of a Poisson log-pmf, ``x log λ - λ - log x!``, adds
terms of size ``x log x`` that cancel to ``-½ log(2π x)``: at ``x ≈ 10⁶`` float32
loses hundreds of nats, at ``x = 2²⁴`` everything (issue 12, item 4). Here

    log p(x; λ) = -bd0(x, λ) - ½ log(2π x) - stirlerr(x)          (x ≥ 1)
    log p(0; λ) = -λ

with ``bd0(x, λ) = x log(x/λ) + λ - x = x (s - log1p(s))``, ``s = (λ - x)/x``
(``log(λ/x)`` for ``|s| ≥ ½``; no cancellation: its error is about ``eps |λ - x|``), and ``stirlerr(x) =
log x! - (x log x - x + ½ log(2π x))`` from its asymptotic series for large ``x``.
(C. Loader, "Fast and accurate computation of binomial probabilities", 2000.)

The fast path is kept for small counts: ``needs_exact`` tells from the data
alone (so a ``lax.cond`` on it stays a branch under ``vmap`` over restarts)
whether the fast path's rounding, about ``eps · x log x``, exceeds ``TOLERANCE``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxem._src.base import Array

TOLERANCE = 1e-4
_SERIES_FROM = 15.0


def stirlerr(x: Array) -> Array:
    """``log x! - (x log x - x + ½ log(2π x))`` for ``x ≥ 1`` (any where x < 1)."""
    safe = jnp.maximum(x, 1.0)
    direct = jax.scipy.special.gammaln(safe + 1.0) - (safe * jnp.log(safe) - safe + 0.5 * jnp.log(2.0 * math.pi * safe))
    inverse = 1.0 / jnp.maximum(safe, _SERIES_FROM)
    inverse2 = inverse * inverse
    series = inverse * (1.0 / 12.0 - inverse2 * (1.0 / 360.0 - inverse2 * (1.0 / 1260.0 - inverse2 / 1680.0)))
    return jnp.where(safe >= _SERIES_FROM, series, direct)


def bd0(x: Array, rate: Array) -> Array:
    """``x log(x/λ) + λ - x`` (≥ 0) for ``x ≥ 1``, ``λ > 0``, without cancellation."""
    safe = jnp.maximum(x, 1.0)
    s = (rate - safe) / safe
    near = jnp.abs(s) < 0.5  # log1p where λ/x is near 1, the plain log of the ratio elsewhere
    log_ratio = jnp.where(near, jnp.log1p(jnp.where(near, s, 0.0)), jnp.log(rate / safe))
    return safe * (s - log_ratio)


def poisson_log_pmf(x: Array, rate: Array) -> Array:
    """``log Poisson(x; λ)`` elementwise (broadcasting), exact for large counts."""
    positive = x >= 1.0
    safe = jnp.maximum(x, 1.0)
    log_pmf = -bd0(safe, rate) - 0.5 * jnp.log(2.0 * math.pi * safe) - stirlerr(safe)
    return jnp.where(positive, log_pmf, -rate)


def needs_exact(x: Array) -> Array:
    """Scalar bool: whether the exponential-family form's rounding (about
    ``eps · x (1 + log x)`` nats for the largest count) exceeds ``TOLERANCE``."""
    eps = float(jnp.finfo(x.dtype).eps)
    largest = jnp.max(x) if x.size else jnp.zeros((), x.dtype)
    return eps * largest * (1.0 + jnp.log1p(largest)) > TOLERANCE


def poisson_log_densities(x: Array, rates: Array) -> Array:
    """``[..., K]`` ``Σ_d log Poisson(x_d; λ_kd)`` of ``x [..., D]``, ``rates [K, D]``."""
    lead = (1,) * (x.ndim - 1)
    return jnp.sum(poisson_log_pmf(x[..., None, :], rates.reshape(lead + rates.shape)), axis=-1)
