"""Built-in models: each a factory returning a ``jaxem.Model``."""

from jaxem.models.gaussian_mixture import (
    GaussianMixtureParams,
    covariances,
    gaussian_mixture,
    gaussian_mixture_params,
)
from jaxem.models.categorical_hmm import CategoricalHMMParams, categorical_hmm, categorical_hmm_params
from jaxem.models.gaussian_hmm import GaussianHMMParams, gaussian_hmm, gaussian_hmm_params
from jaxem.models.poisson_hmm import PoissonHMMParams, poisson_hmm, poisson_hmm_params

__all__ = [
    "CategoricalHMMParams",
    "GaussianHMMParams",
    "GaussianMixtureParams",
    "PoissonHMMParams",
    "categorical_hmm",
    "categorical_hmm_params",
    "covariances",
    "gaussian_hmm",
    "gaussian_hmm_params",
    "gaussian_mixture",
    "gaussian_mixture_params",
    "poisson_hmm",
    "poisson_hmm_params",
]
