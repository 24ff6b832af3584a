"""Multivariate Gaussian components in exponential-family form.

Parametrization: ``means [K, D]`` and ``precisions_cholesky``, a factor ``U`` of each
precision matrix (``P = U Uᵀ``; scikit-learn's ``precisions_cholesky_``), whose
shape depends on the covariance type:

=============  =============  ==========================================
type           shape          precision
=============  =============  ==========================================
``full``       ``[K, D, D]``  ``U_k U_kᵀ`` (one per component)
``tied``       ``[D, D]``     ``U Uᵀ`` (shared by all components)
``diag``       ``[K, D]``     ``diag(u_k²)``
``spherical``  ``[K]``        ``u_k² I``
=============  =============  ==========================================

Numerics. ``prepare`` centres and scales the data once (``x' = (x - shift) / scale``,
per feature; one common scale for ``spherical``, so sphericity is kept), and all
sufficient statistics are formed from ``x'``. Parameters are converted to these
coordinates inside ``log_joint`` and back after the M-step, where the scaling only
multiplies the rows of ``U``: no Cholesky factorization is ever taken of an
ill-conditioned matrix in the original units. The features are

    T(x') = [1, x', quad(x')],

with ``quad`` the upper triangle of ``x' x'ᵀ`` (``full``/``tied``), ``x'²`` (``diag``)
or ``|x'|²`` (``spherical``), so that
``log N(x | μ, P⁻¹) = T(x') · η + const`` with ``η = [c, P'μ', -P'/2 (upper)]``.
The M-step adds ``reg_covar`` (in original units) to every variance.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src.base import Array
from jaxem._src.expfam import ExpFamily, tiny_count
from jaxem._src.validation import as_float_array, to_float

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


class GaussianFeatures(NamedTuple):
    """Prepared Gaussian data (the output of ``prepare``).

    Attributes:
      stats: ``[..., F]`` features ``[1, x', quad(x')]`` of the standardized data.
      x: ``[..., D]`` standardized data ``x' = (x - shift) / scale``.
      shift: ``[D]`` the centre subtracted.
      scale: ``[D]`` the scale divided by.
    """

    stats: Array
    x: Array
    shift: Array
    scale: Array


def check_covariance_type(covariance_type: str) -> str:
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
    return covariance_type


def _upper(d: int):
    return np.triu_indices(d)


def n_quadratic(covariance_type: str, d: int) -> int:
    return {"full": d * (d + 1) // 2, "tied": d * (d + 1) // 2, "diag": d, "spherical": 1}[covariance_type]


def gaussian_features(x: Array, covariance_type: str, reference: GaussianFeatures | None = None) -> GaussianFeatures:
    """Standardizes ``x [..., D]`` (all leading axes pooled) and builds ``T(x')``.

    With ``reference`` (prepared features of other data), its ``shift`` and
    ``scale`` are used instead of ``x``'s own, so that the statistics of several
    chunks are in the same coordinates and can be added (``jaxem.fit_streaming``).
    """
    if isinstance(x, GaussianFeatures):
        return x
    x = to_float(x)
    d = x.shape[-1]
    lead = (1,) * (x.ndim - 1)
    if reference is None:
        unit, shift_y, spread_y = _standardization(x.reshape(-1, d), covariance_type)
        shift, scale = shift_y * unit, spread_y * unit
        xs = (x / unit.reshape(lead + (d,)) - shift_y.reshape(lead + (d,))) / spread_y.reshape(lead + (d,))
    else:
        shift, scale = reference.shift.astype(x.dtype), reference.scale.astype(x.dtype)
        xs = (x - shift.reshape(lead + (d,))) / scale.reshape(lead + (d,))
    stats = feature_rows(xs.reshape(-1, d), covariance_type).reshape(xs.shape[:-1] + (-1,))
    return GaussianFeatures(stats, xs, shift, scale)


# Rows per block when building the features: the one-shot build of [N, F] kept
# several [N, ~F] intermediates alive (19 GiB peak at N = 10⁷, D = 16); blocks of
# 4096 rows need O(block · F) temporaries and were as fast or faster (N = 200 000).
FEATURE_BLOCK_ROWS = 4096


def feature_rows(xs: Array, covariance_type: str, block_rows: int = FEATURE_BLOCK_ROWS) -> Array:
    """``[N, F]`` features ``[1, x', quad(x')]`` of standardized rows ``xs [N, D]``.

    For ``full``/``tied`` (F = 1 + D + D(D+1)/2) they are built ``block_rows`` rows
    at a time into one ``[N, F]`` buffer (a ``lax.fori_loop`` of in-place row
    updates; the last block ends at row N, overlapping the one before it and
    rewriting those rows with the same values, so the block is compiled once), so
    the only large allocation is the result. Every entry is one product, so the
    result is exactly the one-shot ``block_features(xs)``.
    """
    n = xs.shape[0]
    if n <= block_rows or covariance_type not in ("full", "tied"):  # narrow: one go is faster
        return block_features(xs, covariance_type)
    width = 1 + xs.shape[1] + n_quadratic(covariance_type, xs.shape[1])

    def body(i, out):
        start = jnp.minimum(i * block_rows, n - block_rows)
        block = jax.lax.dynamic_slice_in_dim(xs, start, block_rows)
        return jax.lax.dynamic_update_slice_in_dim(out, block_features(block, covariance_type), start, 0)

    return jax.lax.fori_loop(0, -(-n // block_rows), body, jnp.zeros((n, width), xs.dtype))


def block_features(xs: Array, covariance_type: str) -> Array:
    """``[n, F]`` features of a few standardized rows ``xs [n, D]``, in one go."""
    if covariance_type in ("full", "tied"):
        # Row by row of the upper triangle, (0,0) (0,1) .. (1,1) ..: slices, no gather
        # (a gather of [N, D(D+1)/2] columns was ~3x slower to build on a CPU).
        quad = jnp.concatenate([xs[:, a : a + 1] * xs[:, a:] for a in range(xs.shape[1])], axis=1)
    elif covariance_type == "diag":
        quad = xs * xs
    else:
        quad = jnp.sum(xs * xs, axis=1, keepdims=True)
    ones = jnp.ones((xs.shape[0], 1), xs.dtype)
    return jnp.concatenate([ones, xs, quad], axis=1)


# One compiled program per shape: run eagerly, op by op, building the features took
# ~3x longer (N = 200 000, D = 16).
_compiled_features = jax.jit(gaussian_features, static_argnums=1)


def _standardization(flat: Array, covariance_type: str):
    """``(unit, shift_y, spread_y)`` for ``flat [N, D]``: ``x' = (x / unit - shift_y) / spread_y``.

    The work is done in units of a power of two near each feature's largest |x|
    (an exact division), so that no sum or square overflows, whatever the
    magnitude. ``shift = shift_y * unit`` and ``scale = spread_y * unit``.
    """
    d = flat.shape[-1]
    unit = _power_of_two_below(jnp.max(jnp.abs(flat), axis=0))
    if covariance_type == "spherical":
        unit = jnp.full((d,), jnp.max(unit), flat.dtype)
    y = flat / unit[None, :]
    shift_y = jnp.mean(y, axis=0)
    centred = y - shift_y[None, :]
    if covariance_type == "spherical":
        spread_y = jnp.full((d,), jnp.sqrt(jnp.mean(centred * centred)), flat.dtype)
    else:
        spread_y = jnp.sqrt(jnp.mean(centred * centred, axis=0))
    spread_y = jnp.where((spread_y > 0) & jnp.isfinite(spread_y * unit), spread_y, 1.0 / unit)
    return unit, shift_y, spread_y


def coefficients_are_finite(means: Array, precisions_cholesky: Array, x: Array, covariance_type: str) -> bool:
    """Whether ``params`` can be evaluated on ``x [N, D]`` in ``x``'s dtype: False
    when the natural parameters overflow (components far narrower than the data's
    spread, relative to the dtype's range). Not for use under ``jit``."""
    return bool(_coefficients_finite(means, precisions_cholesky, to_float(x), covariance_type))


@functools.partial(jax.jit, static_argnums=3)
def _coefficients_finite(means: Array, precisions_cholesky: Array, x: Array, covariance_type: str) -> Array:
    unit, shift_y, spread_y = _standardization(x.reshape(-1, x.shape[-1]), covariance_type)
    stand_in = GaussianFeatures(jnp.zeros((1, 1), x.dtype), x, shift_y * unit, spread_y * unit)
    return jnp.all(jnp.isfinite(natural_coefficients(means, precisions_cholesky, stand_in, covariance_type)))


def _power_of_two_below(magnitude: Array) -> Array:
    """``2**(e-1) <= magnitude < 2**e`` elementwise; 1 where that is 0, subnormal or inf."""
    _, exponent = jnp.frexp(magnitude)
    unit = jnp.ldexp(jnp.ones_like(magnitude), exponent - 1)
    return jnp.where((unit > 0) & jnp.isfinite(unit) & (magnitude >= jnp.finfo(magnitude.dtype).tiny), unit, jnp.ones_like(unit))


def _scale_rows(precisions_cholesky: Array, scale: Array, covariance_type: str) -> Array:
    """Multiplies the rows of each factor by ``scale`` (into standardized units)."""
    if covariance_type == "full":
        return precisions_cholesky * scale[None, :, None]
    if covariance_type == "tied":
        return precisions_cholesky * scale[:, None]
    if covariance_type == "diag":
        return precisions_cholesky * scale[None, :]
    return precisions_cholesky * scale[0]


def _unscale_rows(precisions_cholesky: Array, scale: Array, covariance_type: str) -> Array:
    return _scale_rows(precisions_cholesky, 1.0 / scale, covariance_type)


def natural_coefficients(means: Array, precisions_cholesky: Array, features: GaussianFeatures, covariance_type: str) -> Array:
    """``[K, F]`` coefficients with ``T(x') @ coefficients.T = log N(x | μ_k, Σ_k)``."""
    dtype = features.stats.dtype
    means = ((means.astype(dtype) - features.shift[None, :]) / features.scale[None, :])
    factor = _scale_rows(precisions_cholesky.astype(dtype), features.scale, covariance_type)
    k, d = means.shape
    if covariance_type in ("full", "tied"):
        if covariance_type == "tied":
            factor = jnp.broadcast_to(factor, (k, d, d))
        precision = jnp.einsum("kij,klj->kil", factor, factor)
        linear = jnp.einsum("kij,kj->ki", precision, means)
        i, j = _upper(d)
        quadratic = -precision[:, i, j] * jnp.asarray(np.where(i == j, 0.5, 1.0), dtype)[None, :]
        whitened = jnp.einsum("kij,ki->kj", factor, means)
        log_det = jnp.sum(jnp.log(jnp.abs(jnp.diagonal(factor, axis1=1, axis2=2))), axis=1)
    elif covariance_type == "diag":
        precision = factor * factor
        linear = precision * means
        quadratic = -0.5 * precision
        whitened = factor * means
        log_det = jnp.sum(jnp.log(jnp.abs(factor)), axis=1)
    else:
        precision = factor * factor
        linear = precision[:, None] * means
        quadratic = -0.5 * precision[:, None]
        whitened = factor[:, None] * means
        log_det = d * jnp.log(jnp.abs(factor))
    constant = (
        log_det
        - 0.5 * jnp.sum(whitened * whitened, axis=1)
        - 0.5 * d * math.log(2.0 * math.pi)
        - jnp.sum(jnp.log(features.scale))
    )
    return jnp.concatenate([constant[:, None], linear, quadratic], axis=1)


def precision_cholesky_from_covariance(covariance: Array) -> Array:
    """``U`` (upper triangular) with ``U Uᵀ = covariance⁻¹``, for ``[..., D, D]``.

    Where a Cholesky factorization fails (a matrix not numerically positive
    definite), the factor of its diagonal is used instead, so the result is finite.
    """
    lower = jnp.linalg.cholesky(covariance)
    eye = jnp.broadcast_to(jnp.eye(covariance.shape[-1], dtype=covariance.dtype), covariance.shape)
    inverse_lower = jax.scipy.linalg.solve_triangular(lower, eye, lower=True)
    factor = jnp.swapaxes(inverse_lower, -1, -2)
    variances = jnp.diagonal(covariance, axis1=-2, axis2=-1)
    floor = jnp.finfo(covariance.dtype).tiny
    fallback = eye * (1.0 / jnp.sqrt(jnp.maximum(variances, floor)))[..., None, :]
    ok = jnp.all(jnp.isfinite(factor), axis=(-2, -1), keepdims=True)
    return jnp.where(ok, factor, fallback)


def maximize(stats: Array, features: GaussianFeatures, means_template: Array, covariance_type: str, reg_covar: float):
    """Closed-form M-step: ``(means [K, D], precisions_cholesky)`` from ``[K, F]`` stats."""
    dtype = stats.dtype
    d = features.x.shape[-1]
    counts = stats[:, 0] + tiny_count(dtype)
    means = stats[:, 1 : d + 1] / counts[:, None]
    second = stats[:, d + 1 :]
    reg = reg_covar / (features.scale * features.scale)
    if covariance_type in ("full", "tied"):
        i, j = _upper(d)
        k = stats.shape[0]
        moments = jnp.zeros((k, d, d), dtype).at[:, i, j].set(second).at[:, j, i].set(second)
        outer = means[:, :, None] * means[:, None, :]
        if covariance_type == "full":
            covariance = moments / counts[:, None, None] - outer
        else:
            weighted_outer = jnp.sum(counts[:, None, None] * outer, axis=0)
            covariance = (jnp.sum(moments, axis=0) - weighted_outer) / jnp.sum(counts)
        symmetric = 0.5 * (covariance + jnp.swapaxes(covariance, -1, -2))
        covariance = symmetric + jnp.broadcast_to(jnp.diag(reg), symmetric.shape)
        factor = precision_cholesky_from_covariance(covariance)
    elif covariance_type == "diag":
        variance = jnp.maximum(second / counts[:, None] - means * means, 0.0) + reg[None, :]
        factor = 1.0 / jnp.sqrt(variance)
    else:
        spread = second[:, 0] / counts - jnp.sum(means * means, axis=1)
        variance = jnp.maximum(spread / d, 0.0) + reg[0]
        factor = 1.0 / jnp.sqrt(variance)
    means = means * features.scale[None, :] + features.shift[None, :]
    factor = _unscale_rows(factor, features.scale, covariance_type)
    return means.astype(means_template.dtype), factor.astype(means_template.dtype)


def gaussian_family(covariance_type: str, reg_covar: float) -> ExpFamily:
    """The Gaussian ``ExpFamily`` of one covariance type (reads/writes ``means`` and
    ``precisions_cholesky`` of the params)."""

    def prepare(x):
        if isinstance(x, GaussianFeatures):  # not through jit: that would copy them
            return x
        return _compiled_features(x, covariance_type)

    def coefficients(params, features):
        return natural_coefficients(params.means, params.precisions_cholesky, features, covariance_type)

    def maximize_params(stats, features, params):
        means, factor = maximize(stats, features, params.means, covariance_type, reg_covar)
        return params._replace(means=means, precisions_cholesky=factor)

    def prepare_like(x, reference):
        return _compiled_features(x, covariance_type, reference)

    return ExpFamily(prepare=prepare, coefficients=coefficients, maximize=maximize_params, prepare_like=prepare_like)


def covariances_from_factor(precisions_cholesky: Array, n_components: int, n_features: int, covariance_type: str) -> Array:
    """``[K, D, D]`` covariance matrices from any covariance type's factor."""
    u = precisions_cholesky
    if covariance_type == "full":
        precision = jnp.einsum("kij,klj->kil", u, u)
    elif covariance_type == "tied":
        precision = jnp.broadcast_to(u @ u.T, (n_components, n_features, n_features))
    elif covariance_type == "diag":
        precision = jax.vmap(jnp.diag)(u * u)
    else:
        eye = jnp.eye(n_features, dtype=u.dtype)
        precision = (u * u)[:, None, None] * eye[None, :, :]
    eye = jnp.broadcast_to(jnp.eye(n_features, dtype=u.dtype), precision.shape)
    return jnp.linalg.solve(precision, eye)


def draw(key: Array, means: Array, precisions_cholesky: Array, labels: Array, covariance_type: str) -> Array:
    """``[n, D]`` draws from the Gaussians selected by ``labels [n]`` (component or
    state indices), with ``means [K, D]`` and a factor of any covariance type."""
    k, d = means.shape
    covariances = covariances_from_factor(precisions_cholesky, k, d, covariance_type)
    lower = jnp.linalg.cholesky(covariances)
    noise = jax.random.normal(key, (labels.shape[0], d), means.dtype)
    return means[labels] + jnp.einsum("nij,nj->ni", lower[labels], noise)


def factor_shapes(k: int, d: int) -> dict:
    """Shape of ``precisions_cholesky`` (and of a user's covariances) for each type."""
    return {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}


def covariances_argument(covariances, covariance_type: str, k: int, d: int) -> Array:
    """A user's ``covariances`` in scikit-learn's shape for the type, checked:
    ``[K, D, D]`` (full), ``[D, D]`` (tied), ``[K, D]`` (diag), ``[K]`` (spherical)."""
    expected = factor_shapes(k, d)[covariance_type]
    covariances = as_float_array(covariances, "covariances", ndim=len(expected))
    if tuple(covariances.shape) != expected:
        raise ValueError(f"covariances for covariance_type={covariance_type!r} must have shape {expected}, got {covariances.shape}")
    return covariances


def factor_from_user_covariances(covariances: Array, covariance_type: str) -> Array:
    """``factor_from_covariances`` of a user's covariances, which must be positive
    definite (``ValueError`` otherwise; the fallback to the diagonal is for EM only)."""
    if covariance_type in ("full", "tied"):
        ok = bool(jnp.all(jnp.isfinite(jnp.linalg.cholesky(covariances))))
    else:
        ok = bool(jnp.all(covariances > 0))
    if not ok:
        raise ValueError("covariances must be symmetric positive definite")
    return factor_from_covariances(covariances, covariance_type)


def factor_from_covariances(covariances: Array, covariance_type: str) -> Array:
    """``precisions_cholesky`` from covariances in scikit-learn's shape for the type."""
    if covariance_type in ("full", "tied"):
        return precision_cholesky_from_covariance(covariances)
    return 1.0 / jnp.sqrt(covariances)


def n_covariance_parameters(covariance_type: str, k: int, d: int) -> int:
    return {"full": k * d * (d + 1) // 2, "tied": d * (d + 1) // 2, "diag": k * d, "spherical": k}[covariance_type]
