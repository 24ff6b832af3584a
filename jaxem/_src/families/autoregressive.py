"""The linear autoregressive family: the emissions of an AR-HMM.

In state ``k``, ``x_t = A_k1 x_t-1 + ... + A_kp x_t-p + b_k + ε_t`` with
``ε_t ~ N(0, Σ_k)``, ``Σ_k`` of any covariance type. With the regressor
``r_t = [1, x_t-1, ..., x_t-p]`` (``R = 1 + p D``) and ``W_k = [b_k, A_k1, ..., A_kp]
[D, R]``, the log density is an exponential family in the features

    T_t = [1, upper(x_t x_tᵀ), vec(x_t r_tᵀ), upper(r_t r_tᵀ)],

with coefficients ``[c_k, -P_k/2 (upper), P_k W_k, -W_kᵀ P_k W_k / 2 (upper)]``, so the
generic HMM builder (``jaxem/_src/hmm.py``) gives the log emission table (one
contraction) and the expected statistics, and the M-step is weighted least
squares: ``W_k = S_xr,k S_rr,k⁻¹`` (Cholesky solve; a ridge of 10·eps·trace keeps
``S_rr`` invertible for a state with almost no steps), ``Σ_k`` the weighted
residual covariance (reduced to the covariance type, pooled for ``tied``) plus
``reg_covar``. Sharing the regressor across the D outputs makes this the exact
maximizer for every covariance type.

Numerics: the data are centred and scaled per feature once (``x' = (x - c) / s``);
statistics are formed from ``x'`` and the params converted in and out.

The first ``p`` steps of each sequence have no lags: they are conditioned on
(their features are zero, so they contribute no emission and no statistics; the
states still run through them). ``sample`` starts from zero lags.
"""

from __future__ import annotations

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
from jaxem._src.families.covariance import Covariance, covariances_from_factor
from jaxem._src.families.gaussian import mean_padded


class ARHMMParams(NamedTuple):
    """Parameters of a linear autoregressive HMM (original units).

    Attributes:
      initial_probs: ``[K]`` initial state probabilities.
      transition_matrix: ``[K, K]``, row ``i`` is p(z_t = · | z_t-1 = i).
      coefficients: ``[K, D, p D]``, ``[A_k1, ..., A_kp]``: block ``j`` multiplies
        ``x_t-j`` (j = 1..p).
      intercepts: ``[K, D]`` the ``b_k``.
      precisions_cholesky: factor ``U`` of the noise precisions, ``P = U Uᵀ``, as in
        ``GaussianHMMParams``: ``[K, D, D]`` full, ``[D, D]`` tied, ``[K, D]`` diag,
        ``[K]`` spherical.
    """

    initial_probs: Array
    transition_matrix: Array
    coefficients: Array
    intercepts: Array
    precisions_cholesky: Array

    __repr__ = params_repr


class ARFeatures(NamedTuple):
    """Prepared AR-HMM data.

    Attributes:
      stats: ``[..., F]`` the features ``T_t`` of the standardized data (zero on
        the first ``p`` steps of each sequence and on padding).
      x: ``[..., D]`` the standardized observations ``x'``.
      shift: ``[D]`` the centre ``c``.
      scale: ``[D]`` the scale ``s``.
    """

    stats: Array
    x: Array
    shift: Array
    scale: Array


def _upper(d: int):
    return np.triu_indices(d)


def _upper_products(a: Array) -> Array:
    """``[..., n(n+1)/2]`` the upper triangle of ``a aᵀ`` for ``a [..., n]``."""
    i, j = _upper(a.shape[-1])
    return a[..., i] * a[..., j]


def _from_upper(values: Array, n: int) -> Array:
    """Symmetric ``[..., n, n]`` from its upper triangle ``[..., n(n+1)/2]``."""
    i, j = _upper(n)
    out = jnp.zeros(values.shape[:-1] + (n, n), values.dtype)
    return out.at[..., i, j].set(values).at[..., j, i].set(values)


def _upper_coefficients(matrix: Array) -> Array:
    """``-M/2`` for ``M [K, n, n]`` as coefficients of the upper-triangle products
    (off-diagonal doubled)."""
    n = matrix.shape[-1]
    i, j = _upper(n)
    return -matrix[:, i, j] * jnp.asarray(np.where(i == j, 0.5, 1.0), matrix.dtype)[None, :]


def lagged(obs: Array, mask: Array, order: int) -> Array:
    """HMM encoding: ``obs [B, T, D]`` as ``[B, T, (p + 1) D + 1]``, the step, its
    ``p`` lags (zeros before the start) and a flag, 1 where the step has all its
    lags inside the sequence. Padded steps are set to the mean of the valid ones."""
    x = mean_padded(obs, mask)
    t = x.shape[1]
    lags = [jnp.concatenate([jnp.zeros_like(x[:, :j]), x[:, : t - j]], axis=1) for j in range(1, order + 1)]
    flag = (mask & (jnp.arange(t)[None, :] >= order)).astype(x.dtype)[..., None]
    return jnp.concatenate([x] + lags + [flag], axis=-1)


def autoregressive_family(order: int, covariance: Covariance, reg_covar: float) -> ExpFamily:
    """The AR ``ExpFamily`` of order ``p`` (reads/writes ``coefficients``,
    ``intercepts``, ``precisions_cholesky``)."""

    def prepare(x):
        if is_prepared(x, ARFeatures):
            return x
        x = validation.to_float(x)
        d = (x.shape[-1] - 1) // (order + 1)
        flag = x[..., -1:]
        current = x[..., :d]
        lead = (1,) * (x.ndim - 1)
        pooled = tuple(range(x.ndim - 1))
        count = jnp.maximum(jnp.sum(flag), 1.0)
        shift = jnp.sum(current * flag, axis=pooled) / count
        spread = jnp.sqrt(jnp.sum(((current - shift.reshape(lead + (d,))) ** 2) * flag, axis=pooled) / count)
        scale = jnp.where((spread > 0) & jnp.isfinite(spread), spread, jnp.ones_like(spread))
        standardized = (x[..., :-1] - jnp.tile(shift, order + 1).reshape(lead + (-1,))) / jnp.tile(scale, order + 1).reshape(lead + (-1,))
        xs = standardized[..., :d]
        regressor = jnp.concatenate([jnp.ones_like(flag), standardized[..., d:]], axis=-1)
        outer = (xs[..., :, None] * regressor[..., None, :]).reshape(xs.shape[:-1] + (-1,))
        stats = jnp.concatenate([jnp.ones_like(flag), _upper_products(xs), outer, _upper_products(regressor)], axis=-1)
        return ARFeatures(stats * flag, xs, shift, scale)

    def standardized_params(params, features):
        dtype = features.stats.dtype
        shift, scale = features.shift, features.scale
        k, d = params.intercepts.shape
        blocks = params.coefficients.astype(dtype).reshape(k, d, order, d)
        # A'_j = S⁻¹ A_j S,  b' = S⁻¹ (b - c + Σ_j A_j c)
        blocks_s = blocks * scale[None, None, None, :] / scale[None, :, None, None]
        drift = jnp.einsum("kajb,b->ka", blocks, shift)
        intercepts = (params.intercepts.astype(dtype) - shift[None, :] + drift) / scale[None, :]
        weights = jnp.concatenate([intercepts[:, :, None], blocks_s.reshape(k, d, order * d)], axis=2)  # [K, D, R]
        factor = covariance.scale_rows(params.precisions_cholesky.astype(dtype), scale)
        return weights, covariance.precision_matrices(factor, k, d)

    def coefficients(params, features):
        weights, precision = standardized_params(params, features)
        k, d, _ = weights.shape
        log_det = 0.5 * jnp.linalg.slogdet(precision)[1]
        constant = log_det - 0.5 * d * math.log(2.0 * math.pi) - jnp.sum(jnp.log(features.scale))
        linear = jnp.einsum("kab,kbr->kar", precision, weights).reshape(k, -1)
        quadratic_r = jnp.einsum("kar,kab,kbs->krs", weights, precision, weights)
        return jnp.concatenate(
            [constant[:, None], _upper_coefficients(precision), linear, _upper_coefficients(quadratic_r)], axis=1
        )

    def maximize(statistics, features, params):
        dtype = statistics.dtype
        d = features.x.shape[-1]
        r = 1 + order * d
        k = statistics.shape[0]
        n_xx = d * (d + 1) // 2
        counts = statistics[:, 0] + tiny_count(dtype)
        s_xx = _from_upper(statistics[:, 1 : 1 + n_xx], d)
        s_xr = statistics[:, 1 + n_xx : 1 + n_xx + d * r].reshape(k, d, r)
        s_rr = _from_upper(statistics[:, 1 + n_xx + d * r :], r)
        eye = jnp.eye(r, dtype=dtype)
        ridge = 10.0 * float(jnp.finfo(dtype).eps) * (jnp.trace(s_rr, axis1=1, axis2=2) / r + 1.0)
        lower = jnp.linalg.cholesky(s_rr + ridge[:, None, None] * eye[None])
        weights = jnp.swapaxes(jax.vmap(lambda c, b: jax.scipy.linalg.cho_solve((c, True), b))(lower, jnp.swapaxes(s_xr, 1, 2)), 1, 2)
        cross = jnp.einsum("kar,kbr->kab", s_xr, weights)
        residual = s_xx - cross - jnp.swapaxes(cross, 1, 2) + jnp.einsum("kar,krs,kbs->kab", weights, s_rr, weights)
        residual = residual / counts[:, None, None]
        shift, scale = features.shift, features.scale
        covariances = residual * scale[None, :, None] * scale[None, None, :]
        factor = covariance.factor_from_scatter(covariances, counts, reg_covar)
        blocks_s = weights[:, :, 1:].reshape(k, d, order, d)
        blocks = blocks_s * scale[None, :, None, None] / scale[None, None, None, :]
        intercepts = shift[None, :] + scale[None, :] * weights[:, :, 0] - jnp.einsum("kajb,b->ka", blocks, shift)
        out = params.intercepts.dtype
        return params._replace(
            coefficients=blocks.reshape(k, d, order * d).astype(out),
            intercepts=intercepts.astype(out),
            precisions_cholesky=factor.astype(out),
        )

    return ExpFamily(prepare=prepare, coefficients=coefficients, maximize=maximize)


def check_params(params, k: int, d, order: int, covariance: Covariance, role=None) -> None:
    """Shapes (and, when concrete, values) of the AR emission fields."""
    del role
    shape = tuple(jnp.shape(params.intercepts))
    if len(shape) != 2 or shape[0] != k or (d is not None and shape[1] != d):
        raise ValueError(f"params.intercepts must have shape ({k}, {'D' if d is None else d}) for n_states={k}, got {shape}")
    d = shape[1]
    if tuple(jnp.shape(params.coefficients)) != (k, d, order * d):
        raise ValueError(f"params.coefficients must have shape ({k}, {d}, {order * d}) for order={order}, got {jnp.shape(params.coefficients)}")
    expected = covariance.factor_shape(k, d)
    if tuple(jnp.shape(params.precisions_cholesky)) != expected:
        raise ValueError(
            f"params.precisions_cholesky has shape {jnp.shape(params.precisions_cholesky)}, "
            f"expected {expected} for covariance_type={covariance.name!r}"
        )
    for name in ("coefficients", "intercepts", "precisions_cholesky"):
        validation.check_param_values(getattr(params, name), name)
    if validation.is_concrete(params.precisions_cholesky) and not bool(
        jnp.all(covariance.factor_diagonal(jnp.asarray(params.precisions_cholesky)) != 0)
    ):
        raise ValueError("params.precisions_cholesky must be invertible (non-zero diagonal)")


def component(order: int, covariance: Covariance, reg_covar: float) -> Component:
    """The AR ``Component`` for ``component_hmm`` (its ``draw`` is not used: an AR
    sequence is sampled step by step, ``sample_sequence``)."""

    def zeros(k, d, dtype):
        return {
            "coefficients": jnp.zeros((k, d, order * d), dtype),
            "intercepts": jnp.zeros((k, d), dtype),
            "precisions_cholesky": jnp.zeros(covariance.factor_shape(k, d), dtype),
        }

    def check(params, k, d, role):
        check_params(params, k, d, order, covariance, role)

    def n_parameters(params) -> int:
        k, d = jnp.shape(params.intercepts)
        return k * d * (order * d + 1) + covariance.n_parameters(k, d)

    def encode(obs, mask):
        return lagged(obs, mask, order)

    return Component(
        family=autoregressive_family(order, covariance, reg_covar),
        features_type=ARFeatures,
        zeros=zeros,
        check_params=check,
        n_parameters=n_parameters,
        encode=encode,
    )


def sample_sequence(key: Array, params: ARHMMParams, n: int, order: int, covariance: Covariance):
    """``(x [n, D], z [n])``: one AR-HMM sequence, from zero lags."""
    k, d = params.intercepts.shape
    lower = jnp.linalg.cholesky(covariances_from_factor(params.precisions_cholesky, k, d, covariance))
    log_transition = jnp.log(params.transition_matrix)
    state_key, first_key, noise_key = jax.random.split(key, 3)
    first = jax.random.categorical(first_key, jnp.log(params.initial_probs))
    keys = jax.random.split(state_key, n)
    noise = jax.random.normal(noise_key, (n, d), params.intercepts.dtype)

    def step(carry, inputs):
        state, lags = carry
        t, step_key, eps = inputs
        state = jnp.where(t == 0, first, jax.random.categorical(step_key, log_transition[state]))
        x = params.intercepts[state] + params.coefficients[state] @ lags + lower[state] @ eps
        lags = jnp.concatenate([x, lags[: (order - 1) * d]])
        return (state, lags), (x, state)

    lags = jnp.zeros((order * d,), params.intercepts.dtype)
    _, (x, z) = jax.lax.scan(step, (first, lags), (jnp.arange(n), keys, noise))
    return x, z
