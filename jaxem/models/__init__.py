"""Built-in models: each a factory returning a ``jaxem.Model``."""

from jaxem.models.gaussian_mixture import (
    GaussianMixtureParams,
    covariances,
    gaussian_mixture,
    gaussian_mixture_params,
)
from jaxem.models.gaussian_hmm import GaussianHMMParams, gaussian_hmm, gaussian_hmm_params

__all__ = [
    "GaussianHMMParams",
    "GaussianMixtureParams",
    "covariances",
    "gaussian_hmm",
    "gaussian_hmm_params",
    "gaussian_mixture",
    "gaussian_mixture_params",
]
