"""Built-in models: each a factory returning a ``jaxem.Model``."""

from jaxem.models.gaussian_mixture import (
    GaussianMixtureParams,
    covariances,
    gaussian_mixture,
    gaussian_mixture_params,
)

__all__ = [
    "GaussianMixtureParams",
    "covariances",
    "gaussian_mixture",
    "gaussian_mixture_params",
]
