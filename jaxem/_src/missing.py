"""Gaussian mixtures with missing values (NaN), integrated out exactly.

Used by ``gaussian_mixture(..., missing="marginalize")``. Entries are assumed
missing at random. For a row with observed entries ``O`` (mask ``m``), the
log-potential of component k is ``log w_k + log N(x_O; μ_O, Σ_OO)``; the E-step is
still the gradient of their ``logsumexp``. The M-step is EM for incomplete data:
with ``P = Σ_OO⁻¹`` embedded in a D x D matrix (zero on missing rows and columns),

    E[x | x_O, k]      = μ + Σ P (x - μ)            (x_O kept; x_M regressed on x_O)
    Cov[x | x_O, k]    = Σ - Σ P Σ                  (zero except the missing block)

and the weighted first and second moments of these give the new means and
covariances. Every row is handled at once with the masked matrix
``A = diag(m) Σ diag(m) + diag(1 - m)``, whose Cholesky factor gives both
``log det Σ_OO`` and ``Σ_OO⁻¹`` (rows with the same missingness pattern share the
same algebra; no grouping is needed). Cost O(N K D³) per iteration, against
O(N K D²) without missing values. Diagonal and spherical types reduce to dropping
the missing terms.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxem._src import gaussian, validation
from jaxem._src.base import Array
from jaxem._src.expfam import mixture_weights, tiny_count


class MissingData(NamedTuple):
    """Prepared data: ``x [N, D]`` with missing entries set to 0, ``mask [N, D]``
    (1 observed, 0 missing) in the data's float dtype."""

    x: Array
    mask: Array


def prepare(data) -> MissingData:
    if isinstance(data, MissingData):
        return data
    x = validation.to_float(data)
    observed = ~jnp.isnan(x)
    return MissingData(jnp.where(observed, x, jnp.zeros_like(x)), observed.astype(x.dtype))


def check_data(data, name: str = "x") -> tuple[int, int]:
    """Like the complete-data check, but NaN is allowed (inf is not)."""
    if isinstance(data, MissingData):
        return data.x.shape
    x = validation.as_float_array(data, name, ndim=2, allow_nan=True)
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {x.shape}")
    if validation.is_concrete(x) and bool(jnp.any(jnp.isinf(x))):
        raise ValueError(f"{name} contains infinite values (NaN marks a missing value; inf is not allowed)")
    return x.shape


def fill_with_column_means(data: MissingData) -> Array:
    """``[N, D]`` with each missing entry replaced by its column's observed mean."""
    counts = jnp.sum(data.mask, axis=0)
    means = jnp.sum(data.x, axis=0) / jnp.maximum(counts, 1.0)
    return jnp.where(data.mask > 0, data.x, means[None, :])


def _masked_system(covariances: Array, mask: Array):
    """``(cholesky of A [N, K, D, D], P [N, K, D, D])`` for every row and component."""
    d = mask.shape[1]
    eye = jnp.eye(d, dtype=covariances.dtype)
    m = mask[:, None, :]
    a = m[..., :, None] * covariances[None] * m[..., None, :] + (1.0 - m)[..., :, None] * eye[None, None]
    lower = jnp.linalg.cholesky(a)
    inverse = jax.scipy.linalg.cho_solve((lower, True), jnp.broadcast_to(eye, a.shape))
    return lower, m[..., :, None] * inverse * m[..., None, :]


def _full_covariances(params, covariance_type: str) -> Array:
    k, d = params.means.shape
    return gaussian.covariances_from_factor(params.precisions_cholesky, k, d, covariance_type)


def log_densities(params, data: MissingData, covariance_type: str) -> Array:
    """``[N, K]`` log N(x_O; μ_k,O, Σ_k,OO) (0 for a row with nothing observed)."""
    dtype = data.x.dtype
    covariances = _full_covariances(params, covariance_type).astype(dtype)
    means = params.means.astype(dtype)
    lower, _ = _masked_system(covariances, data.mask)
    delta = data.mask[:, None, :] * (data.x[:, None, :] - means[None, :, :])
    whitened = jax.scipy.linalg.solve_triangular(lower, delta[..., None], lower=True)[..., 0]
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(lower, axis1=-2, axis2=-1)), axis=-1)
    n_observed = jnp.sum(data.mask, axis=1)[:, None]
    return -0.5 * (n_observed * math.log(2.0 * math.pi) + log_det + jnp.sum(whitened * whitened, axis=-1))


def log_joint(params, data: MissingData, covariance_type: str) -> Array:
    log_weights = jnp.log(params.weights).astype(data.x.dtype)
    return log_densities(params, data, covariance_type) + log_weights[None, :]


def m_step(data: MissingData, posterior: Array, params, covariance_type: str, reg_covar: float):
    """Closed-form M-step of EM for incomplete data (see the module docstring)."""
    dtype = data.x.dtype
    k, d = params.means.shape
    covariances = _full_covariances(params, covariance_type).astype(dtype)
    means = params.means.astype(dtype)
    _, precision = _masked_system(covariances, data.mask)
    delta = data.mask[:, None, :] * (data.x[:, None, :] - means[None, :, :])
    sigma_p = jnp.einsum("kij,nkjl->nkil", covariances, precision)
    expected = means[None] + jnp.einsum("nkij,nkj->nki", sigma_p, delta)  # [N, K, D]
    conditional = covariances[None] - jnp.einsum("nkij,kjl->nkil", sigma_p, covariances)  # [N, K, D, D]
    counts = jnp.sum(posterior, axis=0) + tiny_count(dtype)
    new_means = jnp.einsum("nk,nki->ki", posterior, expected) / counts[:, None]
    centred = expected - new_means[None]
    scatter = jnp.einsum("nk,nki,nkj->kij", posterior, centred, centred) + jnp.einsum("nk,nkij->kij", posterior, conditional)
    new_covariances = scatter / counts[:, None, None]
    new_covariances = 0.5 * (new_covariances + jnp.swapaxes(new_covariances, -1, -2))
    eye = jnp.eye(d, dtype=dtype)
    if covariance_type == "full":
        factor = gaussian.precision_cholesky_from_covariance(new_covariances + reg_covar * eye[None])
    elif covariance_type == "tied":
        pooled = jnp.sum(counts[:, None, None] * new_covariances, axis=0) / jnp.sum(counts)
        factor = gaussian.precision_cholesky_from_covariance(pooled + reg_covar * eye)
    elif covariance_type == "diag":
        variances = jnp.diagonal(new_covariances, axis1=-2, axis2=-1)
        factor = 1.0 / jnp.sqrt(jnp.maximum(variances, 0.0) + reg_covar)
    else:
        variances = jnp.mean(jnp.diagonal(new_covariances, axis1=-2, axis2=-1), axis=-1)
        factor = 1.0 / jnp.sqrt(jnp.maximum(variances, 0.0) + reg_covar)
    template = params.means.dtype
    return params._replace(
        weights=mixture_weights(counts - tiny_count(dtype)).astype(template),
        means=new_means.astype(template),
        precisions_cholesky=factor.astype(template),
    )
