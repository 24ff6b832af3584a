"""Conjugate priors for MAP-EM (``prior=`` of the built-in models).

See ``jaxem/_src/priors.py`` and ``docs/priors.md``.
"""

from jaxem._src.families.bernoulli import BetaPrior
from jaxem._src.families.gaussian import GaussianPrior
from jaxem._src.families.poisson import GammaPrior
from jaxem._src.families.regression import RegressionPrior
from jaxem._src.priors import (
    HMMPrior,
    MixturePrior,
    hmmlearn_categorical,
    hmmlearn_gaussian,
    hmmlearn_poisson,
    log_prior,
    normal_inverse_wishart,
    weak_gaussian,
)

__all__ = [
    "BetaPrior",
    "GammaPrior",
    "GaussianPrior",
    "HMMPrior",
    "MixturePrior",
    "RegressionPrior",
    "hmmlearn_categorical",
    "hmmlearn_gaussian",
    "hmmlearn_poisson",
    "log_prior",
    "normal_inverse_wishart",
    "weak_gaussian",
]
