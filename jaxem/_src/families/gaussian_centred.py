"""Gaussian log-densities and statistics about each component's own centre.

The fast path of the Gaussian family expands everything about one global centre:
``log N(x | μ_k, P_k) = T(x') · η_k`` and the second moments ``Σ r x' x'ᵀ``, from
which the M-step subtracts ``n μ μᵀ``. For a component whose spread ``σ'`` is tiny
against its distance ``|μ'|`` from the global centre (standardized units), both
cancel: the rounding error is about ``eps · |μ'|² / σ'²`` (relative, in the
variances; nats, in each log-density), a factor 3 on the variances of two sd-1
clusters 10 000 apart in float32 (issue 12, item 2).

This module gives the same quantities about a per-component centre ``c_k`` (the
component's current mean):

- ``log_densities``: ``-½ |U'_kᵀ (x' - μ'_k)|² + log|U'_k| + const``, from explicit
  differences, whose rounding error is ``eps · |x'| / σ'`` (linear in the ratio);
- ``statistics``: ``[S0, Σ r (x' - c), quad(x' - c), S0 c]`` per component,
  ``[K, F + D]``, additive over rows like the global ``[K, F]`` (the last ``D``
  columns, the count-weighted centre, tell ``maximize`` where they were taken).

Both are exact rewrites of the fast path, so they are only run where the fast
path's error estimate ``eps · (1 + max_d c²_kd) · max_d |U'_k row d|²`` exceeds ``TOLERANCE``
(``needs_centring``), through ``lax.cond``: the fast path's two matrix products
are untouched where nothing cancels. (Under ``vmap`` over restarts ``cond``
evaluates both branches.)

Shapes: ``N`` rows (any leading axes are flattened), ``K`` components, ``D``
features, ``F = 1 + D + Q`` features of ``T(x')``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxem._src.base import Array
from jaxem._src.families.covariance import Covariance

# Largest tolerated estimate of the fast path's rounding, relative (variances) or
# in nats per row (log-densities); at 0.1 a tight cluster's rows were 1e-3 off.
# On benchmarks/gmm.py's full case a component nearly singular in one direction
# reaches 0.07 after a few iterations, so that case takes the centred path (open:
# patch only the affected components instead of all).
TOLERANCE = 1e-3


def standardized(means: Array, precisions_cholesky: Array, features, covariance: Covariance):
    """``(means' [K, D], factor')``: params in the coordinates of ``features``."""
    dtype = features.x.dtype
    means = (means.astype(dtype) - features.shift[None, :]) / features.scale[None, :]
    return means, covariance.scale_rows(precisions_cholesky.astype(dtype), features.scale)


def full_factor(factor: Array, k: int, d: int, covariance: Covariance) -> Array:
    """``[K, D, D]`` precision factors (dense) of any covariance type's ``factor'``."""
    if factor.ndim == 3:
        return factor
    if covariance.blocked:  # tied
        return jnp.broadcast_to(factor, (k, d, d))
    eye = jnp.eye(d, dtype=factor.dtype)
    if factor.ndim == 2:  # diag
        return factor[:, :, None] * eye[None, :, :]
    return factor[:, None, None] * eye[None, :, :]  # spherical


def squared_factor_norm(factor: Array, k: int, d: int, covariance: Covariance) -> Array:
    """``[K]`` ``‖U'_k‖²_F``, a bound on the largest precision eigenvalue."""
    if covariance.blocked:
        dense = full_factor(factor, k, d, covariance)
        return jnp.sum(dense * dense, axis=(1, 2))
    if factor.ndim == 2:  # diag
        return jnp.sum(factor * factor, axis=1)
    return d * factor * factor  # spherical


def needs_centring(means: Array, factor: Array, covariance: Covariance) -> Array:
    """Scalar bool: whether the fast path's rounding estimate
    ``eps · (1 + max_d μ'²_kd) · max_d |U'_k row d|²`` exceeds ``TOLERANCE`` for some
    component (standardized ``means [K, D]`` and ``factor``)."""
    k, d = means.shape
    eps = float(jnp.finfo(means.dtype).eps)
    dense = full_factor(factor, k, d, covariance)
    largest_precision = jnp.max(jnp.sum(dense * dense, axis=2), axis=1)
    amplification = (1.0 + jnp.max(means * means, axis=1)) * largest_precision
    return ~jnp.all(eps * amplification <= TOLERANCE)  # NaN params: centred (finite work either way)


def centred_log_densities(xs: Array, means: Array, factor: Array, log_scale: Array, covariance: Covariance) -> Array:
    """``[N, K]`` log N(x | μ_k, Σ_k) of standardized rows ``xs [N, D]`` from explicit
    differences ``x' - μ'_k`` (``log_scale``: ``Σ log scale``, the Jacobian)."""
    k, d = means.shape
    dense = full_factor(factor, k, d, covariance)
    whitened = jnp.einsum("nki,kij->nkj", xs[:, None, :] - means[None, :, :], dense)
    log_det = jnp.sum(jnp.log(jnp.abs(jnp.diagonal(dense, axis1=1, axis2=2))), axis=1)
    constant = log_det - 0.5 * d * math.log(2.0 * math.pi) - log_scale
    return constant[None, :] - 0.5 * jnp.sum(whitened * whitened, axis=2)


def log_densities(params, features, covariance: Covariance, fast_fn) -> Array:
    """``[..., K]`` component log-densities of prepared ``features``: ``fast_fn()``
    (the one matrix product) unless ``needs_centring``, else the centred form."""
    means, factor = standardized(params.means, params.precisions_cholesky, features, covariance)
    lead = features.x.shape[:-1]
    d = features.x.shape[-1]

    def centred():
        flat = centred_log_densities(
            features.x.reshape(-1, d), means, factor, jnp.sum(jnp.log(features.scale)), covariance
        )
        return flat.reshape(lead + (means.shape[0],))

    return jax.lax.cond(needs_centring(means, factor, covariance), centred, fast_fn)


def _shifted(global_stats: Array, centre: Array, covariance: Covariance) -> Array:
    """``[K, F]`` statistics about ``centre [K, D]`` from the global ``[K, F]``
    (the algebraic shift: as exact as the global statistics themselves)."""
    k, d = centre.shape
    counts, first, second = global_stats[:, :1], global_stats[:, 1 : d + 1], global_stats[:, d + 1 :]
    first_c = first - counts * centre
    if covariance.blocked:
        cross = first[:, :, None] * centre[:, None, :]
        moments = cross + jnp.swapaxes(cross, 1, 2) - counts[:, :, None] * centre[:, :, None] * centre[:, None, :]
        second_c = second - _upper_rows(moments)
    elif second.shape[1] == d:  # diag
        second_c = second - (2.0 * first * centre - counts * centre * centre)
    else:  # spherical
        second_c = second - jnp.sum(2.0 * first * centre - counts * centre * centre, axis=1, keepdims=True)
    return jnp.concatenate([counts, first_c, second_c], axis=1)


def _upper_rows(matrices: Array) -> Array:
    """``[K, Q]`` upper triangles, row by row, of ``[K, D, D]`` (``quadratic``'s order)."""
    d = matrices.shape[-1]
    return jnp.concatenate([matrices[:, a, a:] for a in range(d)], axis=1)


def _direct(xs: Array, posterior: Array, centre: Array, covariance: Covariance) -> Array:
    """``[K, F]`` statistics about ``centre`` from explicit differences (``[N, K, D]``)."""
    diff = xs[:, None, :] - centre[None, :, :]
    counts = jnp.sum(posterior, axis=0)[:, None]
    first = jnp.einsum("nk,nkd->kd", posterior, diff)
    if covariance.blocked:
        second = _upper_rows(jnp.einsum("nk,nki,nkj->kij", posterior, diff, diff))
    elif covariance.n_quadratic(centre.shape[1]) == centre.shape[1]:  # diag
        second = jnp.einsum("nk,nkd->kd", posterior, diff * diff)
    else:  # spherical
        second = jnp.einsum("nk,nk->k", posterior, jnp.sum(diff * diff, axis=2))[:, None]
    return jnp.concatenate([counts, first, second], axis=1)


def statistics(features, posterior: Array, params, covariance: Covariance) -> Array:
    """``[K, F + D]`` statistics about the standardized means of ``params``
    (``[S0, Σ r (x'-c), quad about c, S0 c]``), from ``posterior [..., K]``; the
    global ``[K, F]`` (``posteriorᵀ T(x')``) when ``params`` is ``None``."""
    stats = features.stats.reshape(-1, features.stats.shape[-1])
    flat_posterior = posterior.reshape(-1, posterior.shape[-1]).astype(stats.dtype)
    if params is None:
        return flat_posterior.T @ stats
    centre, factor = standardized(params.means, params.precisions_cholesky, features, covariance)
    xs = features.x.reshape(-1, features.x.shape[-1])
    about = jax.lax.cond(
        needs_centring(centre, factor, covariance),
        lambda: _direct(xs, flat_posterior, centre, covariance),
        lambda: _shifted(flat_posterior.T @ stats, centre, covariance),
    )
    return jnp.concatenate([about, about[:, :1] * centre], axis=1)


def split(statistics: Array, d: int, width: int):
    """``(statistics [K, F], centre [K, D])``: the centre the statistics were taken
    about (0, the global centre, for plain ``[K, F]`` statistics)."""
    if statistics.shape[1] == width:
        return statistics, jnp.zeros((statistics.shape[0], d), statistics.dtype)
    counts = statistics[:, :1]
    safe = jnp.where(counts > 0, counts, jnp.ones_like(counts))
    centre = jnp.where(counts > 0, statistics[:, width:] / safe, jnp.zeros_like(statistics[:, width:]))
    return statistics[:, :width], centre
