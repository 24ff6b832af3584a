"""Gaussian mixture models (four covariance types) on the exponential-family path.

The family is ``jaxem/_src/families/gaussian.py``; this factory validates the
options, looks the covariance type up once and calls the generic builder.
"""

from __future__ import annotations

import functools
from typing import Optional

from jaxem._src import missing as missing_lib
from jaxem._src import priors, seeding, validation
from jaxem._src.base import Model
from jaxem._src.families import gaussian
from jaxem._src.families.covariance import covariance_of
from jaxem._src.families.gaussian import GaussianMixtureParams, covariances, gaussian_mixture_params
from jaxem._src.mixture import check_mixture_params, component_mixture
from jaxem._src.registry import register_model

__all__ = ["GaussianMixtureParams", "covariances", "gaussian_mixture", "gaussian_mixture_params"]


@register_model("gaussian_mixture")
def gaussian_mixture(
    n_components: int,
    *,
    covariance_type: str = "full",
    reg_covar: float = 1e-6,
    init: str = "mixed",
    missing: str = "reject",
    prior: Optional[priors.MixturePrior] = None,
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
      init: ``"mixed"`` (the default: each start ``"kmeans"`` or ``"kmeans++"``
        by a fair coin, so that restarts get both), ``"kmeans++"`` (k-means++
        seeding), ``"kmeans"`` (k-means++ then Lloyd's k-means iterations to
        convergence: scikit-learn's default) or ``"random_from_data"`` (K random
        rows): the rows are assigned to the nearest centre and the starting
        params are the M-step of that hard assignment; or ``"random"``: the
        M-step of random responsibilities (scikit-learn's ``init_params="random"``).
        See ``docs/starts.md``.
      missing: ``"reject"`` (default: NaN in the data is an error) or
        ``"marginalize"``: NaN entries are missing at random and integrated out
        exactly (EM for incomplete data; see ``jaxem/_src/missing.py``). Costs
        O(N K D³) per iteration instead of O(N K D²); starts from column-mean
        imputation.
      prior: optional ``jaxem.priors.MixturePrior``: a Dirichlet concentration
        of the weights and a ``jaxem.priors.GaussianPrior`` (normal-inverse-Wishart
        form) of the means and covariances; EM is then MAP-EM, and
        ``jaxem.priors.weak_gaussian(x, covariance_type)`` is a weak default that
        keeps components from collapsing (``docs/priors.md``). Not with
        ``missing="marginalize"``.

    Returns:
      A ``Model`` whose params are ``GaussianMixtureParams``.

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2, covariance_type="diag")
      >>> result = jaxem.fit(model, x, key=0, n_restarts=2)
      >>> result.params.precisions_cholesky.shape                 # diag: [K, D]
      (2, 2)
      >>> model is jaxem.models.gaussian_mixture(2, covariance_type="diag")
      True
    """
    n_components = validation.check_positive_int(n_components, "n_components")
    covariance = covariance_of(covariance_type)
    reg_covar = validation.check_nonnegative_hyperparameter(reg_covar, "reg_covar")
    if init not in seeding.SEEDERS:
        raise ValueError(f"init must be one of {tuple(seeding.SEEDERS)}, got {init!r}")
    if missing not in ("reject", "marginalize"):
        raise ValueError(f"missing must be 'reject' or 'marginalize', got {missing!r}")
    weights_prior, component_prior = priors.check_mixture_prior(
        prior, n_components, lambda value: gaussian.check_prior(value, covariance, n_components)
    )
    if prior is not None and missing == "marginalize":
        raise ValueError("prior is not supported with missing='marginalize'; impute the data or drop the prior")
    component = gaussian.component(covariance, reg_covar, component_prior)
    model = component_mixture(
        component, n_components, params_type=GaussianMixtureParams, seed=seeding.SEEDERS[init], weights_prior=weights_prior
    )
    if missing == "marginalize":
        check_params = functools.partial(
            check_mixture_params, component=component, params_type=GaussianMixtureParams, n_components=n_components
        )
        return missing_lib.marginalizing(model, covariance, reg_covar, n_components, check_params)
    return model
