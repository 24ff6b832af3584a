"""jaxem: Expectation–Maximization in JAX, with the E-step by autodiff.

A model is a NamedTuple of pure functions (``jaxem.Model``) whose ``log_joint``
gives log p(x, z; θ) for every value of a discrete latent z; the E-step is the
gradient of the log-partition of those log-potentials.
"""

import sys as _sys

from jaxem._src import interrupt as _interrupt

if _interrupt.is_command_line(_sys.argv):  # Ctrl-C while JAX loads: one line, no traceback
    _interrupt.quiet_interrupts()

from jaxem import constraints, models  # noqa: E402
from jaxem import priors
from jaxem._src.compilation_cache import enable_default_cache as _enable_default_cache
from jaxem._src.base import AdditiveMStep, Latent, Model, mixture_latent
from jaxem._src.chain import ChainPotentials, chain_latent
from jaxem._src.gaussian_latent import GaussianPosterior, GaussianPotentials, gaussian_latent, gaussian_mixture_latent
from jaxem._src.kalman import GaussianChainPosterior, GaussianChainPotentials, gaussian_chain_latent
from jaxem._src.data import load_dataset
from jaxem._src.algorithms import Algorithm, EMInfo, EMState, SquaremState, em, squarem
from jaxem._src.engine import (
    aic,
    bic,
    em_step,
    em_step_with_info,
    fit,
    init,
    log_likelihood,
    n_parameters,
    posterior,
    predict,
    sample,
    score_samples,
    viterbi,
)
from jaxem._src.bounds import elbo, q_function
from jaxem._src.component import Component
from jaxem._src.expfam import ExpFamily, expected_stats, exponential_family_mixture
from jaxem._src.inference import e_step
from jaxem._src.mixture import component_mixture
from jaxem._src.many import ModelsResult, fit_models
from jaxem._src.loop import FitResult, RunState, run_em
from jaxem._src.update import MStepInfo
from jaxem._src.freezing import freeze
from jaxem._src.generic_m_step import gradient_m_step
from jaxem._src.hmm import ChainData, component_hmm
from jaxem._src.io import load, save
from jaxem._src.progress import Progress
from jaxem._src.registry import ModelSpec, register_model
from jaxem._src.sequences import Sequences
from jaxem._src.sharding import data_mesh, shard_rows
from jaxem._src.sharding import shard_steps
from jaxem._src.streaming import OnlineResult, fit_online, fit_streaming
from jaxem._src.streaming import sequence_chunks

__version__ = "0.1.0"


def __getattr__(name):
    # made on first use, so that `import jaxem` never imports scikit-learn
    if name == "ConvergenceWarning":
        from jaxem._src.convergence import convergence_warning

        return convergence_warning()
    raise AttributeError(f"module 'jaxem' has no attribute {name!r}")


# The directory of JAX's persistent compilation cache in use, or None
# (jaxem/_src/compilation_cache.py: JAXEM_COMPILATION_CACHE=0 turns it off).
COMPILATION_CACHE_DIR = _enable_default_cache()

__all__ = [
    "AdditiveMStep",
    "ConvergenceWarning",
    "Algorithm",
    "EMInfo",
    "RunState",
    "SquaremState",
    "em",
    "squarem",
    "ChainData",
    "ChainPotentials",
    "Component",
    "EMState",
    "ExpFamily",
    "FitResult",
    "GaussianChainPosterior",
    "GaussianChainPotentials",
    "GaussianPosterior",
    "GaussianPotentials",
    "Latent",
    "MStepInfo",
    "Model",
    "ModelsResult",
    "ModelSpec",
    "OnlineResult",
    "Progress",
    "Sequences",
    "aic",
    "bic",
    "chain_latent",
    "component_hmm",
    "component_mixture",
    "constraints",
    "data_mesh",
    "sequence_chunks",
    "shard_steps",
    "e_step",
    "elbo",
    "em_step",
    "em_step_with_info",
    "expected_stats",
    "exponential_family_mixture",
    "fit",
    "fit_models",
    "fit_online",
    "fit_streaming",
    "freeze",
    "gaussian_chain_latent",
    "gaussian_latent",
    "gaussian_mixture_latent",
    "gradient_m_step",
    "init",
    "load",
    "load_dataset",
    "log_likelihood",
    "mixture_latent",
    "models",
    "n_parameters",
    "posterior",
    "predict",
    "priors",
    "q_function",
    "register_model",
    "run_em",
    "sample",
    "save",
    "score_samples",
    "shard_rows",
    "viterbi",
]
