"""Mixtures of experts: input-dependent gating over linear-regression experts.

    z_n | x_n ~ Categorical(softmax(W x_n + b)),   y_n | z_n = k, x_n ~ N(A_k x_n + c_k, diag(σ²_k)).

The log-potentials ``[N, K]`` are ``log softmax(W x + b)_k + log N(y | A_k x + c_k, σ²_k)``,
so the E-step is the gradient of their ``logsumexp`` (``jaxem.e_step``). Q separates
into the gating part ``Σ r_nk log softmax(W x_n + b)_k``, concave in ``(W, b)`` and
raised by the gradient M-step (``generic_m_step.maximize``: optax steps, never lowering
Q), and one weighted least-squares problem per expert, solved in closed form. So EM
never lowers the log-likelihood.

Numerics: each expert's least squares is solved about its own weighted means of
``x`` and ``y`` (no offset cancellation), with the Gram matrix scaled to unit diagonal
(Jacobi) and a ridge of ``10 eps``; the residual variances are computed from the
residuals themselves. The gating is optimized on the standardized covariates and
mapped back to the original units.

Shapes: ``N`` rows, ``D`` covariates, ``P`` targets (``y [N]`` is ``P = 1``), ``K`` experts.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jaxem._src import validation
from jaxem._src.base import Array
from jaxem._src.display import params_repr
from jaxem._src.expfam import tiny_count
from jaxem._src.generic_m_step import maximize


class MixtureOfExpertsParams(NamedTuple):
    """Parameters of a mixture of linear experts (original units).

    Attributes:
      gate_weights: ``[K, D]`` gating coefficients ``W``.
      gate_biases: ``[K]`` gating intercepts ``b`` (only differences matter).
      coefs: ``[K, P, D]`` regression coefficients ``A_k`` of each expert.
      intercepts: ``[K, P]`` intercepts ``c_k``.
      variances: ``[K, P]`` noise variances ``σ²_k``.
    """

    gate_weights: Array
    gate_biases: Array
    coefs: Array
    intercepts: Array
    variances: Array

    __repr__ = params_repr


class ExpertsData(NamedTuple):
    """Prepared data: covariates ``x [N, D]`` and targets ``y [N, P]`` in one float dtype."""

    x: Array
    y: Array


def prepare(data) -> ExpertsData:
    """``(x [N, D], y [N] or [N, P])`` as ``ExpertsData`` (prepared data pass unchanged)."""
    if isinstance(data, ExpertsData):
        return data
    x, y = data
    x = validation.to_float(x)
    y = validation.to_float(y).astype(x.dtype)
    return ExpertsData(x, y.reshape(y.shape[0], -1))


def check_pair(data) -> ExpertsData:
    """Raw ``(x, y)`` checked (shapes, finite values) and prepared."""
    if isinstance(data, ExpertsData):
        return data
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"data must be a pair (x, y) with x [N, D] and y [N] or [N, P], got {type(data).__name__}")
    x = validation.as_rows(data[0], "x")
    y = validation.as_float_array(data[1], "y", ndim=(1, 2))
    if y.shape[0] != x.shape[0] or y.size == 0:
        raise ValueError(f"y must have one row per row of x ({x.shape[0]}), got shape {y.shape}")
    return prepare((x, y))


def log_gates(gate_weights: Array, gate_biases: Array, x: Array) -> Array:
    """``[N, K]`` ``log softmax(W x_n + b)``."""
    return jax.nn.log_softmax(x @ gate_weights.T + gate_biases[None, :], axis=1)


def log_experts(params: MixtureOfExpertsParams, data: ExpertsData) -> Array:
    """``[N, K]`` ``log N(y_n | A_k x_n + c_k, diag(σ²_k))``."""
    dtype = data.x.dtype
    mean = jnp.einsum("nd,kpd->nkp", data.x, params.coefs.astype(dtype)) + params.intercepts.astype(dtype)[None, :, :]
    variances = params.variances.astype(dtype)[None, :, :]
    residual = data.y[:, None, :] - mean
    return jnp.sum(-0.5 * (residual * residual / variances + jnp.log(2.0 * math.pi * variances)), axis=2)


def log_potentials(params: MixtureOfExpertsParams, data: ExpertsData) -> Array:
    """``[N, K]`` ``log p(z_n = k | x_n) + log p(y_n | x_n, z_n = k)``."""
    dtype = data.x.dtype
    gates = log_gates(params.gate_weights.astype(dtype), params.gate_biases.astype(dtype), data.x)
    return gates + log_experts(params, data)


def fit_experts(data: ExpertsData, posterior: Array, reg_variance: float):
    """``(coefs [K, P, D], intercepts [K, P], variances [K, P])``: each expert's
    weighted least squares with weights ``posterior[:, k]``."""
    x, y = data
    dtype = x.dtype
    tiny = tiny_count(dtype)
    counts = jnp.sum(posterior, axis=0) + tiny  # [K]
    x_mean = (posterior.T @ x) / counts[:, None]  # [K, D]
    y_mean = (posterior.T @ y) / counts[:, None]  # [K, P]
    xc = x[None, :, :] - x_mean[:, None, :]  # [K, N, D]
    yc = y[None, :, :] - y_mean[:, None, :]  # [K, N, P]
    weighted = posterior.T[:, :, None] * xc
    gram = jnp.einsum("knd,kne->kde", weighted, xc)
    cross = jnp.einsum("knd,knp->kdp", weighted, yc)
    unit = jnp.sqrt(jnp.diagonal(gram, axis1=1, axis2=2)) + tiny  # [K, D]
    scaled = gram / (unit[:, :, None] * unit[:, None, :])
    d = x.shape[1]
    ridge = 10.0 * float(jnp.finfo(dtype).eps) * d
    beta = jnp.linalg.solve(scaled + ridge * jnp.eye(d, dtype=dtype)[None], cross / unit[:, :, None]) / unit[:, :, None]
    coefs = jnp.swapaxes(beta, 1, 2)  # [K, P, D]
    intercepts = y_mean - jnp.einsum("kpd,kd->kp", coefs, x_mean)
    residual = yc - jnp.einsum("knd,kpd->knp", xc, coefs)
    variances = jnp.einsum("nk,knp->kp", posterior, residual * residual) / counts[:, None] + reg_variance
    return coefs, intercepts, variances


def fit_gate(data: ExpertsData, posterior: Array, gate_weights: Array, gate_biases: Array, optimizer, inner_steps: int):
    """``(gate_weights, gate_biases)`` raised on ``Σ r log softmax(W x + b)`` by
    ``inner_steps`` optimizer steps on the standardized covariates (never lowered)."""
    x = data.x
    dtype = x.dtype
    shift = jnp.mean(x, axis=0, keepdims=True)  # [1, D]
    spread = jnp.sqrt(jnp.mean((x - shift) ** 2, axis=0, keepdims=True))
    spread = jnp.where(spread > 0, spread, jnp.ones_like(spread))
    xs = (x - shift) / spread
    # W x + b = W' xs + b'  with  W' = W · spread,  b' = b + W shift
    start = (gate_weights * spread, gate_biases + (gate_weights @ shift[0]))

    def q(gate):
        return jnp.sum(posterior * log_gates(gate[0], gate[1], xs))

    total = jax.lax.stop_gradient(jnp.sum(posterior))
    (w, b), _, _ = maximize(q, start, optimizer=optimizer, inner_steps=inner_steps, scale=jnp.maximum(total, jnp.finfo(dtype).tiny))
    weights = w / spread
    return weights, b - weights @ shift[0]


def m_step(data: ExpertsData, posterior: Array, params: MixtureOfExpertsParams, reg_variance: float,
           optimizer: Optional[optax.GradientTransformation], inner_steps: int) -> MixtureOfExpertsParams:
    """Closed-form experts and gradient-raised gating from the responsibilities ``[N, K]``."""
    dt = params.coefs.dtype
    coefs, intercepts, variances = fit_experts(data, posterior, reg_variance)
    gate_weights, gate_biases = fit_gate(
        data, posterior, params.gate_weights.astype(data.x.dtype), params.gate_biases.astype(data.x.dtype), optimizer, inner_steps
    )
    return MixtureOfExpertsParams(*(a.astype(dt) for a in (gate_weights, gate_biases, coefs, intercepts, variances)))


def check_params(params, k: int, d: Optional[int], p: Optional[int]) -> None:
    """Type, shapes and (when concrete) values of ``MixtureOfExpertsParams``."""
    if not isinstance(params, MixtureOfExpertsParams):
        raise TypeError(f"params must be MixtureOfExpertsParams, got {type(params).__name__}")
    coefs = tuple(jnp.shape(params.coefs))
    if len(coefs) != 3 or coefs[0] != k or (p is not None and coefs[1] != p) or (d is not None and coefs[2] != d):
        raise ValueError(f"params.coefs has shape {coefs}, expected ({k}, {p or 'P'}, {d or 'D'}) for n_components={k}")
    _, p, d = coefs
    for name, expected in (("gate_weights", (k, d)), ("gate_biases", (k,)), ("intercepts", (k, p)), ("variances", (k, p))):
        if tuple(jnp.shape(getattr(params, name))) != expected:
            raise ValueError(f"params.{name} has shape {jnp.shape(getattr(params, name))}, expected {expected}")
    for name in params._fields:
        validation.check_param_values(getattr(params, name), name, positive=name == "variances")


def draw(key: Array, params: MixtureOfExpertsParams, x: Array):
    """``(y [N, P], z [N])`` drawn at covariates ``x [N, D]``."""
    z_key, e_key = jax.random.split(key)
    z = jax.random.categorical(z_key, log_gates(params.gate_weights, params.gate_biases, x), axis=1)
    mean = jnp.einsum("nd,npd->np", x, params.coefs[z]) + params.intercepts[z]
    noise = jax.random.normal(e_key, mean.shape, mean.dtype)
    return mean + jnp.sqrt(params.variances[z]) * noise, z


def mixture_of_experts_params(gate_weights, gate_biases, coefs, intercepts, variances) -> MixtureOfExpertsParams:
    """``MixtureOfExpertsParams`` from a user's arrays: ``gate_weights [K, D]``,
    ``gate_biases [K]``, ``coefs [K, P, D]`` (or ``[K, D]`` for one target),
    ``intercepts [K, P]`` (or ``[K]``) and positive ``variances [K, P]`` (or ``[K]``).

    Examples:
      >>> params = jaxem.models.mixture_of_experts_params(
      ...     [[-4.0], [4.0]], [0.0, 0.0], [[1.0], [-1.0]], [0.0, 0.0], [0.01, 0.01])
      >>> params.coefs.shape                                   # [K, P, D]
      (2, 1, 1)
    """
    gate_weights = validation.as_float_array(gate_weights, "gate_weights", ndim=2)
    k, d = gate_weights.shape
    gate_biases = validation.as_float_array(gate_biases, "gate_biases", ndim=1)
    coefs = validation.as_float_array(coefs, "coefs", ndim=(2, 3))
    if coefs.ndim == 2:
        coefs = coefs[:, None, :]
    p = coefs.shape[1]
    intercepts = validation.as_float_array(intercepts, "intercepts", ndim=(1, 2))
    if intercepts.size != k * p:
        raise ValueError(f"intercepts must have shape ({k}, {p}) to match coefs {coefs.shape}, got {intercepts.shape}")
    intercepts = intercepts.reshape(k, p)
    variances = validation.as_float_array(variances, "variances", ndim=(1, 2))
    if variances.size != k * p:
        raise ValueError(f"variances must have shape ({k}, {p}) to match coefs {coefs.shape}, got {variances.shape}")
    variances = variances.reshape(k, p)
    if gate_biases.shape != (k,):
        raise ValueError(f"gate_biases must have shape ({k},) to match gate_weights {gate_weights.shape}, got {gate_biases.shape}")
    if coefs.shape != (k, p, d):
        raise ValueError(f"coefs must have shape ({k}, P, {d}) to match gate_weights {gate_weights.shape}, got {coefs.shape}")
    if bool(jnp.any(variances <= 0)):
        raise ValueError("variances must be positive")
    dtype = jnp.result_type(gate_weights.dtype, gate_biases.dtype, coefs.dtype, intercepts.dtype, variances.dtype)
    return MixtureOfExpertsParams(*(a.astype(dtype) for a in (gate_weights, gate_biases, coefs, intercepts, variances)))
