"""jaxem: Expectation–Maximization in JAX, with the E-step by autodiff.

A model is a NamedTuple of pure functions (``jaxem.Model``) whose ``log_joint``
gives log p(x, z; θ) for every value of a discrete latent z; the E-step is the
gradient of the log-partition of those log-potentials.
"""

from jaxem import models
from jaxem._src.base import Latent, Model, mixture_latent
from jaxem._src.data import load_dataset
from jaxem._src.engine import (
    EMState,
    FitResult,
    aic,
    bic,
    e_step,
    em_step,
    fit,
    init,
    log_likelihood,
    n_parameters,
    posterior,
    predict,
    run_em,
    sample,
    score_samples,
)
from jaxem._src.expfam import ExpFamily, expected_stats, exponential_family_mixture
from jaxem._src.io import load, save
from jaxem._src.progress import Progress
from jaxem._src.registry import ModelSpec, register_model

__version__ = "0.1.0"

__all__ = [
    "EMState",
    "ExpFamily",
    "FitResult",
    "Latent",
    "Model",
    "ModelSpec",
    "Progress",
    "aic",
    "bic",
    "e_step",
    "em_step",
    "expected_stats",
    "exponential_family_mixture",
    "fit",
    "init",
    "load",
    "load_dataset",
    "log_likelihood",
    "mixture_latent",
    "models",
    "n_parameters",
    "posterior",
    "predict",
    "register_model",
    "run_em",
    "sample",
    "save",
    "score_samples",
]
