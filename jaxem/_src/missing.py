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
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxem._src import validation
from jaxem._src.base import Array, Model, mixture_latent
from jaxem._src.expfam import mixture_weights, tiny_count
from jaxem._src.families.covariance import Covariance, covariances_from_factor


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
    if validation.is_concrete(x):
        # A row with nothing observed is defined: log p = log 1 = 0, its posterior the
        # weights. A feature never observed has no estimate at all: refused.
        empty = jnp.all(jnp.isnan(x), axis=0)
        if bool(jnp.any(empty)):
            columns = [int(i) for i in jnp.flatnonzero(empty)[:5]]
            raise ValueError(
                f"{name} has features with nothing observed (all NaN; columns {columns}): their means and "
                "variances cannot be estimated; drop those columns"
            )
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


def _full_covariances(params, covariance: Covariance) -> Array:
    k, d = params.means.shape
    return covariances_from_factor(params.precisions_cholesky, k, d, covariance)


def log_densities(params, data: MissingData, covariance: Covariance) -> Array:
    """``[N, K]`` log N(x_O; μ_k,O, Σ_k,OO) (0 for a row with nothing observed)."""
    dtype = data.x.dtype
    covariances = _full_covariances(params, covariance).astype(dtype)
    means = params.means.astype(dtype)
    lower, _ = _masked_system(covariances, data.mask)
    delta = data.mask[:, None, :] * (data.x[:, None, :] - means[None, :, :])
    whitened = jax.scipy.linalg.solve_triangular(lower, delta[..., None], lower=True)[..., 0]
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(lower, axis1=-2, axis2=-1)), axis=-1)
    n_observed = jnp.sum(data.mask, axis=1)[:, None]
    return -0.5 * (n_observed * math.log(2.0 * math.pi) + log_det + jnp.sum(whitened * whitened, axis=-1))


def log_joint(params, data: MissingData, covariance: Covariance) -> Array:
    log_weights = jnp.log(params.weights).astype(data.x.dtype)
    return log_densities(params, data, covariance) + log_weights[None, :]


def m_step(data: MissingData, posterior: Array, params, covariance: Covariance, reg_covar: float):
    """Closed-form M-step of EM for incomplete data (see the module docstring)."""
    dtype = data.x.dtype
    k, d = params.means.shape
    covariances = _full_covariances(params, covariance).astype(dtype)
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
    factor = covariance.factor_from_scatter(new_covariances, counts, reg_covar)
    template = params.means.dtype
    return params._replace(
        weights=mixture_weights(counts - tiny_count(dtype)).astype(template),
        means=new_means.astype(template),
        precisions_cholesky=factor.astype(template),
    )


def marginalizing(model: Model, covariance: Covariance, reg_covar: float, n_components: int, check_params: Callable) -> Model:
    """A Gaussian mixture ``model`` whose data may hold NaN entries, integrated out:
    same params, ``init`` from column-mean imputation.

    Args:
      model: the complete-data ``gaussian_mixture`` (gives ``init``, ``sample``,
        ``n_parameters``).
      covariance: its covariance type.
      reg_covar: added to every variance in the M-step.
      n_components: K.
      check_params: ``(params, d) -> None``, the mixture's params check.
    """

    def init(key, data):
        return model.init(key, model.prepare(fill_with_column_means(data)))

    def check(data, params=None):
        n, d = check_data(data)
        if params is None:
            validation.check_n_components(n_components, n)
            return
        check_params(params, d)

    def log_joint_fn(params, data):
        return log_joint(params, data, covariance)

    def m_step_fn(data, posterior, params):
        return m_step(data, posterior, params, covariance, reg_covar)

    return Model(
        init=init, log_joint=log_joint_fn, latent=mixture_latent(), m_step=m_step_fn,
        prepare=prepare, check=check, sample=model.sample, n_parameters=model.n_parameters,
    )
