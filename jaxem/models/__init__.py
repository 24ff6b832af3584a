"""Built-in models: each a factory returning a ``jaxem.Model``."""

from jaxem.models.count_mixtures import (
    BernoulliMixtureParams,
    CategoricalMixtureParams,
    PoissonMixtureParams,
    bernoulli_mixture,
    bernoulli_mixture_params,
    categorical_mixture,
    categorical_mixture_params,
    poisson_mixture,
    poisson_mixture_params,
)
from jaxem.models.gaussian_mixture import (
    GaussianMixtureParams,
    covariances,
    gaussian_mixture,
    gaussian_mixture_params,
)
from jaxem.models.mixture import MixtureParams, latent_model, mixture
from jaxem.models.regression_mixture import (
    RegressionMixtureParams,
    regression_mixture,
    regression_mixture_params,
    sample_regression_response,
)

__all__ = [
    "MixtureParams",
    "RegressionMixtureParams",
    "latent_model",
    "mixture",
    "regression_mixture",
    "regression_mixture_params",
    "sample_regression_response",
    "BernoulliMixtureParams",
    "CategoricalMixtureParams",
    "PoissonMixtureParams",
    "bernoulli_mixture",
    "bernoulli_mixture_params",
    "categorical_mixture",
    "categorical_mixture_params",
    "poisson_mixture",
    "poisson_mixture_params",
    "GaussianMixtureParams",
    "covariances",
    "gaussian_mixture",
    "gaussian_mixture_params",
]
