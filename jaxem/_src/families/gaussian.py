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

from jaxem._src import exported, validation
from jaxem._src.base import Array
from jaxem._src.display import params_repr
from jaxem._src.component import Component, is_prepared
from jaxem._src.expfam import ExpFamily, tiny_count
from jaxem._src.families import gaussian_centred
from jaxem._src.families.covariance import COVARIANCES, Covariance, covariance_of, covariances_from_factor, registered_name
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
    check = lambda means, factor, x: _coefficients_finite(means, factor, x, covariance)  # noqa: E731
    kept = exported.call_function("coefficients_finite", check, registered_name(covariance), means, precisions_cholesky, to_float(x))
    return bool(kept)  # kept between processes (exported.py)


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


def gaussian_family(covariance: Covariance, reg_covar: float, prior: GaussianPrior | None = None) -> ExpFamily:
    """The Gaussian ``ExpFamily`` of one covariance type (reads/writes ``means`` and
    ``precisions_cholesky`` of the params); with a checked ``prior``
    (``check_prior``), the MAP M-step and its ``log_prior``."""

    def prepare(x):
        if is_prepared(x, GaussianFeatures):  # not through jit: that would copy them
            check_width(x, covariance)
            features = x
        else:
            features = _compiled_features(x, covariance)
        if prior is not None:
            check_prior_width(prior, covariance, features.x.shape[-1])
        return features

    def coefficients(params, features):
        return natural_coefficients(params.means, params.precisions_cholesky, features, covariance)

    def maximize_params(statistics, features, params):
        if prior is None:
            means, factor = maximize(statistics, features, params.means, covariance, reg_covar)
        else:
            means, factor = map_maximize(statistics, features, params.means, covariance, reg_covar, prior)
        return params._replace(means=means, precisions_cholesky=factor)

    def prepare_like(x, reference):
        return _compiled_features(x, covariance, reference)

    def log_prior_of(params):
        return log_prior(params.means, params.precisions_cholesky, covariance, prior)

    def log_densities(params, features, offsets=None):
        fast = coefficients(params, features)
        if offsets is not None:  # e.g. log weights, in the constant column (the fast path's form)
            fast = fast.at[:, 0].add(offsets.astype(fast.dtype))
        return gaussian_centred.log_densities(params, features, covariance, fast, offsets)

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
        log_prior=None if prior is None else log_prior_of,
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


def component(covariance: Covariance, reg_covar: float, prior: GaussianPrior | None = None) -> Component:
    """The Gaussian ``Component`` (fields ``means [K, D]`` and ``precisions_cholesky``),
    with the MAP M-step when ``prior`` (checked, ``check_prior``) is given."""

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
        family=gaussian_family(covariance, reg_covar, prior),
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
    # NumPy on the host: eager jnp here compiled a small program per op and shape
    for name, leaf in zip(params._fields, params):
        if not np.all(np.isfinite(np.asarray(leaf))):
            raise ValueError(f"params.{name} contains NaN or infinite values")
    if not np.all(covariance.factor_diagonal(np.asarray(params.precisions_cholesky)) != 0):
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

    __repr__ = params_repr


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

    __repr__ = params_repr


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

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2, covariance_type="spherical")
      >>> params = jaxem.init(model, jax.random.key(0), x)
      >>> params.precisions_cholesky.shape, jaxem.models.covariances(params).shape
      ((2,), (2, 2, 2))
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
    if covariance.name in ("full", "tied"):
        # a non-symmetric matrix is an error in the caller's arrays, never silently symmetrized
        host = np.asarray(covariances, dtype=np.float64)
        asymmetry = np.max(np.abs(host - np.swapaxes(host, -1, -2)), initial=0.0)
        if not asymmetry <= 1e3 * np.finfo(np.asarray(covariances).dtype).eps * np.max(np.abs(host), initial=1.0):
            raise ValueError(f"covariances must be symmetric (largest |C - C^T| entry {asymmetry:.3g})")
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

    Examples:
      >>> params = jaxem.models.gaussian_mixture_params([0.5, 0.5], [[0.0], [3.0]], [[[1.0]], [[4.0]]])
      >>> np.asarray(jaxem.models.covariances(params)).ravel().tolist()
      [1.0, 4.0]
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

    Examples:
      >>> params = jaxem.models.gaussian_hmm_params(
      ...     [0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [[0.0], [3.0]], [[1.0], [0.5]],
      ...     covariance_type="diag")
      >>> params.means.shape, params.transition_matrix.shape
      ((2, 1), (2, 2))
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


# ----------------------------------------------------------------------------------
# The conjugate prior: normal-inverse-Wishart form, every covariance type.


class GaussianPrior(NamedTuple):
    """Conjugate prior of Gaussian means and covariances (normal-inverse-Wishart
    form), for every covariance type; hmmlearn's ``GaussianHMM`` prior.

    Per component ``k``, with precision ``P_k = Σ_k⁻¹``, the log density is (up to
    a constant that does not depend on the params)

        −(λ_k/2) (μ_k − m_k)ᵀ P_k (μ_k − m_k) − ½ tr(Ψ_k P_k) − (ν_k/2) log det Σ_k,

    and the MAP M-step, from the expected counts ``n_k``, sums and scatter
    ``S_k = Σ_n r_nk (x_n − μ_k)(x_n − μ_k)ᵀ``, is

        μ_k = (λ_k m_k + Σ_n r_nk x_n) / (λ_k + n_k),
        Σ_k = (Ψ_k + S_k + λ_k (μ_k − m_k)(μ_k − m_k)ᵀ) / (n_k + ν_k),

    plus ``reg_covar`` on the diagonal (set ``reg_covar=0`` for the exact MAP).
    ``diag``: the same per feature with ``Ψ_k = diag(ψ_k)``; ``spherical``: one
    variance, ``Ψ_k = ψ_k I``, ``σ²_k = (D ψ_k + tr S_k + λ_k |μ_k − m_k|²) /
    (D (n_k + ν_k))``; ``tied``: one Σ with one ``Ψ`` and ``ν``, ``Σ = (Ψ + Σ_k
    (S_k + λ_k (μ_k − m_k)(μ_k − m_k)ᵀ)) / (Σ_k n_k + ν)``. A standard
    NIW(m, κ, Ψ, dof) is ``GaussianPrior(m, κ, Ψ, dof + D + 2)``
    (``jaxem.priors.normal_inverse_wishart``).

    Attributes (numbers or arrays, in data units; arrays are broadcast):
      means: ``m``: a scalar, ``[D]`` or ``[K, D]``.
      means_weight: ``λ >= 0`` (pseudo-observations at ``m``): a scalar or ``[K]``.
      covariances: ``Ψ`` (a pseudo-scatter, positive semi-definite): a scalar
        ``s`` (``Ψ = s I``) or the type's shape: ``[D, D]`` or ``[K, D, D]``
        (full), ``[D, D]`` (tied), ``[D]`` or ``[K, D]`` (diag), ``[K]``
        (spherical).
      covariances_weight: ``ν >= 0`` (pseudo-observations of the covariance): a
        scalar or ``[K]`` (tied: a scalar).
    """

    means: object = 0.0
    means_weight: object = 0.0
    covariances: object = 0.0
    covariances_weight: object = 0.0


def _dense_scales(psi, k, d):
    return jnp.broadcast_to(psi * jnp.eye(d, dtype=psi.dtype) if psi.ndim == 0 else psi, (k, d, d))


def _tied_scales(psi, k, d):
    return _dense_scales(psi, k, d) / k


def _diag_scales(psi, k, d):
    return jnp.broadcast_to(psi, (k, d))[:, :, None] * jnp.eye(d, dtype=psi.dtype)[None]


def _spherical_scales(psi, k, d):
    return jnp.broadcast_to(psi, (k,))[:, None, None] * jnp.eye(d, dtype=psi.dtype)[None]


def _upper_entries(matrices):
    i, j = np.triu_indices(matrices.shape[-1])
    return matrices[:, i, j]


def _diagonals(matrices):
    return jnp.diagonal(matrices, axis1=1, axis2=2)


def _traces(matrices):
    return jnp.trace(matrices, axis1=1, axis2=2)[:, None]


def _triangular_log_det(factor, k, d):
    return jnp.broadcast_to(2.0 * jnp.sum(jnp.log(jnp.abs(jnp.diagonal(factor, axis1=-2, axis2=-1))), axis=-1), (k,))


def _diag_log_det(factor, k, d):
    return 2.0 * jnp.sum(jnp.log(jnp.abs(factor)), axis=1)


def _spherical_log_det(factor, k, d):
    return 2.0 * d * jnp.log(jnp.abs(factor))


class PriorLayout(NamedTuple):
    """How a covariance type lays out ``GaussianPrior`` terms.

    Attributes:
      scales: ``(psi, k, d) -> [K, D, D]`` per-component ``Ψ_k`` (tied: ``Ψ / K``
        each, so sums over components count ``Ψ`` once).
      second: ``[K, D, D] -> [K, Q]`` matrices in the type's quadratic-feature layout.
      log_det_precision: ``(factor, k, d) -> [K]`` ``log det P_k``.
      pooled: whether all components share one covariance (tied).
    """

    scales: object
    second: object
    log_det_precision: object
    pooled: bool = False


PRIOR_LAYOUTS = {
    "full": PriorLayout(_dense_scales, _upper_entries, _triangular_log_det),
    "tied": PriorLayout(_tied_scales, _upper_entries, _triangular_log_det, pooled=True),
    "diag": PriorLayout(_diag_scales, _diagonals, _diag_log_det),
    "spherical": PriorLayout(_spherical_scales, _traces, _spherical_log_det),
}


def prior_terms(prior: GaussianPrior, k: int, d: int, covariance: Covariance, dtype):
    """``(m [K, D], λ [K], Ψ [K, D, D], ν [K])`` of ``prior`` in ``dtype`` (tied:
    ``Ψ`` and ``ν`` split evenly over the K components)."""
    layout = PRIOR_LAYOUTS[covariance.name]
    means = jnp.broadcast_to(jnp.asarray(prior.means, dtype), (k, d))
    means_weight = jnp.broadcast_to(jnp.asarray(prior.means_weight, dtype), (k,))
    scales = layout.scales(jnp.asarray(prior.covariances, dtype), k, d)
    weight = jnp.asarray(prior.covariances_weight, dtype)
    weight = jnp.broadcast_to(weight / k if layout.pooled else weight, (k,))
    return means, means_weight, scales, weight


def map_maximize(statistics: Array, features: GaussianFeatures, means_template: Array, covariance: Covariance,
                 reg_covar: float, prior: GaussianPrior):
    """The MAP M-step under ``prior`` (``GaussianPrior``): ``(means, precisions_cholesky)``.

    The prior's pseudo-statistics (in the standardized coordinates of
    ``features``, about the centre the statistics were taken about:
    ``gaussian_centred.split``) are added to the expected statistics: ``λ m`` to the sums,
    ``λ quad(m) + Ψ`` to the second moments; the maximum-likelihood maximizer of
    those, with mean count ``n + λ``, gives the covariance scaled by
    ``(n + ν) / (n + λ)``, which is undone on the factor. ``reg_covar`` is
    folded into the second moments, ``(n + ν) reg``, so it adds to the variances.
    """
    dtype = statistics.dtype
    k, d = statistics.shape[0], features.x.shape[-1]
    statistics, centre = gaussian_centred.split(statistics, d, 1 + d + covariance.n_quadratic(d))
    layout = PRIOR_LAYOUTS[covariance.name]
    prior_means, means_weight, scales, covariances_weight = prior_terms(prior, k, d, covariance, dtype)
    scale, shift = features.scale.astype(dtype), features.shift.astype(dtype)
    prior_means = (prior_means - shift[None, :]) / scale[None, :] - centre  # about each component's centre
    scales = scales / (scale[:, None] * scale[None, :])[None]
    reg = jnp.asarray(reg_covar, dtype) / (scale * scale)
    counts = statistics[:, 0] + tiny_count(dtype)
    mean_counts = counts + means_weight
    covariance_counts = counts + covariances_weight
    means = (statistics[:, 1 : d + 1] + means_weight[:, None] * prior_means) / mean_counts[:, None]
    pseudo = scales + covariance_counts[:, None, None] * jnp.diag(reg)[None]
    second = statistics[:, d + 1 :] + means_weight[:, None] * covariance.quadratic(prior_means) + layout.second(pseudo)
    factor = covariance.maximize(second, means, mean_counts, jnp.zeros_like(reg))
    ratio = jnp.sum(mean_counts) / jnp.sum(covariance_counts) if layout.pooled else mean_counts / covariance_counts
    factor = factor / jnp.sqrt(ratio).reshape((-1,) + (1,) * (factor.ndim - 1))
    means = (centre + means) * scale[None, :] + shift[None, :]
    factor = covariance.scale_rows(factor, 1.0 / scale)
    return means.astype(means_template.dtype), factor.astype(means_template.dtype)


def log_prior(means: Array, precisions_cholesky: Array, covariance: Covariance, prior: GaussianPrior) -> Array:
    """The log density of ``prior`` at ``(means [K, D], precisions_cholesky)``
    (original units, up to a constant): see ``GaussianPrior``."""
    k, d = means.shape
    dtype = means.dtype
    layout = PRIOR_LAYOUTS[covariance.name]
    prior_means, means_weight, scales, covariances_weight = prior_terms(prior, k, d, covariance, dtype)
    precisions = covariance.precision_matrices(precisions_cholesky, k, d)
    diff = means - prior_means
    quadratic = jnp.einsum("ki,kij,kj->k", diff, precisions, diff)
    trace = jnp.einsum("kij,kji->k", scales, precisions)
    log_det = layout.log_det_precision(precisions_cholesky, k, d)
    return jnp.sum(-0.5 * means_weight * quadratic - 0.5 * trace + 0.5 * covariances_weight * log_det)


def check_prior(prior, covariance: Covariance, k: int) -> GaussianPrior:
    """``prior`` (a ``GaussianPrior``, or its fields as a plain tuple, as read back
    from a saved model) checked, with float64 NumPy fields (``ValueError``/
    ``TypeError`` naming the field)."""
    fields = validation.prior_fields(prior, GaussianPrior)._asdict()
    for name in ("means_weight", "covariances_weight"):
        if np.any(fields[name] < 0):
            raise ValueError(f"prior.{name} must be >= 0")
    shapes = {"means": ((), (None,), (k, None)), "means_weight": ((), (k,)),
              "covariances_weight": ((),) if covariance.name == "tied" else ((), (k,))}
    shapes["covariances"] = {
        "full": ((), (None, None), (k, None, None)),
        "tied": ((), (None, None)),
        "diag": ((), (None,), (k, None)),
        "spherical": ((), (k,)),
    }[covariance.name]
    for name, allowed in shapes.items():
        shape = fields[name].shape
        if not any(len(shape) == len(a) and all(w is None or w == s for w, s in zip(a, shape)) for a in allowed):
            expected = " or ".join(str(tuple("D" if w is None else w for w in a)) for a in allowed)
            raise ValueError(
                f"prior.{name} has shape {shape}; for covariance_type={covariance.name!r} and {k} components "
                f"it must have shape {expected}"
            )
    psi = fields["covariances"]
    dense = covariance.name in ("full", "tied") and psi.ndim >= 2
    if dense and psi.shape[-1] != psi.shape[-2]:
        raise ValueError(f"prior.covariances must hold square matrices, got shape {psi.shape}")
    if dense:
        if not np.allclose(psi, np.swapaxes(psi, -1, -2)) or np.any(np.linalg.eigvalsh(psi) < -1e-12 * np.max(np.abs(psi))):
            raise ValueError("prior.covariances must be symmetric positive semi-definite")
    elif np.any(psi < 0):
        raise ValueError("prior.covariances must be >= 0")
    return GaussianPrior(**fields)


def check_prior_width(prior: GaussianPrior, covariance: Covariance, d: int) -> None:
    """``ValueError`` unless the feature axes of a checked ``prior`` have ``d`` entries."""
    feature_axes = {"means": 1, "covariances": {"full": 2, "tied": 2, "diag": 1, "spherical": 0}[covariance.name]}
    for name, axes in feature_axes.items():
        shape = np.shape(getattr(prior, name))
        if axes and len(shape) >= axes and any(s != d for s in shape[len(shape) - axes :]):
            raise ValueError(f"prior.{name} has shape {shape}, but the data have {d} features")
