"""Mixture of linear regressions (mixture of experts with constant gating).

    y_n | z_n = k  ~  N(a_k + x_nᵀ b_k, σ_k²),   z_n ~ Categorical(π).

The family (features, weighted least-squares M-step) is
``jaxem/_src/families/regression.py``; this factory validates the options and
calls the generic mixture builder.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from jaxem._src import priors, validation
from jaxem._src.base import Model
from jaxem._src.families import regression
from jaxem._src.families.regression import (
    RegressionMixtureParams,
    regression_mixture_params,
    sample_regression_response,
)
from jaxem._src.mixture import component_mixture
from jaxem._src.registry import register_model

__all__ = ["RegressionMixtureParams", "regression_mixture", "regression_mixture_params", "sample_regression_response"]


@register_model("regression_mixture")
def regression_mixture(
    n_components: int, *, fit_intercept: bool = True, reg_variance: float = 1e-6, prior: Optional[priors.MixturePrior] = None
) -> Model:
    """A mixture of ``n_components`` linear regressions of ``y [N]`` on ``x [N, P]``.

    Data are the pair ``(x, y)``: ``jaxem.fit(model, (x, y), key=0)``. The gating is
    constant (``weights``); each component has its own coefficients, intercept and
    noise variance. Starts from k-means++ seeding on the standardized ``(x, y)``
    and the least-squares fit of each nearest-centre group.

    Args:
      n_components: number of components K.
      fit_intercept: whether each component has an intercept.
      reg_variance: added to every noise variance in the M-step (units of ``y²``),
        so that no component collapses onto a few exactly fitted points.
      prior: optional ``jaxem.priors.MixturePrior`` (Dirichlet weights,
        ``jaxem.priors.RegressionPrior`` components: a ridge on the coefficients
        and an inverse-gamma on the variances): MAP-EM.

    Returns:
      A ``Model`` with ``RegressionMixtureParams``. ``sample(key, params, n)`` draws
      the covariates from N(0, I) and returns ``((x, y), z)``; to simulate at your
      own ``x`` use ``jaxem.models.sample_regression_response``.

    Examples:
      >>> rng = np.random.default_rng(0)
      >>> x = rng.normal(size=(200, 1))
      >>> y = np.where(rng.random(200) < 0.5, 3.0 * x[:, 0], -3.0 * x[:, 0]) + 0.1 * rng.normal(size=200)
      >>> model = jaxem.models.regression_mixture(2)
      >>> result = jaxem.fit(model, (x, y), key=0, n_restarts=8)
      >>> np.round(np.sort(np.asarray(result.params.coefs).ravel()))
      array([-3.,  3.]...)
    """
    n_components = validation.check_positive_int(n_components, "n_components")
    reg_variance = validation.check_nonnegative_float(reg_variance, "reg_variance")
    if not isinstance(fit_intercept, (bool, np.bool_)):
        raise TypeError(f"fit_intercept must be True or False, got {fit_intercept!r}")
    weights_prior, component_prior = priors.check_mixture_prior(
        prior, n_components, lambda value: regression.check_prior(value, n_components, "prior.components")
    )
    component = regression.component(bool(fit_intercept), reg_variance, component_prior)
    return component_mixture(component, n_components, params_type=RegressionMixtureParams, weights_prior=weights_prior)
