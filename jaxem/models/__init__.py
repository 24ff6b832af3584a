"""Built-in models: each a factory returning a ``jaxem.Model``."""

from jaxem.models.ar_hmm import ARHMMParams, ar_hmm, ar_hmm_params
from jaxem.models.bernoulli_hmm import BernoulliHMMParams, bernoulli_hmm, bernoulli_hmm_params
from jaxem.models.categorical_hmm import CategoricalHMMParams, categorical_hmm, categorical_hmm_params
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
from jaxem.models.gaussian_hmm import GaussianHMMParams, gaussian_hmm, gaussian_hmm_params
from jaxem.models.gaussian_mixture import (
    GaussianMixtureParams,
    covariances,
    gaussian_mixture,
    gaussian_mixture_params,
)
from jaxem.models.mixture import MixtureParams, latent_model, mixture
from jaxem.models.multinomial_hmm import MultinomialHMMParams, multinomial_hmm, multinomial_hmm_params
from jaxem.models.gmm_hmm import GMMHMMParams, gmm_hmm, gmm_hmm_covariances, gmm_hmm_params
from jaxem.models.poisson_hmm import PoissonHMMParams, poisson_hmm, poisson_hmm_params
from jaxem.models.regression_mixture import (
    RegressionMixtureParams,
    regression_mixture,
    regression_mixture_params,
    sample_regression_response,
)

__all__ = [
    "ARHMMParams",
    "ar_hmm",
    "ar_hmm_params",
    "BernoulliHMMParams",
    "bernoulli_hmm",
    "bernoulli_hmm_params",
    "MultinomialHMMParams",
    "GMMHMMParams",
    "gmm_hmm",
    "gmm_hmm_covariances",
    "gmm_hmm_params",
    "multinomial_hmm",
    "multinomial_hmm_params",
    "BernoulliMixtureParams",
    "CategoricalHMMParams",
    "CategoricalMixtureParams",
    "GaussianHMMParams",
    "GaussianMixtureParams",
    "MixtureParams",
    "PoissonHMMParams",
    "PoissonMixtureParams",
    "RegressionMixtureParams",
    "bernoulli_mixture",
    "bernoulli_mixture_params",
    "categorical_hmm",
    "categorical_hmm_params",
    "categorical_mixture",
    "categorical_mixture_params",
    "covariances",
    "gaussian_hmm",
    "gaussian_hmm_params",
    "gaussian_mixture",
    "gaussian_mixture_params",
    "latent_model",
    "mixture",
    "poisson_hmm",
    "poisson_hmm_params",
    "poisson_mixture",
    "poisson_mixture_params",
    "regression_mixture",
    "regression_mixture_params",
    "sample_regression_response",
]

from jaxem.models.factor_analysis import FactorAnalysisParams, factor_analysis, ppca  # noqa: E402
from jaxem.models.lgssm import LGSSMParams, lgssm  # noqa: E402
from jaxem.models.mixture_of_factor_analyzers import (  # noqa: E402
    MixtureOfFactorAnalyzersParams,
    mixture_of_factor_analyzers,
    mixture_of_ppca,
)

__all__ += [
    "FactorAnalysisParams",
    "LGSSMParams",
    "MixtureOfFactorAnalyzersParams",
    "factor_analysis",
    "lgssm",
    "mixture_of_factor_analyzers",
    "mixture_of_ppca",
    "ppca",
]

from jaxem.models.student_t_mixture import (  # noqa: E402
    StudentTMixtureParams,
    student_t_mixture,
    student_t_mixture_params,
    student_t_scales,
)

__all__ += ["StudentTMixtureParams", "student_t_mixture", "student_t_mixture_params", "student_t_scales"]

from jaxem.models.mixture_of_experts import (  # noqa: E402
    MixtureOfExpertsParams,
    mixture_of_experts,
    mixture_of_experts_params,
)

__all__ += ["MixtureOfExpertsParams", "mixture_of_experts", "mixture_of_experts_params"]
