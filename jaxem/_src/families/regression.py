"""The linear-regression family: ``y`` given ``x``, a mixture of experts with constant gating.

    y_n | z_n = k  ~  N(a_k + x_nᵀ b_k, σ_k²),   z_n ~ Categorical(π).

It is an exponential-family mixture in ``(x, y)``: with the standardized design
``u = [1, x']`` and response ``y'``, the features are
``T = [1, y'², y' u, upper(u uᵀ)]``, so log-potentials are one matrix product and
the M-step is weighted least squares from ``posteriorᵀ @ T``:
``β_k = G_k⁻¹ c_k`` with ``G_k = Σ r_nk u_n u_nᵀ``, ``c_k = Σ r_nk y'_n u_n``, and
``σ_k² = Σ r_nk (y'_n − u_nᵀ β_k)² / Σ r_nk + reg_variance``. A ridge of 10·eps·trace
keeps ``G_k`` invertible for a component with (almost) no points.
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
from jaxem._src.display import params_repr
from jaxem._src.component import Component, is_prepared
from jaxem._src.expfam import ExpFamily, tiny_count


class RegressionMixtureParams(NamedTuple):
    """Parameters of a mixture of linear regressions (original units).

    Attributes:
      weights: ``[K]`` mixing weights.
      coefs: ``[K, P]`` regression coefficients of each component.
      intercepts: ``[K]`` intercepts (zeros when ``fit_intercept=False``).
      variances: ``[K]`` noise variances.
    """

    weights: Array
    coefs: Array
    intercepts: Array
    variances: Array

    __repr__ = params_repr


class RegressionFeatures(NamedTuple):
    """Prepared ``(x, y)``: ``stats [N, F]``, standardized ``design [N, P']`` and
    ``y [N]``, and the shifts/scales used (``x_shift, x_scale [P]``, ``y_shift, y_scale []``)."""

    stats: Array
    design: Array
    y: Array
    x_shift: Array
    x_scale: Array
    y_shift: Array
    y_scale: Array


def _spread(values: Array, centre: Array) -> Array:
    spread = jnp.sqrt(jnp.mean((values - centre) ** 2, axis=0))
    return jnp.where((spread > 0) & jnp.isfinite(spread), spread, jnp.ones_like(spread))


def regression_features(data, fit_intercept: bool) -> RegressionFeatures:
    """Standardizes ``(x [N, P], y [N])`` and builds the sufficient statistics."""
    if is_prepared(data, RegressionFeatures):
        if data.design.shape[1] != data.x_scale.shape[0] + int(fit_intercept):
            raise ValueError(f"x holds RegressionFeatures prepared with fit_intercept={not fit_intercept}")
        return data
    x, y = data
    x = validation.to_float(x)
    y = validation.to_float(y).astype(x.dtype)
    if fit_intercept:
        x_shift, y_shift = jnp.mean(x, axis=0), jnp.mean(y)
    else:  # centring would add an intercept the model does not have
        x_shift, y_shift = jnp.zeros(x.shape[1:], x.dtype), jnp.zeros((), x.dtype)
    x_scale = _spread(x, x_shift[None, :])
    y_scale = _spread(y, y_shift)
    xs = (x - x_shift[None, :]) / x_scale[None, :]
    ys = (y - y_shift) / y_scale
    ones = jnp.ones((x.shape[0], 1), x.dtype)
    design = jnp.concatenate([ones, xs], axis=1) if fit_intercept else xs
    i, j = np.triu_indices(design.shape[1])
    stats = jnp.concatenate([ones, (ys * ys)[:, None], ys[:, None] * design, design[:, i] * design[:, j]], axis=1)
    return RegressionFeatures(stats, design, ys, x_shift, x_scale, y_shift, y_scale)


def _to_standard(params: RegressionMixtureParams, f: RegressionFeatures, fit_intercept: bool):
    dtype = f.stats.dtype
    coefs = params.coefs.astype(dtype)
    slopes = coefs * f.x_scale[None, :] / f.y_scale
    if not fit_intercept:
        return slopes, params.variances.astype(dtype) / (f.y_scale * f.y_scale)
    offset = (params.intercepts.astype(dtype) - f.y_shift + coefs @ f.x_shift) / f.y_scale
    beta = jnp.concatenate([offset[:, None], slopes], axis=1)
    return beta, params.variances.astype(dtype) / (f.y_scale * f.y_scale)


class RegressionPrior(NamedTuple):
    """Conjugate normal-inverse-gamma prior of each component's coefficients and
    noise variance (the intercepts stay flat).

    Per component, with noise variance ``σ²``, the log density is (up to a constant)

        −(λ / (2σ²)) |b − m|² − ψ / (2σ²) − (ν/2) log σ²,

    i.e. ``b | σ² ~ N(m, σ² / λ)`` (a ridge towards ``m``) and an inverse-gamma
    on ``σ²``; the MAP M-step is the weighted ridge regression
    ``argmin Σ r (y − a − xᵀb)² + λ |b − m|²`` and
    ``σ² = (ψ + RSS + λ |b − m|²) / (Σ r + ν)`` (plus ``reg_variance``).

    Attributes (original units):
      coefs: ``m``: a scalar, ``[P]`` or ``[K, P]``.
      coefs_weight: ``λ >= 0``: a scalar or ``[K]``.
      variance: ``ψ >= 0`` (a pseudo residual sum of squares, units of ``y²``): a scalar or ``[K]``.
      variance_weight: ``ν >= 0`` (pseudo-observations): a scalar or ``[K]``.
    """

    coefs: object = 0.0
    coefs_weight: object = 0.0
    variance: object = 0.0
    variance_weight: object = 0.0


def check_prior(prior, k: int, name: str = "prior"):
    """A ``RegressionPrior`` (or its fields as a plain tuple) checked, with float64
    NumPy fields; ``None`` passes."""
    if prior is None:
        return None
    prior = validation.prior_fields(prior, RegressionPrior, name)
    for field, value in zip(prior._fields, prior):
        if field != "coefs" and (np.any(value < 0) or value.ndim > 1 or (value.ndim == 1 and value.shape[0] not in (1, k))):
            raise ValueError(f"{name}.{field} must be >= 0, a scalar or of shape ({k},); got {value.tolist()!r}")
    if prior.coefs.ndim > 2 or (prior.coefs.ndim == 2 and prior.coefs.shape[0] not in (1, k)):
        raise ValueError(f"{name}.coefs has shape {prior.coefs.shape}, which does not broadcast to ({k}, P)")
    return prior


def _standard_ridge(prior: RegressionPrior, f: RegressionFeatures, k: int, fit_intercept: bool):
    """``(weights [K, P'], targets [K, P'])``: the prior's ridge on the standardized
    coefficients ``β'`` (``λ / x_scale²`` towards ``m · x_scale / y_scale``; 0 on the intercept)."""
    dtype = f.stats.dtype
    n_covariates = f.x_scale.shape[0]
    weights = jnp.broadcast_to(jnp.asarray(prior.coefs_weight, dtype), (k,))[:, None] / (f.x_scale * f.x_scale)[None, :]
    targets = jnp.broadcast_to(jnp.asarray(prior.coefs, dtype), (k, n_covariates)) * f.x_scale[None, :] / f.y_scale
    if fit_intercept:
        zeros = jnp.zeros((k, 1), dtype)
        weights, targets = jnp.concatenate([zeros, weights], axis=1), jnp.concatenate([zeros, targets], axis=1)
    return weights, targets


def regression_family(fit_intercept: bool, reg_variance: float, prior: RegressionPrior | None = None) -> ExpFamily:
    """The regression ``ExpFamily``; with a checked ``RegressionPrior``, the MAP
    M-step and its ``log_prior``."""

    def prepare(data):
        features = regression_features(data, fit_intercept)
        n_covariates = features.x_scale.shape[0]
        if prior is not None and np.ndim(prior.coefs) >= 1 and np.shape(prior.coefs)[-1] != n_covariates:
            raise ValueError(f"prior.coefs has shape {np.shape(prior.coefs)}, but x has {n_covariates} covariates")
        return features

    def coefficients(params, f):
        beta, variance = _to_standard(params, f, fit_intercept)
        p = beta.shape[1]
        i, j = np.triu_indices(p)
        pair = jnp.asarray(np.where(i == j, 1.0, 2.0), f.stats.dtype)
        constant = -0.5 * jnp.log(2.0 * math.pi * variance) - jnp.log(f.y_scale)
        inv = 1.0 / variance
        return jnp.concatenate(
            [
                constant[:, None],
                -0.5 * inv[:, None],
                beta * inv[:, None],
                -0.5 * inv[:, None] * pair[None, :] * beta[:, i] * beta[:, j],
            ],
            axis=1,
        )

    def maximize(statistics, f, params):
        dtype = statistics.dtype
        p = f.design.shape[1]
        counts = statistics[:, 0] + tiny_count(dtype)
        syy, syu = statistics[:, 1], statistics[:, 2 : 2 + p]
        i, j = np.triu_indices(p)
        pairs = statistics[:, 2 + p :]
        gram = jnp.zeros((statistics.shape[0], p, p), dtype).at[:, i, j].set(pairs).at[:, j, i].set(pairs)
        trace = jnp.trace(gram, axis1=1, axis2=2)
        ridge = 10.0 * float(jnp.finfo(dtype).eps) * trace + tiny_count(dtype)
        eye = jnp.eye(p, dtype=dtype)
        k = statistics.shape[0]
        penalty_weights, targets = jnp.zeros((k, p), dtype), jnp.zeros((k, p), dtype)
        if prior is not None:
            penalty_weights, targets = _standard_ridge(prior, f, k, fit_intercept)
        system = gram + ridge[:, None, None] * eye[None, :, :] + penalty_weights[:, :, None] * eye[None, :, :]
        beta = jnp.linalg.solve(system, (syu + penalty_weights * targets)[:, :, None])[:, :, 0]
        fitted = jnp.einsum("ki,kij,kj->k", beta, gram, beta)
        rss = jnp.maximum(syy - 2.0 * jnp.sum(beta * syu, axis=1) + fitted, 0.0)
        if prior is None:
            variance = rss / counts * (f.y_scale * f.y_scale) + reg_variance
        else:
            rss = rss + jnp.sum(penalty_weights * (beta - targets) ** 2, axis=1)
            psi = jnp.broadcast_to(jnp.asarray(prior.variance, dtype), (k,))
            nu = jnp.broadcast_to(jnp.asarray(prior.variance_weight, dtype), (k,))
            variance = (psi + rss * (f.y_scale * f.y_scale)) / (counts + nu) + reg_variance
        slopes = beta[:, 1:] if fit_intercept else beta
        coefs = slopes * f.y_scale / f.x_scale[None, :]
        if fit_intercept:
            intercepts = f.y_shift + f.y_scale * beta[:, 0] - coefs @ f.x_shift
        else:
            intercepts = jnp.zeros_like(variance)
        dt = params.coefs.dtype
        return params._replace(coefs=coefs.astype(dt), intercepts=intercepts.astype(dt), variances=variance.astype(dt))

    def log_prior(params):
        k, n_covariates = params.coefs.shape
        dtype = params.coefs.dtype
        targets = jnp.broadcast_to(jnp.asarray(prior.coefs, dtype), (k, n_covariates))
        weight, psi, nu = (jnp.broadcast_to(jnp.asarray(v, dtype), (k,)) for v in prior[1:])
        squares = jnp.sum((params.coefs - targets) ** 2, axis=1)
        variances = params.variances
        return jnp.sum(-(weight * squares + psi) / (2.0 * variances) - 0.5 * nu * jnp.log(variances))

    return ExpFamily(
        prepare=prepare,
        coefficients=coefficients,
        maximize=maximize,
        per_row=("stats", "design", "y"),
        log_prior=None if prior is None else log_prior,
        log_densities=functools.partial(log_densities, fit_intercept=fit_intercept),
    )


def log_densities(params: RegressionMixtureParams, f: RegressionFeatures, offsets=None, *, fit_intercept: bool) -> Array:
    """``[N, K]`` component log-densities ``log N(y | a_k + xᵀ b_k, σ_k²)`` (plus
    ``offsets [K]``, e.g. log weights) from the explicit residuals ``y' − u β'_k``.

    The product ``T @ coefficients.T`` expands the square, ``y'² − 2 y' u·β' +
    (u·β')²``, each term ``O(|y'|²)`` while their sum is ``O(σ'²)``: in float32 a
    component with a small noise against the spread of ``y`` was off by ``eps ·
    |y'|² / σ'²`` nats per row (1.5 nats on 300 rows, sd 0.1 against a spread of
    35; issue 12). The residual's rounding is ``eps · |y'| / σ'``, and the work
    (``[N, P'] @ [P', K]``) is less than the product's (``[N, F] @ [F, K]``)."""
    beta, variance = _to_standard(params, f, fit_intercept)
    residual = f.y[..., None] - f.design @ beta.T
    lead = (1,) * (residual.ndim - 1)
    constant = -0.5 * jnp.log(2.0 * math.pi * variance) - jnp.log(f.y_scale)
    if offsets is not None:
        constant = constant + offsets.astype(constant.dtype)
    return constant.reshape(lead + (-1,)) - 0.5 * residual * residual / variance.reshape(lead + (-1,))


def component(fit_intercept: bool, reg_variance: float, prior: RegressionPrior | None = None) -> Component:
    """The regression ``Component`` (fields ``coefs``, ``intercepts``, ``variances``),
    with an optional checked ``RegressionPrior``."""

    def zeros(k, p, dtype):
        return {
            "coefs": jnp.zeros((k, p), dtype),
            "intercepts": jnp.zeros((k,), dtype),
            "variances": jnp.ones((k,), dtype),
        }

    def check_data(data, role):
        x, y = _check_pair(data)
        return (x, y), x.shape[0], x.shape[1]

    def check_values(data, name):
        for label, values in zip(("x", "y"), data):
            check_squares_finite(values, label)

    def check_params(params, k, p, role):
        if p is not None and tuple(jnp.shape(params.coefs)) != (k, p):
            raise ValueError(f"params.coefs has shape {jnp.shape(params.coefs)}, expected ({k}, {p})")
        for name, expected in (("intercepts", (k,)), ("variances", (k,))):
            if tuple(jnp.shape(getattr(params, name))) != expected:
                raise ValueError(f"params.{name} has shape {jnp.shape(getattr(params, name))}, expected {expected}")
        validation.check_param_values(params.coefs, "coefs")
        validation.check_param_values(params.intercepts, "intercepts")
        validation.check_param_values(params.variances, "variances", positive=True)

    def draw(key, params, labels):
        # The covariates from N(0, I); see sample_regression_response for your own x.
        x_key, e_key = jax.random.split(key)
        x = jax.random.normal(x_key, (labels.shape[0], params.coefs.shape[1]), params.coefs.dtype)
        return x, response(e_key, params, x, labels)

    def n_parameters(params) -> int:
        k, p = jnp.shape(params.coefs)
        return k * (p + int(fit_intercept) + 1)

    return Component(
        family=regression_family(fit_intercept, reg_variance, prior),
        features_type=RegressionFeatures,
        zeros=zeros,
        n_features=_n_covariates,
        check_data=check_data,
        check_values=check_values,
        check_params=check_params,
        draw=draw,
        n_parameters=n_parameters,
        seed_points=_seed_points,
    )


def check_squares_finite(values, name: str) -> None:
    """``ValueError`` when ``values`` are so large that their squares (the M-step's
    sums of squares) overflow their float dtype (float32: beyond ~4.6e18)."""
    values = validation.to_float(values)
    if not jnp.size(values):
        return
    limit = 0.25 * float(np.sqrt(float(jnp.finfo(values.dtype).max)))
    largest = float(jnp.max(jnp.abs(values)))
    if largest > limit:
        raise ValueError(
            f"{name} holds values up to {largest:.3g}, whose squares overflow {values.dtype.name} "
            f"(at most {limit:.3g}); rescale {name} or use float64 (jax_enable_x64)"
        )


def _n_covariates(features: RegressionFeatures) -> int:
    return features.x_scale.shape[0]


def _seed_points(features: RegressionFeatures) -> Array:
    return jnp.concatenate([features.design, features.y[:, None]], axis=1)


def response(key: Array, params: RegressionMixtureParams, x: Array, z: Array) -> Array:
    """``[N]`` responses drawn at covariates ``x [N, P]`` from the components ``z [N]``."""
    noise = jax.random.normal(key, (x.shape[0],), params.coefs.dtype)
    mean = jnp.sum(x * params.coefs[z], axis=1) + params.intercepts[z]
    return mean + jnp.sqrt(params.variances[z]) * noise


def sample_regression_response(key: Array, params: RegressionMixtureParams, x: Array):
    """Draws ``(y [N], z [N])`` from a regression mixture at covariates ``x [N, P]``.

    Examples:
      >>> params = jaxem.models.regression_mixture_params([0.5, 0.5], [[2.0], [-2.0]], [0.0, 1.0], [0.1, 0.1])
      >>> x = jnp.linspace(-1.0, 1.0, 50)[:, None]                # [N, P]
      >>> y, z = jaxem.models.sample_regression_response(jax.random.key(0), params, x)
      >>> y.shape, z.shape
      ((50,), (50,))
    """
    z_key, e_key = jax.random.split(key)
    z = jax.random.categorical(z_key, jnp.log(params.weights), shape=(x.shape[0],))
    return response(e_key, params, x, z), z


def _check_pair(data):
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"data must be a pair (x, y) with x [N, P] and y [N], got {type(data).__name__}")
    x = validation.as_rows(data[0])
    y = validation.as_float_array(data[1], "y", ndim=1)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have one entry per row of x ({x.shape[0]}), got shape {y.shape}")
    return x, y


def regression_mixture_params(weights, coefs, intercepts, variances) -> RegressionMixtureParams:
    """``RegressionMixtureParams`` from ``weights [K]``, ``coefs [K, P]``, ``intercepts [K]``
    and positive ``variances [K]``.

    Examples:
      >>> params = jaxem.models.regression_mixture_params([0.5, 0.5], [[2.0], [-2.0]], [0.0, 1.0], [0.1, 0.1])
      >>> params.coefs.shape
      (2, 1)
    """
    weights = validation.as_float_array(weights, "weights", ndim=1)
    coefs = validation.as_float_array(coefs, "coefs", ndim=2)
    intercepts = validation.as_float_array(intercepts, "intercepts", ndim=1)
    variances = validation.as_float_array(variances, "variances", ndim=1)
    k = coefs.shape[0]
    for name, value in [("weights", weights), ("intercepts", intercepts), ("variances", variances)]:
        if value.shape != (k,):
            raise ValueError(f"{name} must have shape ({k},) to match coefs {coefs.shape}, got {value.shape}")
    if bool(jnp.any(weights < 0)) or abs(float(jnp.sum(weights)) - 1.0) > 1e-4:
        raise ValueError("weights must be non-negative and sum to one")
    if bool(jnp.any(variances <= 0)):
        raise ValueError("variances must be positive")
    dtype = jnp.result_type(weights.dtype, coefs.dtype, intercepts.dtype, variances.dtype)
    return RegressionMixtureParams(*(a.astype(dtype) for a in (weights, coefs, intercepts, variances)))
