"""The multivariate Student-t family: a Gaussian scale mixture, fitted by EM over the scales.

Component ``k`` is ``t_ν(μ_k, Σ_k)``, the Gaussian ``N(μ_k, Σ_k / u)`` with a latent
scale ``u ~ Gamma(ν_k/2, rate ν_k/2)``. As a function of ``u`` the complete-data
density ``N(x; μ, Σ/u) Gamma(u)`` is a Gamma density with natural parameters
``η = (a − 1, −b)``, ``a = (ν + D)/2``, ``b = (ν + δ)/2`` (``δ`` the Mahalanobis
distance of ``x`` to ``μ``), so integrating ``u`` out leaves its log-partition

    A(η) = lgamma(a) − a log b,
    log p(x, z=k) = log π_k − (D/2) log 2π + log|U_k| + (ν/2) log(ν/2) − lgamma(ν/2) + A(η_nk).

The E-step is then two gradients of log-partitions: the responsibilities are the
gradient of ``logsumexp`` over the components (``jaxem.e_step``), and the expected
scales are the gradient of ``A``: ``∂A/∂η₁ = E[log u] = ψ(a) − log b`` and
``∂A/∂η₂ = E[u] = a / b`` (``scale_expectations``). The M-step is closed form
(the complete-data log-likelihood separates into the weights, the Gaussian part in
``(μ, Σ)`` weighted by ``E[u]``, and the Gamma part in ``ν``): u-weighted means,
the u-weighted scatter about the new locations over the expected counts (then a
Cholesky factor), and each ``ν_k`` the root of

    log(ν/2) − ψ(ν/2) + 1 + Σ_n r_nk (E[log u_nk] − E[u_nk]) / Σ_n r_nk = 0

by bisection on ``log ν`` in ``[DOF_MIN, DOF_MAX]`` (the left side falls from +∞, so
the root is unique; at a bound the constrained maximum is that bound). Every step
maximizes Q, so the log-likelihood never decreases.

Numerics: ``log x − ψ(x)`` and ``lgamma(x + h) − lgamma(x)`` cancel badly in float32
for large ``x`` (``ν`` in the hundreds); both are written with their asymptotic
series there. The Mahalanobis distance is the squared norm of ``Uᵀ(x − μ)`` with
``U`` the precision's Cholesky factor (``P = U Uᵀ``, scikit-learn's
``precisions_cholesky_``), never an inverse.

Shapes: ``N`` rows, ``K`` components, ``D`` features.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import validation
from jaxem._src.base import Array
from jaxem._src.display import params_repr
from jaxem._src.expfam import mixture_weights, tiny_count
from jaxem._src.families import gaussian
from jaxem._src.families.covariance import Covariance, covariance_of, covariances_from_factor

DOF_MIN = 0.1
DOF_MAX = 1000.0
DOF_START = 10.0  # the degrees of freedom of every component at init, when learned
BISECTION_STEPS = 60  # the bracket [log 0.1, log 1000] shrinks to ~1e-17 of its width
_ASYMPTOTIC_FROM = 8.0


class StudentTMixtureParams(NamedTuple):
    """Parameters of a mixture of multivariate Student-t densities (original data units).

    Attributes:
      weights: ``[K]`` mixing weights.
      locations: ``[K, D]`` locations ``μ_k`` (the means where ``ν > 1``).
      precisions_cholesky: factors ``U`` of the inverse scale matrices,
        ``Σ_k⁻¹ = U_k U_kᵀ``: ``[K, D, D]`` (full) or ``[K, D]`` (diag).
      dofs: ``[K]`` degrees of freedom ``ν_k > 0``.
    """

    weights: Array
    locations: Array
    precisions_cholesky: Array
    dofs: Array

    __repr__ = params_repr


# ----------------------------------------------------------------------------------
# Special functions without cancellation.


def _log_minus_digamma(x: Array) -> Array:
    """``log x − ψ(x)`` for ``x > 0`` (positive, ~``1/(2x)`` for large ``x``)."""
    big = jnp.maximum(x, _ASYMPTOTIC_FROM)
    inv2 = 1.0 / (big * big)
    series = 0.5 / big + inv2 * (1.0 / 12.0 - inv2 * (1.0 / 120.0 - inv2 * (1.0 / 252.0 - inv2 * (1.0 / 240.0 - inv2 / 132.0))))
    small = jnp.minimum(x, _ASYMPTOTIC_FROM)
    return jnp.where(x >= _ASYMPTOTIC_FROM, series, jnp.log(small) - jax.scipy.special.digamma(small))


def _stirling_correction(x: Array) -> Array:
    inv2 = 1.0 / (x * x)
    return (1.0 / x) * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 / 1680.0)))


def lgamma_difference(x: Array, h: float) -> Array:
    """``lgamma(x + h) − lgamma(x)`` for ``x > 0``, ``h >= 0``, accurate for large ``x``."""
    big = jnp.maximum(x, _ASYMPTOTIC_FROM)
    series = (
        (big - 0.5) * jnp.log1p(h / big)
        + h * jnp.log(big + h)
        - h
        + _stirling_correction(big + h)
        - _stirling_correction(big)
    )
    small = jnp.minimum(x, _ASYMPTOTIC_FROM)
    direct = jax.scipy.special.gammaln(small + h) - jax.scipy.special.gammaln(small)
    return jnp.where(x >= _ASYMPTOTIC_FROM, series, direct)


def gamma_log_partition(shape_eta: Array, rate_eta: Array) -> Array:
    """``A(η) = lgamma(a) − a log b`` of the Gamma density in natural parameters
    ``η = (a − 1, −b)`` (any shape): its gradient is ``(E[log u], E[u])``."""
    a, b = shape_eta + 1.0, -rate_eta
    return jax.scipy.special.gammaln(a) - a * jnp.log(b)


# ----------------------------------------------------------------------------------
# Scale matrices: the two covariance types, whitening and log-determinants.


class ScaleType(NamedTuple):
    """What depends on the scale's covariance type.

    Attributes:
      covariance: the Gaussian family's ``Covariance`` (shapes, factor from scatter).
      whiten: ``(factor, centred [N, K, D]) -> [N, K, D]``, ``Uᵀ(x − μ)``.
      log_det: ``factor -> [K]``, ``log|U_k|`` (``−½ log|Σ_k|``).
      unwhiten: ``(factor [n, ...], noise [n, D]) -> [n, D]``, ``U⁻ᵀ noise`` (``Σ^½``-distributed).
      factor_from_scatter: ``(weighted [N, K, D], centred [N, K, D], counts [K],
        reg_covar) -> factor`` of ``Σ_n weighted centredᵀ / counts + reg_covar I``.
    """

    covariance: Covariance
    whiten: Callable
    log_det: Callable
    unwhiten: Callable
    factor_from_scatter: Callable


def _full_factor(weighted, centred, counts, reg_covar):
    scatter = jnp.einsum("nki,nkj->kij", weighted, centred) / counts[:, None, None]
    return covariance_of("full").factor_from_scatter(scatter, counts, reg_covar)


def _diag_factor(weighted, centred, counts, reg_covar):
    scatter = jnp.einsum("nkd,nkd->kd", weighted, centred) / counts[:, None]
    return 1.0 / jnp.sqrt(jnp.maximum(scatter, 0.0) + reg_covar)


def _full_unwhiten(factor, noise):
    solve = jax.vmap(lambda u, e: jax.scipy.linalg.solve_triangular(u.T, e, lower=True))
    return solve(factor, noise)


FULL = ScaleType(
    covariance=covariance_of("full"),
    whiten=lambda u, centred: jnp.einsum("kji,nkj->nki", u, centred),
    log_det=lambda u: jnp.sum(jnp.log(jnp.abs(jnp.diagonal(u, axis1=1, axis2=2))), axis=1),
    unwhiten=_full_unwhiten,
    factor_from_scatter=_full_factor,
)
DIAG = ScaleType(
    covariance=covariance_of("diag"),
    whiten=lambda u, centred: u[None, :, :] * centred,
    log_det=lambda u: jnp.sum(jnp.log(jnp.abs(u)), axis=1),
    unwhiten=lambda u, noise: noise / u,
    factor_from_scatter=_diag_factor,
)
SCALE_TYPES = {"full": FULL, "diag": DIAG}


def scale_type_of(covariance_type: str) -> ScaleType:
    """The ``ScaleType`` named ``covariance_type`` (``ValueError`` for another name)."""
    if not isinstance(covariance_type, str) or covariance_type not in SCALE_TYPES:
        raise ValueError(f"covariance_type must be one of {tuple(SCALE_TYPES)}, got {covariance_type!r}")
    return SCALE_TYPES[covariance_type]


# ----------------------------------------------------------------------------------
# Log-potentials, the scale expectations and the M-step.


def mahalanobis(params: StudentTMixtureParams, x: Array, scale: ScaleType) -> Array:
    """``[N, K]`` squared Mahalanobis distances ``δ_nk = |U_kᵀ(x_n − μ_k)|²``."""
    dtype = x.dtype
    centred = x[:, None, :] - params.locations.astype(dtype)[None, :, :]
    whitened = scale.whiten(params.precisions_cholesky.astype(dtype), centred)
    return jnp.sum(whitened * whitened, axis=-1)


def gamma_natural(params: StudentTMixtureParams, x: Array, scale: ScaleType):
    """``(η₁, η₂)`` ``[N, K]``: the natural parameters of each row's posterior Gamma
    of ``u`` given component ``k`` (``a − 1`` and ``−b``)."""
    d = x.shape[1]
    dofs = params.dofs.astype(x.dtype)[None, :]
    delta = mahalanobis(params, x, scale)
    return jnp.broadcast_to(0.5 * (dofs + d) - 1.0, delta.shape), -0.5 * (dofs + delta)


def log_potentials(params: StudentTMixtureParams, x: Array, scale: ScaleType) -> Array:
    """``[N, K]`` ``log π_k + log t_ν(x_n; μ_k, Σ_k)``.

    The value of ``log π_k + ... + A(η_nk)`` (module docstring), evaluated as
    ``lgamma((ν+D)/2) − lgamma(ν/2) − (D/2) log(νπ) + log|U| − ((ν+D)/2) log1p(δ/ν)``,
    which keeps float32 accurate for large ``ν``.
    """
    dtype = x.dtype
    d = x.shape[1]
    dofs = params.dofs.astype(dtype)
    delta = mahalanobis(params, x, scale)
    per_component = (
        lgamma_difference(0.5 * dofs, 0.5 * d)
        - 0.5 * d * jnp.log(dofs * math.pi)
        + scale.log_det(params.precisions_cholesky.astype(dtype))
    )
    shape = 0.5 * (dofs + d)
    log_weights = jnp.log(params.weights.astype(dtype))
    return log_weights[None, :] + per_component[None, :] - shape[None, :] * jnp.log1p(delta / dofs[None, :])


def scale_expectations(posterior: Array, params: StudentTMixtureParams, x: Array, scale: ScaleType):
    """``(r E[log u], r E[u])`` ``[N, K]``: the gradient of ``Σ r_nk A(η_nk)`` with
    respect to ``η`` (the responsibilities ``r`` ``[N, K]`` weight each row)."""
    shape_eta, rate_eta = gamma_natural(params, x, scale)

    def weighted_partition(etas):
        return jnp.sum(posterior * gamma_log_partition(*etas))

    return jax.grad(weighted_partition)((shape_eta, rate_eta))


def solve_dofs(mean_gap: Array) -> Array:
    """``[K]`` roots ``ν`` of ``log(ν/2) − ψ(ν/2) + 1 + mean_gap = 0``, by bisection
    on ``log ν`` in ``[DOF_MIN, DOF_MAX]`` (``mean_gap = Σ r (E[log u] − E[u]) / Σ r <= −1``).

    The left side decreases in ``ν``; where it has no root in the bracket, the
    bracket's end on the side of the root is returned (the constrained maximizer of Q).
    """
    dtype = mean_gap.dtype
    lo = jnp.full(mean_gap.shape, math.log(DOF_MIN), dtype)
    hi = jnp.full(mean_gap.shape, math.log(DOF_MAX), dtype)

    def step(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        positive = _log_minus_digamma(0.5 * jnp.exp(mid)) + 1.0 + mean_gap > 0
        return jnp.where(positive, mid, lo), jnp.where(positive, hi, mid)

    lo, hi = jax.lax.fori_loop(0, BISECTION_STEPS, step, (lo, hi))
    return jnp.exp(0.5 * (lo + hi))


def maximize_location_scale(x: Array, posterior: Array, scale_weights: Array, scale: ScaleType, reg_covar: float):
    """``(locations [K, D], factor)``: ``μ_k = Σ w x / Σ w`` and the factor of
    ``Σ_k = Σ_n w_nk (x_n − μ_k)(x_n − μ_k)ᵀ / Σ_n r_nk + reg_covar I``
    (``w = r E[u]``; ``w = r`` gives the Gaussian M-step)."""
    dtype = x.dtype
    tiny = tiny_count(dtype)
    counts = jnp.sum(posterior, axis=0) + tiny
    locations = (scale_weights.T @ x) / (jnp.sum(scale_weights, axis=0) + tiny)[:, None]
    centred = x[:, None, :] - locations[None, :, :]
    weighted = scale_weights[:, :, None] * centred
    return locations, scale.factor_from_scatter(weighted, centred, counts, reg_covar)


def m_step(x: Array, posterior: Array, params: StudentTMixtureParams, scale: ScaleType, reg_covar: float, learn_dofs: bool):
    """The closed-form M-step from the responsibilities ``posterior [N, K]`` (which
    include any sample weights) and the params of the E-step."""
    dtype = x.dtype
    log_u, u = scale_expectations(posterior, params, x, scale)
    counts = jnp.sum(posterior, axis=0)
    locations, factor = maximize_location_scale(x, posterior, u, scale, reg_covar)
    dofs = params.dofs.astype(dtype)
    if learn_dofs:
        gap = (jnp.sum(log_u, axis=0) - jnp.sum(u, axis=0)) / (counts + tiny_count(dtype))
        dofs = solve_dofs(gap)
    dt = params.locations.dtype
    return StudentTMixtureParams(
        weights=mixture_weights(counts, params.weights).astype(params.weights.dtype),
        locations=locations.astype(dt),
        precisions_cholesky=factor.astype(dt),
        dofs=dofs.astype(params.dofs.dtype),
    )


# ----------------------------------------------------------------------------------
# Draws, checks and the user's params.


def draw(key: Array, params: StudentTMixtureParams, labels: Array, scale: ScaleType) -> Array:
    """``[n, D]`` draws, one from the component of each of ``labels [n]``."""
    u_key, e_key = jax.random.split(key)
    dtype = params.locations.dtype
    half = 0.5 * params.dofs[labels]
    u = jax.random.gamma(u_key, half, dtype=dtype) / half
    noise = jax.random.normal(e_key, (labels.shape[0], params.locations.shape[1]), dtype)
    spread = scale.unwhiten(params.precisions_cholesky[labels], noise)
    return params.locations[labels] + spread / jnp.sqrt(u)[:, None]


def check_params(params, k: int, d, scale: ScaleType) -> None:
    """Type, shapes and (when concrete) values of ``StudentTMixtureParams``."""
    if not isinstance(params, StudentTMixtureParams):
        raise TypeError(f"params must be StudentTMixtureParams, got {type(params).__name__}")
    for name, leaf in zip(params._fields, params):
        if not isinstance(leaf, (jax.Array, np.ndarray)) or not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(f"params.{name} must be a floating-point array, got {type(leaf).__name__}")
    shape = tuple(jnp.shape(params.locations))
    if len(shape) != 2 or shape[0] != k or (d is not None and shape[1] != d):
        raise ValueError(f"params.locations must have shape ({k}, {'D' if d is None else d}) for n_components={k}, got {shape}")
    expected = scale.covariance.factor_shape(k, shape[1])
    if tuple(jnp.shape(params.precisions_cholesky)) != expected:
        raise ValueError(
            f"params.precisions_cholesky has shape {jnp.shape(params.precisions_cholesky)}, "
            f"expected {expected} for covariance_type={scale.covariance.name!r}"
        )
    for name in ("weights", "dofs"):
        if tuple(jnp.shape(getattr(params, name))) != (k,):
            raise ValueError(f"params.{name} must have shape ({k},), got {jnp.shape(getattr(params, name))}")
    validation.check_param_values(params.weights, "weights", simplex=True)
    validation.check_param_values(params.locations, "locations")
    validation.check_param_values(params.precisions_cholesky, "precisions_cholesky")
    validation.check_param_values(params.dofs, "dofs", positive=True)
    if validation.is_concrete(params.precisions_cholesky) and not np.all(
        scale.covariance.factor_diagonal(np.asarray(params.precisions_cholesky)) != 0
    ):
        raise ValueError("params.precisions_cholesky must be invertible (non-zero diagonal)")


def student_t_mixture_params(weights, locations, scales, dofs, covariance_type: str = "full") -> StudentTMixtureParams:
    """``StudentTMixtureParams`` from ``weights [K]``, ``locations [K, D]``, positive
    definite scale matrices ``scales`` (``[K, D, D]`` full, ``[K, D]`` diag variances)
    and positive ``dofs [K]``.

    Examples:
      >>> params = jaxem.models.student_t_mixture_params(
      ...     [0.3, 0.7], [[0.0, 0.0], [5.0, 5.0]], [np.eye(2), 2.0 * np.eye(2)], [3.0, 10.0])
      >>> params.precisions_cholesky.shape, params.dofs.tolist()
      ((2, 2, 2), [3.0, 10.0])
    """
    scale = scale_type_of(covariance_type)
    locations = validation.as_float_array(locations, "locations", ndim=2)
    k, d = locations.shape
    weights = validation.check_probabilities(weights, "weights", (k,))
    dofs = validation.as_float_array(dofs, "dofs", ndim=1)
    if dofs.shape != (k,):
        raise ValueError(f"dofs must have shape ({k},) to match locations {locations.shape}, got {dofs.shape}")
    if bool(jnp.any(dofs <= 0)):
        raise ValueError("dofs must be positive")
    dtype = jnp.result_type(weights.dtype, locations.dtype, dofs.dtype, validation.to_float(jnp.asarray(scales)).dtype)
    factor = gaussian.user_factor(scales, scale.covariance, k, d, dtype)
    return StudentTMixtureParams(weights.astype(dtype), locations.astype(dtype), factor.astype(dtype), dofs.astype(dtype))


def student_t_scales(params: StudentTMixtureParams) -> Array:
    """``[K, D, D]`` scale matrices ``Σ_k`` of ``params`` (full or diag).

    Examples:
      >>> params = jaxem.models.student_t_mixture_params([1.0], [[0.0, 0.0]], [[1.0, 4.0]], [5.0], "diag")
      >>> np.asarray(jaxem.models.student_t_scales(params)).round(6).tolist()
      [[[1.0, 0.0], [0.0, 4.0]]]
    """
    k, d = jnp.shape(params.locations)
    covariance = FULL.covariance if jnp.ndim(params.precisions_cholesky) == 3 else DIAG.covariance
    return covariances_from_factor(params.precisions_cholesky, k, d, covariance)
