"""Factor analysis and probabilistic PCA (one continuous latent per sample).

The builder is ``jaxem/_src/factor_models.py`` (the math is in
``jaxem/_src/factor_analysis.py``); these factories validate the options.
"""

from __future__ import annotations

from jaxem._src import validation
from jaxem._src.base import Model
from jaxem._src.factor_analysis import FactorAnalysisParams
from jaxem._src.factor_models import factor_model
from jaxem._src.registry import register_model

__all__ = ["FactorAnalysisParams", "factor_analysis", "ppca"]


@register_model("factor_analysis")
def factor_analysis(n_factors: int, *, min_noise_variance: float = 1e-6) -> Model:
    """Factor analysis: ``x = mean + W z + ε``, ``z ~ N(0, I_L)``, ``ε ~ N(0, diag(ψ))``.

    Data: ``[N, D]``; NaN marks a missing value, marginalized exactly in the
    E-step and the M-step. The E-step is the gradient of the Gaussian
    log-partition of ``z``'s potentials (``jaxem.gaussian_latent``); the M-step is
    closed form (the regression of each coordinate on ``[E[z], 1]``, then ψ).

    Args:
      n_factors: latent dimension L (at most D).
      min_noise_variance: floor of every ψ_d (data units), so that a coordinate
        the factors explain fully does not collapse ψ_d to zero.

    Returns:
      A ``Model`` with ``FactorAnalysisParams(mean [D], loadings [D, L],
      noise_variance [D])``. ``jaxem.posterior`` gives
      ``GaussianPosterior(means [N, L], covariances [N, L, L])``, ``jaxem.predict``
      the posterior means, ``sample(key, params, n)`` ``(x [n, D], z [n, L])``.

    Examples:
      >>> import jax, jaxem, numpy as np
      >>> x = np.random.default_rng(0).normal(size=(200, 5)) @ np.ones((5, 5))
      >>> model = jaxem.models.factor_analysis(2)
      >>> result = jaxem.fit(model, x, key=0, max_iter=50)
      >>> result.params.loadings.shape
      (5, 2)
    """
    n_factors = validation.check_positive_int(n_factors, "n_factors")
    min_noise_variance = validation.check_nonnegative_float(min_noise_variance, "min_noise_variance")
    return factor_model(n_factors, n_components=None, isotropic=False, min_noise_variance=min_noise_variance)


@register_model("ppca")
def ppca(n_factors: int, *, min_noise_variance: float = 1e-6) -> Model:
    """Probabilistic PCA (Tipping & Bishop 1999): factor analysis with ``ψ = σ² I``.

    The same as ``factor_analysis`` except that the noise is one variance σ²
    (``noise_variance []``); EM converges to the closed-form maximum-likelihood
    solution (the top ``L`` principal directions, σ² the mean of the other
    eigenvalues of the sample covariance), and also handles missing values (NaN).

    Examples:
      >>> import jax, jaxem, numpy as np
      >>> x = np.random.default_rng(0).normal(size=(200, 5)) @ np.ones((5, 5))
      >>> result = jaxem.fit(jaxem.models.ppca(2), x, key=0, max_iter=50)
      >>> result.params.noise_variance.shape
      ()
    """
    n_factors = validation.check_positive_int(n_factors, "n_factors")
    min_noise_variance = validation.check_nonnegative_float(min_noise_variance, "min_noise_variance")
    return factor_model(n_factors, n_components=None, isotropic=True, min_noise_variance=min_noise_variance)
