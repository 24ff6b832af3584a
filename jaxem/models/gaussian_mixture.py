"""Gaussian mixture models (four covariance types) on the exponential-family path."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import gaussian, seeding, validation
from jaxem._src import missing as missing_lib
from jaxem._src.base import Array, Model, mixture_latent
from jaxem._src.expfam import exponential_family_mixture, hard_assignment_stats, mixture_weights
from jaxem._src.registry import register_model


class GaussianMixtureParams(NamedTuple):
    """Parameters of a Gaussian mixture (original data units).

    Attributes:
      weights: ``[K]`` mixing weights (sum to one).
      means: ``[K, D]`` component means.
      precisions_cholesky: factor ``U`` of the precision matrices, ``P = U Uᵀ``
        (scikit-learn's ``precisions_cholesky_``): ``[K, D, D]`` for ``full``,
        ``[D, D]`` for ``tied``, ``[K, D]`` for ``diag``, ``[K]`` for ``spherical``.
        ``covariances(params)`` gives the ``[K, D, D]`` covariance matrices.
    """

    weights: Array
    means: Array
    precisions_cholesky: Array


def _covariance_type_of(params: GaussianMixtureParams) -> str:
    k, d = params.means.shape
    shape = tuple(params.precisions_cholesky.shape)
    matches = [t for t, s in gaussian.factor_shapes(k, d).items() if s == shape]
    if len(matches) != 1:
        raise ValueError(
            f"cannot tell the covariance type from precisions_cholesky of shape {shape} "
            f"with K={k}, D={d}; pass covariance_type"
        )
    return matches[0]


def covariances(params: GaussianMixtureParams, covariance_type: str | None = None) -> Array:
    """``[K, D, D]`` covariance matrices of ``params``.

    Args:
      params: ``GaussianMixtureParams`` of any covariance type.
      covariance_type: needed only when it cannot be told from the shapes
        (``tied`` and ``diag`` factors look alike when K = D).
    """
    k, d = params.means.shape
    if covariance_type is None:
        covariance_type = _covariance_type_of(params)
    gaussian.check_covariance_type(covariance_type)
    return gaussian.covariances_from_factor(params.precisions_cholesky, k, d, covariance_type)


def gaussian_mixture_params(weights, means, covariances, covariance_type: str = "full") -> GaussianMixtureParams:
    """Builds params from a user's arrays.

    Args:
      weights: ``[K]`` non-negative, summing to one.
      means: ``[K, D]``.
      covariances: in scikit-learn's shape for the type: ``[K, D, D]`` (full),
        ``[D, D]`` (tied), ``[K, D]`` (diag), ``[K]`` (spherical); positive definite.
      covariance_type: one of ``"full"``, ``"tied"``, ``"diag"``, ``"spherical"``.

    Example:
      >>> params = gaussian_mixture_params([0.5, 0.5], [[0.0], [3.0]], [[[1.0]], [[1.0]]])
    """
    gaussian.check_covariance_type(covariance_type)
    weights = validation.as_float_array(weights, "weights", ndim=1)
    means = validation.as_float_array(means, "means", ndim=2)
    k, d = means.shape
    if weights.shape != (k,):
        raise ValueError(f"weights must have shape ({k},) to match means {means.shape}, got {weights.shape}")
    covariances = gaussian.covariances_argument(covariances, covariance_type, k, d)
    if bool(jnp.any(weights < 0)) or abs(float(jnp.sum(weights)) - 1.0) > 1e-4:
        raise ValueError("weights must be non-negative and sum to one")
    dtype = jnp.result_type(weights.dtype, means.dtype, covariances.dtype)
    factor = gaussian.factor_from_user_covariances(covariances.astype(dtype), covariance_type)
    return GaussianMixtureParams(weights.astype(dtype), means.astype(dtype), factor)


@register_model("gaussian_mixture")
def gaussian_mixture(
    n_components: int,
    *,
    covariance_type: str = "full",
    reg_covar: float = 1e-6,
    init: str = "kmeans++",
    missing: str = "reject",
) -> Model:
    """A mixture of ``n_components`` multivariate Gaussians.

    Data are ``[N, D]`` float arrays (float32 by default; float64 with
    ``jax_enable_x64``). The E-step is the gradient of ``logsumexp`` of the
    ``[N, K]`` log-potentials, which are one matrix product of the prepared
    features ``T(x) = [1, x, quad(x)]`` with the natural parameters; the M-step is
    closed form from ``posteriorᵀ @ T(x)``.

    Args:
      n_components: number of components K.
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
      reg_covar: added to the diagonal of every covariance in the M-step (in data
        units), so that no component collapses.
      init: ``"kmeans++"`` (k-means++ seeding) or ``"random_from_data"`` (K random
        rows); either way the rows are assigned to the nearest centre and the
        starting params are the M-step of that hard assignment.
      missing: ``"reject"`` (default: NaN in the data is an error) or
        ``"marginalize"``: NaN entries are missing at random and integrated out
        exactly (EM for incomplete data; see ``jaxem/_src/missing.py``). Costs
        O(N K D³) per iteration instead of O(N K D²); starts from column-mean
        imputation.

    Returns:
      A ``Model`` whose params are ``GaussianMixtureParams``.

    Example:
      >>> model = jaxem.models.gaussian_mixture(2, covariance_type="diag")
      >>> result = jaxem.fit(model, x, key=jax.random.key(0), n_restarts=8)
    """
    n_components = validation.check_positive_int(n_components, "n_components")
    gaussian.check_covariance_type(covariance_type)
    reg_covar = validation.check_nonnegative_float(reg_covar, "reg_covar")
    if init not in seeding.SEEDERS:
        raise ValueError(f"init must be one of {tuple(seeding.SEEDERS)}, got {init!r}")
    if missing not in ("reject", "marginalize"):
        raise ValueError(f"missing must be 'reject' or 'marginalize', got {missing!r}")
    family = gaussian.gaussian_family(covariance_type, reg_covar)
    seed = seeding.SEEDERS[init]

    def init_params(key: Array, features: gaussian.GaussianFeatures) -> GaussianMixtureParams:
        centres = seed(key, features.x, n_components)
        labels = seeding.nearest_centre(features.x, centres)
        stats = hard_assignment_stats(features.stats, labels, n_components)
        template = _template(n_components, features.x.shape[1], covariance_type, features.x.dtype)
        params = family.maximize(stats, features, template)
        return params._replace(weights=mixture_weights(stats[:, 0]))

    def check(data, params=None):
        _check(data, params, n_components, covariance_type)

    def sample(key: Array, params: GaussianMixtureParams, n: int):
        _check_params(params, n_components, covariance_type)
        z_key, x_key = jax.random.split(key)
        z = jax.random.categorical(z_key, jnp.log(params.weights), shape=(n,))
        return gaussian.draw(x_key, params.means, params.precisions_cholesky, z, covariance_type), z

    def n_parameters(params: GaussianMixtureParams) -> int:
        k, d = params.means.shape
        return gaussian.n_covariance_parameters(covariance_type, k, d) + k * d + k - 1

    if missing == "marginalize":
        return _with_missing_values(n_components, covariance_type, reg_covar, init_params, family, sample, n_parameters)
    return exponential_family_mixture(
        family, init=init_params, check=check, sample=sample, n_parameters=n_parameters
    )


def _with_missing_values(n_components, covariance_type, reg_covar, init_params, family, sample, n_parameters) -> Model:
    """The ``missing="marginalize"`` model: same params, NaN entries integrated out."""

    def init(key, data):
        return init_params(key, family.prepare(missing_lib.fill_with_column_means(data)))

    def check(data, params=None):
        n, d = missing_lib.check_data(data)
        if params is None:
            validation.check_n_components(n_components, n)
            return
        _check_params(params, n_components, covariance_type, d)

    def log_joint(params, data):
        return missing_lib.log_joint(params, data, covariance_type)

    def m_step(data, posterior, params):
        return missing_lib.m_step(data, posterior, params, covariance_type, reg_covar)

    return Model(
        init=init, log_joint=log_joint, latent=mixture_latent(), m_step=m_step,
        prepare=missing_lib.prepare, check=check, sample=sample, n_parameters=n_parameters,
    )


def _template(k: int, d: int, covariance_type: str, dtype) -> GaussianMixtureParams:
    shape = gaussian.factor_shapes(k, d)[covariance_type]
    return GaussianMixtureParams(jnp.zeros((k,), dtype), jnp.zeros((k, d), dtype), jnp.zeros(shape, dtype))


def _check(data, params, n_components: int, covariance_type: str) -> None:
    if isinstance(data, gaussian.GaussianFeatures):
        x = None
        n, d = data.x.shape
    else:
        x = validation.as_rows(data)
        n, d = x.shape
    if params is None:
        validation.check_n_components(n_components, n)
        return
    _check_params(params, n_components, covariance_type, d)
    if x is not None and validation.is_concrete((x, params)):
        if not gaussian.coefficients_are_finite(params.means, params.precisions_cholesky, x, covariance_type):
            raise ValueError(
                f"params cannot be evaluated on x in {x.dtype}: some components are so much narrower than "
                "the spread of x that their natural parameters overflow; use float64 (jax_enable_x64) "
                "or params on the scale of the data"
            )


def _check_params(params, n_components: int, covariance_type: str, d=None) -> None:
    """Types, shapes and (for concrete arrays) values of ``GaussianMixtureParams``."""
    if not isinstance(params, GaussianMixtureParams):
        raise TypeError(f"params must be GaussianMixtureParams, got {type(params).__name__}")
    for name, leaf in zip(params._fields, params):
        if not isinstance(leaf, (jax.Array, np.ndarray)) or not (
            jnp.issubdtype(leaf.dtype, jnp.floating) or jnp.issubdtype(leaf.dtype, jnp.integer)
        ):
            raise TypeError(f"params.{name} must be a real numeric array, got {type(leaf).__name__}")
    if jnp.ndim(params.means) != 2:
        raise ValueError(f"params.means must have shape (K, D), got {jnp.shape(params.means)}")
    k, d_params = jnp.shape(params.means)
    if d is not None and d_params != d:
        raise ValueError(f"x has {d} features but params.means has {d_params}")
    if k != n_components:
        raise ValueError(f"params have {k} components but the model has n_components={n_components}")
    if jnp.shape(params.weights) != (k,):
        raise ValueError(f"params.weights must have shape ({k},), got {jnp.shape(params.weights)}")
    expected = gaussian.factor_shapes(k, d_params)[covariance_type]
    if tuple(jnp.shape(params.precisions_cholesky)) != expected:
        raise ValueError(
            f"params.precisions_cholesky has shape {jnp.shape(params.precisions_cholesky)}, "
            f"expected {expected} for covariance_type={covariance_type!r}"
        )
    if not validation.is_concrete(params):
        return
    for name, leaf in zip(params._fields, params):
        if not bool(jnp.all(jnp.isfinite(leaf))):
            raise ValueError(f"params.{name} contains NaN or infinite values")
    weights = jnp.asarray(params.weights)
    if bool(jnp.any(weights < 0)) or abs(float(jnp.sum(weights)) - 1.0) > 1e-3:
        raise ValueError("params.weights must be non-negative and sum to one")
    factor = jnp.asarray(params.precisions_cholesky)
    diagonal = jnp.diagonal(factor, axis1=-2, axis2=-1) if covariance_type in ("full", "tied") else factor
    if not bool(jnp.all(diagonal != 0)):
        raise ValueError("params.precisions_cholesky must be invertible (non-zero diagonal)")
