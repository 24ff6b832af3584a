"""Linear-Gaussian factor models: factor analysis, PPCA and their mixtures.

``x = μ_k + W_k z + ε`` with ``z ~ N(0, I_L)``, ``ε ~ N(0, Ψ_k)`` (``Ψ_k`` diagonal for
factor analysis, ``σ_k² I`` for PPCA) and, for a mixture, a component ``k ~ π``.
Everything here works on ``K`` components (``K = 1`` for a single model).

``log_joint`` writes ``log p(x, z | k)`` as Gaussian potentials in ``z`` (the
observed coordinates only, so missing values, NaN, are marginalized exactly):

    h = Wᵀ diag(m/ψ)(x − μ),  J = I + Wᵀ diag(m/ψ) W,
    c = −½ Σ_d m_d (x_d − μ_d)²/ψ_d − ½ Σ_d m_d log(2π ψ_d) − (L/2) log 2π,

with ``m`` the item's observed mask; the E-step is the gradient of their
log-partition (``gaussian_latent.py``), which gives ``w E[z]``, ``w E[zzᵀ]`` and the
weight ``w`` (the responsibility, times any sample weight). The M-step is closed
form: per component and coordinate, the regression of ``x_d`` on ``[z, 1]``

    [W_d, μ_d] = (Σ_n m_nd x_nd E[z̃_n]ᵀ)(Σ_n m_nd E[z̃_n z̃_nᵀ])⁻¹  (z̃ = [z; 1]),
    ψ_d = (Σ_n m_nd x_nd² − [W_d, μ_d] · Σ_n m_nd x_nd E[z̃_n]) / Σ_n m_nd,

solved by a Cholesky factor of the ``(L+1) × (L+1)`` matrix; for PPCA the ψ_d
numerators and counts are pooled over ``d``. ψ is floored at ``min_noise_variance``
(the constrained maximizer, so EM stays monotone).

Numerics: the data are centred and scaled once (``prepare``; per column for
factor analysis, one scale for PPCA so that σ²I stays isotropic), the model runs
in those coordinates and parameters are converted at the boundary, so the
``ψ`` numerator's cancellation is relative to the unit variance, not to ``x²``.
Cost per iteration: O(N K D L²) (the ``J`` and the statistics), never O(D²).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import validation
from jaxem._src.base import Array
from jaxem._src.display import params_repr
from jaxem._src.gaussian_latent import GaussianPotentials, symmetric


class FactorAnalysisParams(NamedTuple):
    """Parameters of factor analysis or PPCA.

    Attributes:
      mean: ``[D]``.
      loadings: ``[D, L]`` (W; ``x = mean + W z + noise``).
      noise_variance: ``[D]`` for factor analysis, ``[]`` (σ²) for PPCA.
    """

    mean: Array
    loadings: Array
    noise_variance: Array

    __repr__ = params_repr


class MixtureOfFactorAnalyzersParams(NamedTuple):
    """Parameters of a mixture of factor analyzers (or of PPCA).

    Attributes:
      weights: ``[K]`` mixing proportions.
      means: ``[K, D]``.
      loadings: ``[K, D, L]``.
      noise_variances: ``[K, D]`` (factor analyzers) or ``[K]`` (PPCA).
    """

    weights: Array
    means: Array
    loadings: Array
    noise_variances: Array

    __repr__ = params_repr


class FactorData(NamedTuple):
    """Prepared data: standardized values and the observed mask.

    Attributes:
      x: ``[N, D]`` ``(x − center) / scale``, 0 where missing.
      mask: ``[N, D]`` 1 where observed, 0 where missing (NaN).
      center: ``[D]`` column means of the observed values.
      scale: ``[D]`` column scales (one value repeated for PPCA).
    """

    x: Array
    mask: Array
    center: Array
    scale: Array


class Standardized(NamedTuple):
    """``K``-component parameters in the coordinates of the prepared data."""

    log_weights: Array  # [K]
    means: Array  # [K, D]
    loadings: Array  # [K, D, L]
    noise: Array  # [K, D]


class FactorStatistics(NamedTuple):
    """Expected statistics for the M-step (sums over items)."""

    weight: Array  # [K] Σ_n w_nk
    count: Array  # [K, D] Σ_n w_nk m_nd
    xx: Array  # [K, D] Σ_n w_nk m_nd x_nd²
    xz: Array  # [K, D, L + 1] Σ_n m_nd x_nd w_nk E[z̃]
    zz: Array  # [K, D, L + 1, L + 1] Σ_n m_nd w_nk E[z̃ z̃ᵀ]


def check_data(x, n_factors: int, name: str = "x") -> Array:
    """``x`` as a floating ``[N, D]`` array: NaN (missing) allowed, not ±inf, every
    column observed at least once, ``n_factors <= D``."""
    if isinstance(x, FactorData):
        return x.x
    x = validation.as_float_array(x, name, ndim=2, allow_nan=True)
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {x.shape}")
    if n_factors > x.shape[1]:
        raise ValueError(f"n_factors={n_factors} must be <= the number of features of {name} ({x.shape[1]})")
    if validation.is_concrete(x):
        values = np.asarray(x)
        if np.any(np.isinf(values)):
            raise ValueError(f"{name} contains infinite values (NaN marks a missing value)")
        if np.any(np.all(np.isnan(values), axis=0)):
            raise ValueError(f"{name} has a column with no observed value")
    return x


def prepare(x, *, isotropic: bool) -> FactorData:
    """Standardizes ``x [N, D]`` once (jit-safe; idempotent on ``FactorData``)."""
    if isinstance(x, FactorData):
        return x
    x = validation.to_float(x)
    observed = ~jnp.isnan(x)
    mask = observed.astype(x.dtype)
    zero = jnp.zeros_like(x)
    count = jnp.maximum(jnp.sum(mask, axis=0), 1.0)
    center = jnp.sum(jnp.where(observed, x, zero), axis=0) / count
    deviation = jnp.where(observed, x - center[None], zero)
    variance = jnp.sum(deviation * deviation, axis=0) / count
    if isotropic:
        variance = jnp.broadcast_to(jnp.mean(variance), variance.shape)
    scale = jnp.where(variance > 0, jnp.sqrt(variance), jnp.ones_like(variance))
    return FactorData(deviation / scale[None], mask, center, scale)


def standardized(weights, means, loadings, noise, data: FactorData) -> Standardized:
    """Data-unit ``[K, ...]`` parameters in prepared coordinates."""
    scale = data.scale[None]
    noise = jnp.broadcast_to(noise if noise.ndim == 2 else noise[:, None], means.shape)
    return Standardized(
        jnp.log(weights),
        (means - data.center[None]) / scale,
        loadings / scale[..., None],
        noise / (scale * scale),
    )


def in_data_units(params: Standardized, data: FactorData):
    """``(weights, means, loadings, noise [K, D])`` in data units."""
    scale = data.scale[None]
    return (
        jnp.exp(params.log_weights),
        params.means * scale + data.center[None],
        params.loadings * scale[..., None],
        params.noise * (scale * scale),
    )


def potentials(params: Standardized, data: FactorData) -> GaussianPotentials:
    """``log p(x, z, k)`` as Gaussian potentials ``h [N, K, L], J [N, K, L, L], c [N, K]``
    (``c`` includes ``log π_k`` and the standardization's Jacobian)."""
    x, mask = data.x, data.mask
    n_factors = params.loadings.shape[-1]
    dtype = x.dtype
    precision = 1.0 / params.noise  # [K, D]
    residual = mask[:, None, :] * (x[:, None, :] - params.means[None])  # [N, K, D]
    weighted = residual * precision[None]
    h = jnp.einsum("nkd,kdl->nkl", weighted, params.loadings)
    scaled_loadings = params.loadings * precision[..., None]  # [K, D, L]
    gram = jnp.einsum("nd,kdl,kdm->nklm", mask, scaled_loadings, params.loadings)
    j = gram + jnp.eye(n_factors, dtype=dtype)[None, None]
    log_norm = jnp.log(2 * math.pi * params.noise)  # [K, D]
    c = (
        -0.5 * jnp.sum(weighted * residual, axis=-1)
        - 0.5 * mask @ log_norm.T
        - 0.5 * n_factors * math.log(2 * math.pi)
        - (mask @ jnp.log(data.scale))[:, None]
        + params.log_weights[None]
    )
    return GaussianPotentials(h, j, c)


def statistics(data: FactorData, gradient: GaussianPotentials) -> FactorStatistics:
    """The M-step's sums from the gradient (``[N, K, ...]``) of the log-partition."""
    x, mask = data.x, data.mask
    weight = gradient.c  # [N, K]
    first = gradient.h  # w E[z]
    second = -2.0 * symmetric(gradient.J)  # w E[zzᵀ]
    augmented_first = jnp.concatenate([first, weight[..., None]], axis=-1)  # [N, K, L+1]
    top = jnp.concatenate([second, first[..., None]], axis=-1)
    bottom = augmented_first[..., None, :]
    augmented_second = jnp.concatenate([top, bottom], axis=-2)  # [N, K, L+1, L+1]
    mx = mask * x
    return FactorStatistics(
        weight=jnp.sum(weight, axis=0),
        count=jnp.einsum("nk,nd->kd", weight, mask),
        xx=jnp.einsum("nk,nd->kd", weight, mx * x),
        xz=jnp.einsum("nd,nkl->kdl", mx, augmented_first),
        zz=jnp.einsum("nd,nklm->kdlm", mask, augmented_second),
    )


def maximize(stats: FactorStatistics, data: FactorData, *, isotropic: bool, min_noise: float) -> Standardized:
    """The closed-form M-step in prepared coordinates."""
    dtype = stats.xx.dtype
    size = stats.zz.shape[-1]
    eps = jnp.finfo(dtype).eps
    # A relative ridge of a few ulps keeps the factorization defined for a
    # coordinate a component never observes (its count is then zero).
    ridge = 16 * eps * (jnp.trace(stats.zz, axis1=-2, axis2=-1)[..., None, None] / size + 1.0)
    zz = symmetric(stats.zz) + ridge * jnp.eye(size, dtype=dtype)[None, None]
    factor = jnp.linalg.cholesky(zz)
    coefficients = jax.scipy.linalg.cho_solve((factor, True), stats.xz[..., None])[..., 0]  # [K, D, L+1]
    numerator = stats.xx - jnp.sum(coefficients * stats.xz, axis=-1)  # [K, D]
    count = stats.count
    if isotropic:
        numerator = jnp.broadcast_to(jnp.sum(numerator, axis=-1, keepdims=True), numerator.shape)
        count = jnp.broadcast_to(jnp.sum(count, axis=-1, keepdims=True), count.shape)
    tiny = jnp.finfo(dtype).tiny
    floor = min_noise / (data.scale * data.scale)[None]
    noise = jnp.maximum(numerator / jnp.maximum(count, tiny), floor)
    total = jnp.sum(stats.weight)
    weights = (stats.weight + 10 * tiny) / (total + 10 * tiny * stats.weight.shape[0])
    return Standardized(jnp.log(weights), coefficients[..., -1], coefficients[..., :-1], noise)


def init(key: Array, data: FactorData, n_components: int, n_factors: int) -> Standardized:
    """Random start in prepared coordinates: means at distinct random rows (the
    column means for one component), small random loadings, noise 1/2."""
    n, d = data.x.shape
    dtype = data.x.dtype
    key_rows, key_loadings = jax.random.split(key)
    if n_components == 1:
        means = jnp.zeros((1, d), dtype)
    else:
        rows = jax.random.choice(key_rows, n, (n_components,), replace=n < n_components)
        means = data.x[rows]
    loadings = jax.random.normal(key_loadings, (n_components, d, n_factors), dtype) * jnp.sqrt(0.5 / n_factors)
    noise = jnp.full((n_components, d), 0.5, dtype)
    log_weights = jnp.full((n_components,), -math.log(n_components), dtype)
    return Standardized(log_weights, means, loadings, noise)


def sample(key: Array, weights, means, loadings, noise, n: int):
    """``(x [n, D], (k [n], z [n, L]))`` drawn from ``K``-component data-unit params."""
    key_k, key_z, key_e = jax.random.split(key, 3)
    dtype = means.dtype
    k = jax.random.categorical(key_k, jnp.log(weights), shape=(n,))
    z = jax.random.normal(key_z, (n, loadings.shape[-1]), dtype)
    noise = jnp.broadcast_to(noise if noise.ndim == 2 else noise[:, None], means.shape)
    eps = jax.random.normal(key_e, (n, means.shape[-1]), dtype) * jnp.sqrt(noise[k])
    x = means[k] + jnp.einsum("ndl,nl->nd", loadings[k], z) + eps
    return x, (k, z)


def n_free_parameters(n_components: int, d: int, n_factors: int, isotropic: bool) -> int:
    """Free parameters: weights, means, loadings up to rotation, noise."""
    per_component = d + d * n_factors - n_factors * (n_factors - 1) // 2 + (1 if isotropic else d)
    return n_components * per_component + n_components - 1


def check_params_values(loadings, noise, means, name_prefix: str = "") -> None:
    """Finite loadings and means, positive noise (concrete values only)."""
    with validation.on_values():
        for value, name in ((means, "mean"), (loadings, "loadings")):
            if validation.is_concrete(value) and not validation.all_finite(value):
                raise ValueError(f"params.{name_prefix}{name} must be finite")
        if validation.is_concrete(noise) and not bool(np.all(np.asarray(noise) > 0)):
            raise ValueError(f"params.{name_prefix}noise_variance must be positive")
