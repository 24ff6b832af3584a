"""The multivariate Gaussian family, for every covariance type.

Parametrization: ``means [K, D]`` and ``precisions_cholesky``, a factor ``U`` of each
precision matrix (``P = U Uᵀ``; scikit-learn's ``precisions_cholesky_``), whose
shape is the covariance type's (``jaxem/_src/families/covariance.py``).

Numerics. ``prepare`` centres and scales the data once (``x' = (x - shift) / scale``,
per feature; one common scale for ``spherical``, so sphericity is kept), and all
sufficient statistics are formed from ``x'``. Parameters are converted to these
coordinates inside ``log_joint`` and back after the M-step, where the scaling only
multiplies the rows of ``U``: no Cholesky factorization is ever taken of an
ill-conditioned matrix in the original units. The features are

    T(x') = [1, x', quad(x')],

with ``quad`` the covariance type's quadratic features (the upper triangle of
``x' x'ᵀ`` for ``full``/``tied``, ``x'²`` for ``diag``, ``|x'|²`` for
``spherical``), so that ``log N(x | μ, P⁻¹) = T(x') · η + const`` with
``η = [c, P'μ', -P'/2 (upper)]``. The M-step adds ``reg_covar`` (in original
units) to every variance.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import validation
from jaxem._src.base import Array
from jaxem._src.component import Component, is_prepared
from jaxem._src.expfam import ExpFamily, tiny_count
from jaxem._src.families import gaussian_centred
from jaxem._src.families.covariance import COVARIANCES, Covariance, covariance_of, covariances_from_factor
from jaxem._src.validation import to_float


class GaussianFeatures(NamedTuple):
    """Prepared Gaussian data (the output of ``prepare``).

    Attributes:
      stats: ``[..., F]`` features ``[1, x', quad(x')]`` of the standardized data,
        ``F = 1 + D + Q`` for the covariance type's ``Q`` quadratic features.
      x: ``[..., D]`` standardized data ``x' = (x - shift) / scale``.
      shift: ``[D]`` the centre subtracted.
      scale: ``[D]`` the scale divided by.
    """

    stats: Array
    x: Array
    shift: Array
    scale: Array


def gaussian_features(x: Array, covariance: Covariance, reference: GaussianFeatures | None = None) -> GaussianFeatures:
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
        unit, shift_y, spread_y = _standardization(x.reshape(-1, d), covariance)
        shift, scale = shift_y * unit, spread_y * unit
        xs = (x / unit.reshape(lead + (d,)) - shift_y.reshape(lead + (d,))) / spread_y.reshape(lead + (d,))
    else:
        shift, scale = reference.shift.astype(x.dtype), reference.scale.astype(x.dtype)
        xs = (x - shift.reshape(lead + (d,))) / scale.reshape(lead + (d,))
    stats = feature_rows(xs.reshape(-1, d), covariance).reshape(xs.shape[:-1] + (-1,))
    return GaussianFeatures(stats, xs, shift, scale)


# Rows per block when building the features: the one-shot build of [N, F] kept
# several [N, ~F] intermediates alive (19 GiB peak at N = 10⁷, D = 16); blocks of
# 4096 rows need O(block · F) temporaries and were as fast or faster (N = 200 000).
FEATURE_BLOCK_ROWS = 4096


def feature_rows(xs: Array, covariance: Covariance, block_rows: int = FEATURE_BLOCK_ROWS) -> Array:
    """``[N, F]`` features ``[1, x', quad(x')]`` of standardized rows ``xs [N, D]``.

    For the wide types (``covariance.blocked``: full/tied, F = 1 + D + D(D+1)/2)
    they are built ``block_rows`` rows at a time into one ``[N, F]`` buffer (a
    ``lax.fori_loop`` of in-place row updates; the last block ends at row N,
    overlapping the one before it and rewriting those rows with the same values,
    so the block is compiled once), so the only large allocation is the result.
    Every entry is one product, so the result is exactly the one-shot
    ``block_features(xs)``.
    """
    n = xs.shape[0]
    if n <= block_rows or not covariance.blocked:  # narrow: one go is faster
        return block_features(xs, covariance)
    width = 1 + xs.shape[1] + covariance.n_quadratic(xs.shape[1])

    def body(i, out):
        start = jnp.minimum(i * block_rows, n - block_rows)
        block = jax.lax.dynamic_slice_in_dim(xs, start, block_rows)
        return jax.lax.dynamic_update_slice_in_dim(out, block_features(block, covariance), start, 0)

    return jax.lax.fori_loop(0, -(-n // block_rows), body, jnp.zeros((n, width), xs.dtype))


def block_features(xs: Array, covariance: Covariance) -> Array:
    """``[n, F]`` features of a few standardized rows ``xs [n, D]``, in one go."""
    ones = jnp.ones((xs.shape[0], 1), xs.dtype)
    return jnp.concatenate([ones, xs, covariance.quadratic(xs)], axis=1)


# One compiled program per shape: run eagerly, op by op, building the features took
# ~3x longer (N = 200 000, D = 16).
_compiled_features = jax.jit(gaussian_features, static_argnums=1)


def _standardization(flat: Array, covariance: Covariance):
    """``(unit, shift_y, spread_y)`` for ``flat [N, D]``: ``x' = (x / unit - shift_y) / spread_y``.

    The work is done in units of a power of two near each feature's largest |x|
    (an exact division), so that no sum or square overflows, whatever the
    magnitude. ``shift = shift_y * unit`` and ``scale = spread_y * unit``.
    """
    unit = covariance.pooled_units(_power_of_two_below(jnp.max(jnp.abs(flat), axis=0)))
    y = flat / unit[None, :]
    shift_y = jnp.mean(y, axis=0)
    centred = y - shift_y[None, :]
    spread_y = covariance.spread(centred)
    spread_y = jnp.where((spread_y > 0) & jnp.isfinite(spread_y * unit), spread_y, 1.0 / unit)
    return unit, shift_y, spread_y


def standardization_of(means: Array, precisions_cholesky: Array, covariance: Covariance, dtype):
    """``(shift [D], scale [D])`` of the coordinates that ``params`` are scored in:
    the mean of the component means, and a power of two near the spread of the
    means plus the largest component scale (``1 / max_j |U_dj|``), per feature
    (common for ``spherical``). From the params alone, so that every row is
    standardized the same way, whatever rows come with it."""
    means = means.astype(dtype)
    k, d = means.shape
    shift = jnp.mean(means, axis=0)
    dense = gaussian_centred.full_factor(precisions_cholesky.astype(dtype), k, d, covariance)
    widths = 1.0 / jnp.max(jnp.abs(dense), axis=2)  # [K, D]
    spread = jnp.max(jnp.abs(means - shift[None, :]), axis=0) + jnp.max(widths, axis=0)
    return shift, covariance.pooled_units(_power_of_two_below(spread))


def prepare_for_params(params, x, covariance: Covariance) -> GaussianFeatures:
    """``x`` prepared in the coordinates of ``standardization_of(params)``."""
    if isinstance(x, GaussianFeatures):
        return x
    x = to_float(x)
    shift, scale = standardization_of(params.means, params.precisions_cholesky, covariance, x.dtype)
    d = x.shape[-1]
    reference = GaussianFeatures(jnp.zeros((1, 1), x.dtype), jnp.zeros((1, d), x.dtype), shift, scale)
    return gaussian_features(x, covariance, reference)


def _power_of_two_below(magnitude: Array) -> Array:
    """``2**(e-1) <= magnitude < 2**e`` elementwise; 1 where that is 0, subnormal or inf."""
    _, exponent = jnp.frexp(magnitude)
    unit = jnp.ldexp(jnp.ones_like(magnitude), exponent - 1)
    return jnp.where((unit > 0) & jnp.isfinite(unit) & (magnitude >= jnp.finfo(magnitude.dtype).tiny), unit, jnp.ones_like(unit))


def coefficients_are_finite(means: Array, precisions_cholesky: Array, x: Array, covariance: Covariance) -> bool:
    """Whether ``params`` can be evaluated on ``x [N, D]`` in ``x``'s dtype: False
    when the natural parameters overflow (components far narrower than the data's
    spread, relative to the dtype's range). Not for use under ``jit``."""
    return bool(_coefficients_finite(means, precisions_cholesky, to_float(x), covariance))


@functools.partial(jax.jit, static_argnums=3)
def _coefficients_finite(means: Array, precisions_cholesky: Array, x: Array, covariance: Covariance) -> Array:
    unit, shift_y, spread_y = _standardization(x.reshape(-1, x.shape[-1]), covariance)
    stand_in = GaussianFeatures(jnp.zeros((1, 1), x.dtype), x, shift_y * unit, spread_y * unit)
    return jnp.all(jnp.isfinite(natural_coefficients(means, precisions_cholesky, stand_in, covariance)))


def natural_coefficients(means: Array, precisions_cholesky: Array, features: GaussianFeatures, covariance: Covariance) -> Array:
    """``[K, F]`` coefficients with ``T(x') @ coefficients.T = log N(x | μ_k, Σ_k)``."""
    dtype = features.stats.dtype
    means = ((means.astype(dtype) - features.shift[None, :]) / features.scale[None, :])
    factor = covariance.scale_rows(precisions_cholesky.astype(dtype), features.scale)
    d = means.shape[1]
    linear, quadratic, whitened, log_det = covariance.natural(factor, means)
    constant = (
        log_det
        - 0.5 * jnp.sum(whitened * whitened, axis=1)
        - 0.5 * d * math.log(2.0 * math.pi)
        - jnp.sum(jnp.log(features.scale))
    )
    return jnp.concatenate([constant[:, None], linear, quadratic], axis=1)


def maximize(statistics: Array, features: GaussianFeatures, means_template: Array, covariance: Covariance, reg_covar: float):
    """Closed-form M-step: ``(means [K, D], precisions_cholesky)`` from ``[K, F]``
    expected statistics about the global centre, or ``[K, F + D]`` about each
    component's centre (``gaussian_centred.statistics``)."""
    dtype = statistics.dtype
    d = features.x.shape[-1]
    statistics, centre = gaussian_centred.split(statistics, d, 1 + d + covariance.n_quadratic(d))
    counts = statistics[:, 0] + tiny_count(dtype)
    means = statistics[:, 1 : d + 1] / counts[:, None]
    second = statistics[:, d + 1 :]
    reg = reg_covar / (features.scale * features.scale)
    factor = covariance.maximize(second, means, counts, reg)
    means = (centre + means) * features.scale[None, :] + features.shift[None, :]
    factor = covariance.scale_rows(factor, 1.0 / features.scale)
    return means.astype(means_template.dtype), factor.astype(means_template.dtype)


def check_width(features: GaussianFeatures, covariance: Covariance, name: str = "x") -> None:
    """``ValueError`` unless ``features`` were prepared for ``covariance``'s features."""
    d = features.x.shape[-1]
    width = 1 + d + covariance.n_quadratic(d)
    if features.stats.shape[-1] != width:
        raise ValueError(
            f"{name} holds GaussianFeatures with {features.stats.shape[-1]} feature columns, prepared for "
            f"another covariance type; covariance_type={covariance.name!r} needs {width} for D={d}"
        )


def gaussian_family(covariance: Covariance, reg_covar: float) -> ExpFamily:
    """The Gaussian ``ExpFamily`` of one covariance type (reads/writes ``means`` and
    ``precisions_cholesky`` of the params)."""

    def prepare(x):
        if is_prepared(x, GaussianFeatures):  # not through jit: that would copy them
            check_width(x, covariance)
            return x
        return _compiled_features(x, covariance)

    def coefficients(params, features):
        return natural_coefficients(params.means, params.precisions_cholesky, features, covariance)

    def maximize_params(statistics, features, params):
        means, factor = maximize(statistics, features, params.means, covariance, reg_covar)
        return params._replace(means=means, precisions_cholesky=factor)

    def prepare_like(x, reference):
        return _compiled_features(x, covariance, reference)

    def log_densities(params, features):
        return gaussian_centred.log_densities(
            params, features, covariance, lambda: features.stats @ coefficients(params, features).T
        )

    def statistics(features, posterior, params):
        return gaussian_centred.statistics(features, posterior, params, covariance)

    def prepare_for(params, x):
        if is_prepared(x, GaussianFeatures):
            check_width(x, covariance)
            return x
        return prepare_for_params(params, x, covariance)

    return ExpFamily(
        prepare=prepare,
        coefficients=coefficients,
        maximize=maximize_params,
        prepare_like=prepare_like,
        log_densities=log_densities,
        statistics=statistics,
        prepare_for=prepare_for,
    )


def draw(key: Array, means: Array, precisions_cholesky: Array, labels: Array, covariance: Covariance) -> Array:
    """``[n, D]`` draws from the Gaussians selected by ``labels [n]`` (component or
    state indices), with ``means [K, D]`` and a factor of type ``covariance``."""
    k, d = means.shape
    covariances = covariances_from_factor(precisions_cholesky, k, d, covariance)
    lower = jnp.linalg.cholesky(covariances)
    noise = jax.random.normal(key, (labels.shape[0], d), means.dtype)
    return means[labels] + jnp.einsum("nij,nj->ni", lower[labels], noise)


def component(covariance: Covariance, reg_covar: float) -> Component:
    """The Gaussian ``Component`` (fields ``means [K, D]`` and ``precisions_cholesky``)."""

    def zeros(k, d, dtype):
        return {"means": jnp.zeros((k, d), dtype), "precisions_cholesky": jnp.zeros(covariance.factor_shape(k, d), dtype)}

    def check_params(params, k, d, role):
        check_gaussian_params(params, k, d, covariance, role)

    def check_evaluable(params, x):
        if not coefficients_are_finite(params.means, params.precisions_cholesky, x, covariance):
            raise ValueError(
                f"params cannot be evaluated on x in {x.dtype}: some components are so much narrower than "
                "the spread of x that their natural parameters overflow; use float64 (jax_enable_x64) "
                "or params on the scale of the data"
            )

    def draw_params(key, params, labels):
        return draw(key, params.means, params.precisions_cholesky, labels, covariance)

    def n_parameters(params) -> int:
        k, d = params.means.shape
        return covariance.n_parameters(k, d) + k * d

    return Component(
        family=gaussian_family(covariance, reg_covar),
        features_type=GaussianFeatures,
        zeros=zeros,
        check_params=check_params,
        draw=draw_params,
        n_parameters=n_parameters,
        check_evaluable=check_evaluable,
        encode=mean_padded,
    )


def mean_padded(obs: Array, mask: Array) -> Array:
    """HMM encoding: ``obs [B, T, D]`` as floats, padded steps set to the mean of
    the valid steps (finite, and the standardization stays the data's)."""
    x = to_float(obs)
    valid = mask[..., None]
    total = jnp.sum(jnp.where(valid, x, jnp.zeros_like(x)), axis=(0, 1))
    mean = total / jnp.sum(mask).astype(x.dtype)
    return jnp.where(valid, x, jnp.broadcast_to(mean, x.shape))


def check_gaussian_params(params, k: int, d, covariance: Covariance, role) -> None:
    """Types, shapes and (for concrete arrays) values of ``means`` and
    ``precisions_cholesky`` (and that every field is a finite real array)."""
    for name, leaf in zip(params._fields, params):
        if not isinstance(leaf, (jax.Array, np.ndarray)) or not (
            jnp.issubdtype(leaf.dtype, jnp.floating) or jnp.issubdtype(leaf.dtype, jnp.integer)
        ):
            raise TypeError(f"params.{name} must be a real numeric array, got {type(leaf).__name__}")
    if jnp.ndim(params.means) != 2:
        raise ValueError(f"params.means must have shape (K, D), got {jnp.shape(params.means)}")
    k_params, d_params = jnp.shape(params.means)
    if d is not None and d_params != d:
        raise ValueError(f"{role.data} has {d} features but params.means has {d_params}")
    if k_params != k:
        raise ValueError(f"params have {k_params} {role.latent} but the model has n_{role.latent}={k}")
    expected = covariance.factor_shape(k, d_params)
    if tuple(jnp.shape(params.precisions_cholesky)) != expected:
        raise ValueError(
            f"params.precisions_cholesky has shape {jnp.shape(params.precisions_cholesky)}, "
            f"expected {expected} for covariance_type={covariance.name!r}"
        )
    if not validation.is_concrete(params):
        return
    for name, leaf in zip(params._fields, params):
        if not bool(jnp.all(jnp.isfinite(leaf))):
            raise ValueError(f"params.{name} contains NaN or infinite values")
    if not bool(jnp.all(covariance.factor_diagonal(jnp.asarray(params.precisions_cholesky)) != 0)):
        raise ValueError("params.precisions_cholesky must be invertible (non-zero diagonal)")


# ----------------------------------------------------------------------------------
# Params and the user's arrays.


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


class GaussianHMMParams(NamedTuple):
    """Parameters of a Gaussian HMM (original data units).

    Attributes:
      initial_probs: ``[K]`` initial state probabilities.
      transition_matrix: ``[K, K]``, row ``i`` is p(z_t = · | z_t-1 = i).
      means: ``[K, D]`` emission means.
      precisions_cholesky: factor ``U`` of the emission precisions, ``P = U Uᵀ``, as
        in ``GaussianMixtureParams``: ``[K, D, D]`` full, ``[D, D]`` tied, ``[K, D]``
        diag, ``[K]`` spherical. ``jaxem.models.covariances(params)`` gives
        ``[K, D, D]`` covariance matrices.
    """

    initial_probs: Array
    transition_matrix: Array
    means: Array
    precisions_cholesky: Array


def covariance_of_params(params) -> Covariance:
    """The covariance type of ``params`` told from the shapes (``ValueError`` when
    ambiguous: ``tied`` and ``diag`` factors look alike when K = D)."""
    k, d = params.means.shape
    shape = tuple(params.precisions_cholesky.shape)
    matches = [c for c in COVARIANCES.values() if c.factor_shape(k, d) == shape]
    if len(matches) != 1:
        raise ValueError(
            f"cannot tell the covariance type from precisions_cholesky of shape {shape} "
            f"with K={k}, D={d}; pass covariance_type"
        )
    return matches[0]


def covariances(params, covariance_type: str | None = None) -> Array:
    """``[K, D, D]`` covariance matrices of Gaussian mixture or HMM ``params``.

    Args:
      params: ``GaussianMixtureParams`` or ``GaussianHMMParams`` of any covariance type.
      covariance_type: needed only when it cannot be told from the shapes
        (``tied`` and ``diag`` factors look alike when K = D).
    """
    k, d = params.means.shape
    covariance = covariance_of_params(params) if covariance_type is None else covariance_of(covariance_type)
    return covariances_from_factor(params.precisions_cholesky, k, d, covariance)


def user_factor(covariances, covariance: Covariance, k: int, d: int, dtype) -> Array:
    """``precisions_cholesky`` from a user's ``covariances`` in scikit-learn's shape
    for the type (``[K, D, D]`` full, ``[D, D]`` tied, ``[K, D]`` diag, ``[K]``
    spherical), which must be positive definite (``ValueError`` otherwise; the
    fallback to the diagonal is for EM only)."""
    expected = covariance.factor_shape(k, d)
    covariances = validation.as_float_array(covariances, "covariances", ndim=len(expected))
    if tuple(covariances.shape) != expected:
        raise ValueError(f"covariances for covariance_type={covariance.name!r} must have shape {expected}, got {covariances.shape}")
    covariances = covariances.astype(jnp.result_type(dtype, covariances.dtype))
    if not bool(covariance.positive_definite(covariances)):
        raise ValueError("covariances must be symmetric positive definite")
    return covariance.factor_from_covariances(covariances)


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
    covariance = covariance_of(covariance_type)
    weights = validation.as_float_array(weights, "weights", ndim=1)
    means = validation.as_float_array(means, "means", ndim=2)
    k, d = means.shape
    if weights.shape != (k,):
        raise ValueError(f"weights must have shape ({k},) to match means {means.shape}, got {weights.shape}")
    factor = user_factor(covariances, covariance, k, d, jnp.result_type(weights.dtype, means.dtype))
    if bool(jnp.any(weights < 0)) or abs(float(jnp.sum(weights)) - 1.0) > 1e-4:
        raise ValueError("weights must be non-negative and sum to one")
    dtype = factor.dtype
    return GaussianMixtureParams(weights.astype(dtype), means.astype(dtype), factor)


def gaussian_hmm_params(initial_probs, transition_matrix, means, covariances, covariance_type: str = "diag") -> GaussianHMMParams:
    """Builds Gaussian HMM params from a user's arrays.

    Args:
      initial_probs: ``[K]`` non-negative, summing to one.
      transition_matrix: ``[K, K]`` non-negative, rows summing to one.
      means: ``[K, D]``.
      covariances: hmmlearn's / scikit-learn's shape for the type: ``[K, D, D]``
        (full), ``[D, D]`` (tied), ``[K, D]`` (diag), ``[K]`` (spherical).
      covariance_type: ``"diag"`` (default), ``"full"``, ``"tied"`` or ``"spherical"``.

    Example:
      >>> params = gaussian_hmm_params([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]],
      ...                              [[0.0], [3.0]], [[1.0], [0.5]])
    """
    covariance = covariance_of(covariance_type)
    means = validation.as_float_array(means, "means", ndim=2)
    k, d = means.shape
    initial_probs = validation.check_probabilities(initial_probs, "initial_probs", (k,))
    transition_matrix = validation.check_probabilities(transition_matrix, "transition_matrix", (k, k))
    dtype = jnp.result_type(initial_probs.dtype, transition_matrix.dtype, means.dtype)
    factor = user_factor(covariances, covariance, k, d, dtype)
    dtype = factor.dtype
    return GaussianHMMParams(initial_probs.astype(dtype), transition_matrix.astype(dtype), means.astype(dtype), factor)
