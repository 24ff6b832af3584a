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

__all__ = [
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
