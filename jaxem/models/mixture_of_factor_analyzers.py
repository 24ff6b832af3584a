"""Mixtures of factor analyzers and of probabilistic PCA.

A discrete and a continuous latent together: component ``k ~ π``, then
``x = means[k] + W_k z + ε``. The log-partition is the ``logsumexp`` over
components of the Gaussian log-partitions of ``z`` (``jaxem.gaussian_mixture_latent``);
the builder is ``jaxem/_src/factor_models.py``.
"""

from __future__ import annotations

from jaxem._src import validation
from jaxem._src.base import Model
from jaxem._src.factor_analysis import MixtureOfFactorAnalyzersParams
from jaxem._src.factor_models import factor_model
from jaxem._src.registry import register_model

__all__ = ["MixtureOfFactorAnalyzersParams", "mixture_of_factor_analyzers", "mixture_of_ppca"]


@register_model("mixture_of_factor_analyzers")
def mixture_of_factor_analyzers(n_components: int, n_factors: int, *, min_noise_variance: float = 1e-6) -> Model:
    """A mixture of ``K`` factor analyzers, each with its own mean, loadings and ψ.

    Per component the covariance is ``W_k W_kᵀ + diag(ψ_k)``, ``D (L + 1)``
    parameters instead of ``D (D + 1) / 2``, and an iteration costs O(N K D L²)
    instead of a full-covariance mixture's O(N K D²) (plus O(K D³)).

    Args:
      n_components: number of components K.
      n_factors: latent dimension L of every component (at most D).
      min_noise_variance: floor of every ψ (data units).

    Returns:
      A ``Model`` with ``MixtureOfFactorAnalyzersParams(weights [K], means [K, D],
      loadings [K, D, L], noise_variances [K, D])``; ``init`` puts the means at
      distinct random rows (run several restarts: ``jaxem.fit(..., n_restarts=)``).
      ``jaxem.posterior`` gives ``GaussianPosterior(means [N, K, L], covariances
      [N, K, L, L], responsibilities [N, K])``; ``jaxem.predict`` ``(component [N],
      mean of z [N, L])``; ``jaxem.bic`` counts loadings up to rotation.

    Examples:
      >>> import jax, jaxem, numpy as np
      >>> x = np.random.default_rng(0).normal(size=(300, 6))
      >>> model = jaxem.models.mixture_of_factor_analyzers(2, 1)
      >>> result = jaxem.fit(model, x, key=0, n_restarts=4, max_iter=30)
      >>> result.params.loadings.shape
      (2, 6, 1)
    """
    n_components = validation.check_positive_int(n_components, "n_components")
    n_factors = validation.check_positive_int(n_factors, "n_factors")
    min_noise_variance = validation.check_nonnegative_float(min_noise_variance, "min_noise_variance")
    return factor_model(n_factors, n_components=n_components, isotropic=False, min_noise_variance=min_noise_variance)


@register_model("mixture_of_ppca")
def mixture_of_ppca(n_components: int, n_factors: int, *, min_noise_variance: float = 1e-6) -> Model:
    """A mixture of ``K`` probabilistic PCA models (Tipping & Bishop 1999b): as
    ``mixture_of_factor_analyzers`` with one noise variance per component
    (``noise_variances [K]``).

    Examples:
      >>> import jax, jaxem, numpy as np
      >>> x = np.random.default_rng(0).normal(size=(300, 6))
      >>> result = jaxem.fit(jaxem.models.mixture_of_ppca(2, 1), x, key=0, max_iter=30)
      >>> result.params.noise_variances.shape
      (2,)
    """
    n_components = validation.check_positive_int(n_components, "n_components")
    n_factors = validation.check_positive_int(n_factors, "n_factors")
    min_noise_variance = validation.check_nonnegative_float(min_noise_variance, "min_noise_variance")
    return factor_model(n_factors, n_components=n_components, isotropic=True, min_noise_variance=min_noise_variance)
