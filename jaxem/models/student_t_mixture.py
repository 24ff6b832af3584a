"""Mixtures of multivariate Student-t densities, fitted by EM over the latent scales.

    x_n | z_n = k, u_n  ~  N(μ_k, Σ_k / u_n),   u_n | z_n = k ~ Gamma(ν_k/2, ν_k/2),   z_n ~ Categorical(π).

The family (log-potentials, the scale expectations as the gradient of the Gamma
log-partition, the closed-form M-step and the degrees-of-freedom solve) is
``jaxem/_src/families/student_t.py``; this factory validates the options.
"""

from __future__ import annotations

import numbers
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import seeding, validation
from jaxem._src.base import Array, Model, mixture_latent
from jaxem._src.expfam import mixture_weights
from jaxem._src.families import student_t
from jaxem._src.families.student_t import StudentTMixtureParams, student_t_mixture_params, student_t_scales
from jaxem._src.registry import register_model

__all__ = ["StudentTMixtureParams", "student_t_mixture", "student_t_mixture_params", "student_t_scales"]


def _check_dof(dof) -> Optional[float]:
    if dof is None:
        return None
    if isinstance(dof, (bool, np.bool_)) or not isinstance(dof, numbers.Real) or not np.isfinite(dof) or dof <= 0:
        raise ValueError(f"dof must be None (learned) or a positive finite number, got {dof!r}")
    return float(dof)


@register_model("student_t_mixture")
def student_t_mixture(
    n_components: int,
    *,
    covariance_type: str = "full",
    dof: Optional[float] = None,
    reg_covar: float = 1e-6,
    init: str = "kmeans++",
) -> Model:
    """A mixture of ``n_components`` multivariate Student-t densities on ``[N, D]`` data.

    Heavy tails make it robust to outliers where a Gaussian mixture gives them a
    component of their own or stretches a covariance over them. The E-step is the
    gradient of ``logsumexp`` over the components (the responsibilities) and of the
    Gamma log-partition of each row's latent scale (``E[u]``, ``E[log u]``); the
    M-step is closed form: weights, u-weighted locations, the u-weighted scatter
    about them (a Cholesky factor), and each component's degrees of freedom by a
    bisection in ``[0.1, 1000]`` (``jaxem/_src/families/student_t.py``). Each
    step maximizes Q, so the log-likelihood never decreases. EM moves the degrees
    of freedom slowly: ``algorithm="squarem"`` with a small ``tol`` (e.g. 1e-6)
    reaches the maximum in a few tens of steps where plain EM stops short of it.

    Args:
      n_components: number of components K.
      covariance_type: ``"full"`` (``[K, D, D]`` scale matrices) or ``"diag"``.
      dof: ``None`` to learn each component's degrees of freedom (they start at
        10), or a positive number fixed for every component.
      reg_covar: added to the diagonal of every scale matrix in the M-step.
      init: the seeding of the starting responsibilities (``"kmeans++"``,
        ``"kmeans"``, ``"random_from_data"``, ``"random"``) on the standardized
        data; the start is the Gaussian M-step of those (``u = 1``).

    Returns:
      A ``Model`` with ``StudentTMixtureParams``; ``jaxem.sample`` draws ``(x, z)``.

    Examples:
      >>> rng = np.random.default_rng(0)
      >>> x = np.concatenate([rng.standard_t(3.0, (300, 2)), 8.0 + rng.standard_t(3.0, (300, 2))])
      >>> model = jaxem.models.student_t_mixture(2, covariance_type="diag")
      >>> result = jaxem.fit(model, x, key=0, n_restarts=2)
      >>> np.sort(np.asarray(result.params.locations)[:, 0]).round(0)
      array([0., 8.]...)
    """
    n_components = validation.check_positive_int(n_components, "n_components")
    scale = student_t.scale_type_of(covariance_type)
    fixed_dof = _check_dof(dof)
    reg_covar = validation.check_nonnegative_float(reg_covar, "reg_covar")
    if init not in seeding.SEEDERS:
        raise ValueError(f"init must be one of {tuple(seeding.SEEDERS)}, got {init!r}")
    seed = seeding.SEEDERS[init]

    def init_params(key: Array, x: Array) -> StudentTMixtureParams:
        centre = jnp.mean(x, axis=0, keepdims=True)
        spread = jnp.sqrt(jnp.mean((x - centre) ** 2, axis=0, keepdims=True))
        points = (x - centre) / jnp.where(spread > 0, spread, jnp.ones_like(spread))
        responsibilities = seed(key, points, n_components, None)
        locations, factor = student_t.maximize_location_scale(x, responsibilities, responsibilities, scale, reg_covar)
        start = student_t.DOF_START if fixed_dof is None else fixed_dof
        return StudentTMixtureParams(
            weights=mixture_weights(jnp.sum(responsibilities, axis=0)),
            locations=locations,
            precisions_cholesky=factor,
            dofs=jnp.full((n_components,), start, x.dtype),
        )

    def log_joint(params: StudentTMixtureParams, x: Array) -> Array:
        return student_t.log_potentials(params, x, scale)

    def m_step(x: Array, posterior: Array, params: StudentTMixtureParams) -> StudentTMixtureParams:
        return student_t.m_step(x, posterior, params, scale, reg_covar, learn_dofs=fixed_dof is None)

    def check(data, params=None) -> None:
        x = validation.as_rows(data, "x")
        if params is None:
            validation.check_n_components(n_components, x.shape[0])
            return
        student_t.check_params(params, n_components, x.shape[1], scale)

    def sample(key: Array, params: StudentTMixtureParams, n: int):
        student_t.check_params(params, n_components, None, scale)
        z_key, x_key = jax.random.split(key)
        z = jax.random.categorical(z_key, jnp.log(params.weights), shape=(n,))
        return student_t.draw(x_key, params, z, scale), z

    def n_parameters(params: StudentTMixtureParams) -> int:
        k, d = jnp.shape(params.locations)
        return k - 1 + k * d + scale.covariance.n_parameters(k, d) + (k if fixed_dof is None else 0)

    return Model(
        init=init_params,
        log_joint=log_joint,
        latent=mixture_latent(),
        m_step=m_step,
        prepare=validation.to_float,
        check=check,
        sample=sample,
        n_parameters=n_parameters,
    )
