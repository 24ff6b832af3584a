"""Covariance types of the Gaussian family as strategy objects.

A covariance type fixes the shape of the precision factor ``U`` (``P = U Uᵀ``;
scikit-learn's ``precisions_cholesky_``), the quadratic features of standardized
rows and everything that depends on them. It is looked up once from its name at
the public boundary (``COVARIANCES["full"]``, or ``covariance_of(name)`` with a
``ValueError`` for an unknown name) and passed on; nothing downstream switches on
the name.

=============  =============  ==========================================
type           factor shape   precision
=============  =============  ==========================================
``full``       ``[K, D, D]``  ``U_k U_kᵀ`` (one per component)
``tied``       ``[D, D]``     ``U Uᵀ`` (shared by all components)
``diag``       ``[K, D]``     ``diag(u_k²)``
``spherical``  ``[K]``        ``u_k² I``
=============  =============  ==========================================

Shapes: ``K`` components, ``D`` features, ``Q`` quadratic features.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src.base import Array


class Covariance(NamedTuple):
    """One covariance type: its name and the functions that depend on it.

    Attributes:
      name: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
      factor_shape: ``(k, d) -> shape`` of ``precisions_cholesky`` (and of a
        user's covariances, scikit-learn's convention).
      n_quadratic: ``d -> Q``, the number of quadratic features.
      quadratic: ``xs [n, D] -> [n, Q]``, quadratic features of standardized rows.
      blocked: whether the features are built in blocks of rows (wide ``Q``).
      pooled_units: ``unit [D] -> [D]``, the per-feature units of the
        standardization (spherical: one common unit, so sphericity is kept).
      spread: ``centred [N, D] -> [D]``, the per-feature spread (spherical: common).
      scale_rows: ``(factor, scale [D]) -> factor`` with its rows multiplied by ``scale``.
      natural: ``(factor, means [K, D]) -> (linear [K, D], quadratic [K, Q],
        whitened [K, D], log_det [K])``, the parts of the natural coefficients.
      maximize: ``(second [K, Q], means [K, D], counts [K], reg [D]) -> factor``,
        the factor maximizing Q from expected moments (standardized coordinates).
      factor_from_scatter: ``(covariances [K, D, D], counts [K], reg_covar) ->
        factor``, from per-component covariance matrices (missing-data M-step).
      precisions: ``factor -> `` precision matrices in the factor's layout
        (scikit-learn's ``precisions_``).
      precision_matrices: ``(factor, k, d) -> [K, D, D]``.
      reduce_covariances: ``[K, D, D] -> `` covariances in the type's own shape.
      factor_from_covariances: ``covariances -> factor`` (type's shape).
      positive_definite: ``covariances -> bool array``, whether they are.
      factor_diagonal: ``factor -> `` its diagonal entries (invertible iff non-zero).
      n_parameters: ``(k, d) -> int``, free covariance parameters.
    """

    name: str
    factor_shape: Callable[[int, int], tuple]
    n_quadratic: Callable[[int], int]
    quadratic: Callable[[Array], Array]
    blocked: bool
    pooled_units: Callable[[Array], Array]
    spread: Callable[[Array], Array]
    scale_rows: Callable[[Array, Array], Array]
    natural: Callable
    maximize: Callable
    factor_from_scatter: Callable
    precisions: Callable[[Array], Array]
    precision_matrices: Callable[[Array, int, int], Array]
    reduce_covariances: Callable[[Array], Array]
    factor_from_covariances: Callable[[Array], Array]
    positive_definite: Callable[[Array], Array]
    factor_diagonal: Callable[[Array], Array]
    n_parameters: Callable[[int, int], int]


def upper(d: int):
    """Row and column indices of the upper triangle of a ``[D, D]`` matrix."""
    return np.triu_indices(d)


def precision_cholesky_from_covariance(covariance: Array, floor: Array | float = 0.0) -> Array:
    """``U`` (upper triangular) with ``U Uᵀ = covariance⁻¹``, for ``[..., D, D]``.

    Where a Cholesky factorization fails (a matrix not numerically positive
    definite), the factor of its diagonal is used instead, each variance floored at
    ``floor`` (``[D]`` or a scalar; the M-step passes its ``reg_covar``) and at the
    dtype's ``tiny``, so the result is finite and no larger than the floor allows.
    """
    lower = jnp.linalg.cholesky(covariance)
    eye = jnp.broadcast_to(jnp.eye(covariance.shape[-1], dtype=covariance.dtype), covariance.shape)
    inverse_lower = jax.scipy.linalg.solve_triangular(lower, eye, lower=True)
    factor = jnp.swapaxes(inverse_lower, -1, -2)
    variances = jnp.diagonal(covariance, axis1=-2, axis2=-1)
    floor = jnp.broadcast_to(jnp.maximum(jnp.asarray(floor, covariance.dtype), jnp.finfo(covariance.dtype).tiny), variances.shape)
    fallback = eye * (1.0 / jnp.sqrt(jnp.maximum(variances, floor)))[..., None, :]
    ok = jnp.all(jnp.isfinite(factor), axis=(-2, -1), keepdims=True)
    return jnp.where(ok, factor, fallback)


def positive_semidefinite(covariance: Array) -> Array:
    """``[..., D, D]`` symmetric matrices with negative eigenvalues raised to 0.

    Rounding in ``E[x xᵀ] - E[x] E[x]ᵀ`` can leave a tiny component's covariance
    indefinite (a negative variance, far beyond what ``reg_covar`` makes up for).
    Matrices whose eigenvalues are all non-negative are returned unchanged
    (bitwise), the others rebuilt from their clamped eigendecomposition.
    """
    values, vectors = jnp.linalg.eigh(covariance)
    rebuilt = jnp.einsum("...ij,...j,...kj->...ik", vectors, jnp.maximum(values, 0.0), vectors)
    indefinite = jnp.any(values < 0, axis=-1)[..., None, None]
    return jnp.where(indefinite, rebuilt, covariance)


# ----------------------------------------------------------------------------------
# Pieces shared by several types.


def _upper_quadratic(xs):
    # Row by row of the upper triangle, (0,0) (0,1) .. (1,1) ..: slices, no gather
    # (a gather of [N, D(D+1)/2] columns was ~3x slower to build on a CPU).
    return jnp.concatenate([xs[:, a : a + 1] * xs[:, a:] for a in range(xs.shape[1])], axis=1)


def _squares(xs):
    return xs * xs


def _squared_norm(xs):
    return jnp.sum(xs * xs, axis=1, keepdims=True)


def _own(values):
    return values


def _common_unit(unit):
    return jnp.full(unit.shape, jnp.max(unit), unit.dtype)


def _feature_spread(centred):
    return jnp.sqrt(jnp.mean(centred * centred, axis=0))


def _common_spread(centred):
    return jnp.full(centred.shape[-1:], jnp.sqrt(jnp.mean(centred * centred)), centred.dtype)


def _dense_natural(factor, means):
    d = means.shape[1]
    precision = jnp.einsum("kij,klj->kil", factor, factor)
    linear = jnp.einsum("kij,kj->ki", precision, means)
    i, j = upper(d)
    quadratic = -precision[:, i, j] * jnp.asarray(np.where(i == j, 0.5, 1.0), means.dtype)[None, :]
    whitened = jnp.einsum("kij,ki->kj", factor, means)
    log_det = jnp.sum(jnp.log(jnp.abs(jnp.diagonal(factor, axis1=1, axis2=2))), axis=1)
    return linear, quadratic, whitened, log_det


def _tied_natural(factor, means):
    k, d = means.shape
    return _dense_natural(jnp.broadcast_to(factor, (k, d, d)), means)


def _diag_natural(factor, means):
    precision = factor * factor
    return precision * means, -0.5 * precision, factor * means, jnp.sum(jnp.log(jnp.abs(factor)), axis=1)


def _spherical_natural(factor, means):
    precision = factor * factor
    d = means.shape[1]
    return precision[:, None] * means, -0.5 * precision[:, None], factor[:, None] * means, d * jnp.log(jnp.abs(factor))


def _moments(second, means, counts):
    k, d = means.shape
    i, j = upper(d)
    moments = jnp.zeros((k, d, d), second.dtype).at[:, i, j].set(second).at[:, j, i].set(second)
    return moments, means[:, :, None] * means[:, None, :]


def _regularized_factor(covariance, reg):
    symmetric = positive_semidefinite(0.5 * (covariance + jnp.swapaxes(covariance, -1, -2)))
    covariance = symmetric + jnp.broadcast_to(jnp.diag(reg), symmetric.shape)
    return precision_cholesky_from_covariance(covariance, reg)


def _full_maximize(second, means, counts, reg):
    moments, outer = _moments(second, means, counts)
    return _regularized_factor(moments / counts[:, None, None] - outer, reg)


def _tied_maximize(second, means, counts, reg):
    moments, outer = _moments(second, means, counts)
    weighted_outer = jnp.sum(counts[:, None, None] * outer, axis=0)
    return _regularized_factor((jnp.sum(moments, axis=0) - weighted_outer) / jnp.sum(counts), reg)


def _diag_maximize(second, means, counts, reg):
    variance = jnp.maximum(second / counts[:, None] - means * means, 0.0) + reg[None, :]
    return 1.0 / jnp.sqrt(variance)


def _spherical_maximize(second, means, counts, reg):
    spread = second[:, 0] / counts - jnp.sum(means * means, axis=1)
    variance = jnp.maximum(spread / means.shape[1], 0.0) + reg[0]
    return 1.0 / jnp.sqrt(variance)


def _eye_like(covariances):
    return jnp.eye(covariances.shape[-1], dtype=covariances.dtype)


def _full_from_scatter(covariances, counts, reg_covar):
    covariances = positive_semidefinite(covariances)
    return precision_cholesky_from_covariance(covariances + reg_covar * _eye_like(covariances)[None], reg_covar)


def _tied_from_scatter(covariances, counts, reg_covar):
    pooled = jnp.sum(counts[:, None, None] * covariances, axis=0) / jnp.sum(counts)
    pooled = positive_semidefinite(pooled)
    return precision_cholesky_from_covariance(pooled + reg_covar * _eye_like(covariances), reg_covar)


def _variances(covariances):
    return jnp.diagonal(covariances, axis1=-2, axis2=-1)


def _mean_variance(covariances):
    return jnp.mean(_variances(covariances), axis=-1)


def _inverse_sqrt_of(variances_fn):
    def factor(covariances, counts, reg_covar):
        return 1.0 / jnp.sqrt(jnp.maximum(variances_fn(covariances), 0.0) + reg_covar)

    return factor


def _inverse_sqrt(covariances):
    return 1.0 / jnp.sqrt(covariances)


def _cholesky_exists(covariances):
    return jnp.all(jnp.isfinite(jnp.linalg.cholesky(covariances)))


def _all_positive(covariances):
    return jnp.all(covariances > 0)


def _matrix_diagonal(factor):
    return factor.diagonal(axis1=-2, axis2=-1)  # NumPy's for NumPy arrays, JAX's for JAX arrays


def _full_precisions(u):
    return jnp.einsum("kij,klj->kil", u, u)


def _tied_precisions(u):
    return u @ u.T


def _diag_precision_matrices(u, k, d):
    return jax.vmap(jnp.diag)(u * u)


def _spherical_precision_matrices(u, k, d):
    eye = jnp.eye(d, dtype=u.dtype)
    return (u * u)[:, None, None] * eye[None, :, :]


def _n_upper(d):
    return d * (d + 1) // 2


FULL = Covariance(
    name="full",
    factor_shape=lambda k, d: (k, d, d),
    n_quadratic=_n_upper,
    quadratic=_upper_quadratic,
    blocked=True,
    pooled_units=_own,
    spread=_feature_spread,
    scale_rows=lambda u, scale: u * scale[None, :, None],
    natural=_dense_natural,
    maximize=_full_maximize,
    factor_from_scatter=_full_from_scatter,
    precisions=_full_precisions,
    precision_matrices=lambda u, k, d: _full_precisions(u),
    reduce_covariances=_own,
    factor_from_covariances=precision_cholesky_from_covariance,
    positive_definite=_cholesky_exists,
    factor_diagonal=_matrix_diagonal,
    n_parameters=lambda k, d: k * d * (d + 1) // 2,
)

TIED = FULL._replace(
    name="tied",
    factor_shape=lambda k, d: (d, d),
    scale_rows=lambda u, scale: u * scale[:, None],
    natural=_tied_natural,
    maximize=_tied_maximize,
    factor_from_scatter=_tied_from_scatter,
    precisions=_tied_precisions,
    precision_matrices=lambda u, k, d: jnp.broadcast_to(u @ u.T, (k, d, d)),
    reduce_covariances=lambda full: full[0],
    n_parameters=lambda k, d: d * (d + 1) // 2,
)

DIAG = Covariance(
    name="diag",
    factor_shape=lambda k, d: (k, d),
    n_quadratic=lambda d: d,
    quadratic=_squares,
    blocked=False,
    pooled_units=_own,
    spread=_feature_spread,
    scale_rows=lambda u, scale: u * scale[None, :],
    natural=_diag_natural,
    maximize=_diag_maximize,
    factor_from_scatter=_inverse_sqrt_of(_variances),
    precisions=_squares,
    precision_matrices=_diag_precision_matrices,
    reduce_covariances=_variances,
    factor_from_covariances=_inverse_sqrt,
    positive_definite=_all_positive,
    factor_diagonal=_own,
    n_parameters=lambda k, d: k * d,
)

SPHERICAL = DIAG._replace(
    name="spherical",
    factor_shape=lambda k, d: (k,),
    n_quadratic=lambda d: 1,
    quadratic=_squared_norm,
    pooled_units=_common_unit,
    spread=_common_spread,
    scale_rows=lambda u, scale: u * scale[0],
    natural=_spherical_natural,
    maximize=_spherical_maximize,
    factor_from_scatter=_inverse_sqrt_of(_mean_variance),
    precision_matrices=_spherical_precision_matrices,
    reduce_covariances=_mean_variance,
    n_parameters=lambda k, d: k,
)

COVARIANCES = {c.name: c for c in (FULL, TIED, DIAG, SPHERICAL)}
COVARIANCE_TYPES = tuple(COVARIANCES)


def covariance_of(covariance_type: str) -> Covariance:
    """The ``Covariance`` named ``covariance_type`` (``ValueError`` for another name)."""
    if not isinstance(covariance_type, str) or covariance_type not in COVARIANCES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
    return COVARIANCES[covariance_type]


def registered_name(covariance: Covariance) -> Optional[str]:
    """``covariance.name`` when ``covariance`` is the built-in ``Covariance`` of that
    name (so the name says all of it, e.g. to key a program kept between processes
    in ``exported.py``), else ``None``."""
    return covariance.name if COVARIANCES.get(covariance.name) is covariance else None


def covariances_from_factor(precisions_cholesky: Array, n_components: int, n_features: int, covariance: Covariance) -> Array:
    """``[K, D, D]`` covariance matrices from a factor of type ``covariance``."""
    precision = covariance.precision_matrices(precisions_cholesky, n_components, n_features)
    eye = jnp.broadcast_to(jnp.eye(n_features, dtype=precisions_cholesky.dtype), precision.shape)
    return jnp.linalg.solve(precision, eye)
