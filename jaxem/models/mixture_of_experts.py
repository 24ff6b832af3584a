"""Mixtures of linear experts with softmax gating on the covariates.

    z_n | x_n ~ Categorical(softmax(W x_n + b)),   y_n | z_n = k, x_n ~ N(A_k x_n + c_k, diag(σ²_k)).

The model (log-potentials, closed-form experts, gradient M-step of the gating) is
``jaxem/_src/experts.py``; this factory validates the options. With constant gating
it is ``jaxem.models.regression_mixture``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxem._src import experts, seeding, validation
from jaxem._src.base import Array, Model, mixture_latent
from jaxem._src.experts import ExpertsData, MixtureOfExpertsParams, mixture_of_experts_params
from jaxem._src.expfam import tiny_count
from jaxem._src.generic_m_step import DEFAULT_INNER_STEPS
from jaxem._src.registry import register_model

__all__ = ["MixtureOfExpertsParams", "mixture_of_experts", "mixture_of_experts_params"]


@register_model("mixture_of_experts")
def mixture_of_experts(
    n_components: int, *, reg_variance: float = 1e-6, inner_steps: int = DEFAULT_INNER_STEPS, init: str = "kmeans++"
) -> Model:
    """A mixture of ``n_components`` linear-regression experts whose weights depend on
    the covariates through a softmax gate.

    Data are the pair ``(x [N, D], y [N] or [N, P])``: ``jaxem.fit(model, (x, y), key=0)``.
    The E-step is the gradient of ``logsumexp`` of the ``[N, K]`` log-potentials
    ``log softmax(W x + b)_k + log N(y | A_k x + c_k, diag(σ²_k))``. The M-step fits
    each expert by weighted least squares (closed form) and raises the gating part of
    Q, which is concave in ``(W, b)``, by ``inner_steps`` L-BFGS steps (the gradient
    M-step, ``jaxem.gradient_m_step``'s machinery; it never lowers Q), so the
    log-likelihood never decreases. Where the experts' regions are separable the
    gate sharpens without bound (``W`` grows a little with every step); the fit
    stays finite and the predictions are those of a hard switch.

    Args:
      n_components: number of experts K.
      reg_variance: added to every noise variance in the M-step (units of ``y²``).
      inner_steps: optimizer steps of the gating per M-step.
      init: the seeding of the starting responsibilities on the standardized
        ``(x, y)`` (``"kmeans++"``, ``"kmeans"``, ``"random_from_data"``,
        ``"random"``); the experts start at their least-squares fits to those and
        the gate at constant weights.

    Returns:
      A ``Model`` with ``MixtureOfExpertsParams`` (``coefs [K, P, D]``); ``jaxem.sample``
      draws the covariates from N(0, I) and returns ``((x, y [n, P]), z)``.

    Examples:
      >>> rng = np.random.default_rng(0)
      >>> x = rng.uniform(-2.0, 2.0, (400, 1))
      >>> y = np.where(x[:, 0] < 0.0, 1.0 + 2.0 * x[:, 0], 1.0 - 2.0 * x[:, 0]) + 0.1 * rng.normal(size=400)
      >>> model = jaxem.models.mixture_of_experts(2)
      >>> result = jaxem.fit(model, (x, y), key=0, n_restarts=4)
      >>> np.sort(np.asarray(result.params.coefs).ravel()).round(1)
      array([-2.,  2.]...)
    """
    n_components = validation.check_positive_int(n_components, "n_components")
    reg_variance = validation.check_nonnegative_float(reg_variance, "reg_variance")
    inner_steps = validation.check_positive_int(inner_steps, "inner_steps")
    if init not in seeding.SEEDERS:
        raise ValueError(f"init must be one of {tuple(seeding.SEEDERS)}, got {init!r}")
    seed = seeding.SEEDERS[init]

    def init_params(key: Array, data: ExpertsData) -> MixtureOfExpertsParams:
        points = jnp.concatenate([data.x, data.y], axis=1)
        centre = jnp.mean(points, axis=0, keepdims=True)
        spread = jnp.sqrt(jnp.mean((points - centre) ** 2, axis=0, keepdims=True))
        points = (points - centre) / jnp.where(spread > 0, spread, jnp.ones_like(spread))
        responsibilities = seed(key, points, n_components, None)
        coefs, intercepts, variances = experts.fit_experts(data, responsibilities, reg_variance)
        dtype = data.x.dtype
        counts = jnp.sum(responsibilities, axis=0) + tiny_count(dtype)
        return MixtureOfExpertsParams(
            gate_weights=jnp.zeros((n_components, data.x.shape[1]), dtype),
            gate_biases=jnp.log(counts / jnp.sum(counts)),
            coefs=coefs,
            intercepts=intercepts,
            variances=variances,
        )

    def m_step(data: ExpertsData, posterior: Array, params: MixtureOfExpertsParams) -> MixtureOfExpertsParams:
        return experts.m_step(data, posterior, params, reg_variance, None, inner_steps)

    def check(data, params=None) -> None:
        checked = experts.check_pair(data)
        n, d = checked.x.shape
        if params is None:
            validation.check_n_components(n_components, n)
            return
        experts.check_params(params, n_components, d, checked.y.shape[1])

    def sample(key: Array, params: MixtureOfExpertsParams, n: int):
        experts.check_params(params, n_components, None, None)
        x_key, y_key = jax.random.split(key)
        x = jax.random.normal(x_key, (n, params.coefs.shape[2]), params.coefs.dtype)
        y, z = experts.draw(y_key, params, x)
        return (x, y), z

    def n_parameters(params: MixtureOfExpertsParams) -> int:
        k, p, d = jnp.shape(params.coefs)
        return (k - 1) * (d + 1) + k * p * (d + 2)

    return Model(
        init=init_params,
        log_joint=experts.log_potentials,
        latent=mixture_latent(),
        m_step=m_step,
        prepare=experts.prepare,
        check=check,
        sample=sample,
        n_parameters=n_parameters,
    )
