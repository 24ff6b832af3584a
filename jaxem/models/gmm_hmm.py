"""Hidden Markov models whose emissions are Gaussian mixtures (hmmlearn's
``GMMHMM``; builder ``jaxem/_src/gmm_hmm.py``, family ``jaxem/_src/families/gmm.py``)."""

from __future__ import annotations

from typing import Optional

from jaxem._src import validation
from jaxem._src.base import Array, Model
from jaxem._src.families.covariance import covariance_of
from jaxem._src.families.gmm import GMMHMMParams, gmm_hmm_covariances, gmm_hmm_params
from jaxem._src.gmm_hmm import gmm_hmm_model, marginalizing_gmm_hmm
from jaxem._src.registry import register_model

__all__ = ["GMMHMMParams", "gmm_hmm", "gmm_hmm_covariances", "gmm_hmm_params"]


@register_model("gmm_hmm")
def gmm_hmm(
    n_states: int,
    n_mix: int,
    *,
    covariance_type: str = "diag",
    reg_covar: float = 1e-6,
    transition_mask: Optional[Array] = None,
    parallel: bool = False,
    missing: str = "reject",
) -> Model:
    """A hidden Markov model whose emission in each state is a mixture of ``n_mix`` Gaussians.

    Data: one sequence ``[T, D]`` (``[T]`` means D = 1) or
    ``jaxem.Sequences(obs [B, T_max, D], lengths [B])``. The emission table is
    ``[B, T, K, M]`` (one contraction of the Gaussian features ``[1, x', quad(x')]``
    with the components' natural parameters); the forward recursion sums it over
    the M components by ``logsumexp``, so the E-step's one gradient gives the joint
    posterior of state and component. The M-step is closed form: per state, the
    Gaussian-mixture M-step of its components. Memory is O(B · T · (K M + F)).

    Args:
      n_states: number of hidden states K.
      n_mix: number of Gaussian components M in each state's mixture.
      covariance_type: ``"diag"`` (default), ``"full"``, ``"spherical"``, or
        ``"tied"`` (one full covariance shared by the M components of each state,
        as in hmmlearn's ``GMMHMM``; not shared across states).
      reg_covar: added to every component variance in the M-step (data units).
        hmmlearn's ``min_covar`` is used only by its initialization.
      transition_mask: optional ``[K, K]`` bool of allowed transitions.
      parallel: compute the log-partition in parallel over time.
      missing: ``"reject"`` (default: NaN in the data is an error) or
        ``"marginalize"``: NaN entries are missing at random; each component's
        density is the marginal of the step's observed features (not for
        ``"tied"``; see ``marginalizing_gmm_hmm``).

    Returns:
      A ``Model`` whose params are ``GMMHMMParams``. ``init`` seeds the states by
      k-means++ on the pooled steps and each state's component means by k-means++
      among its nearest steps, with the pooled covariance for every component,
      uniform weights and initial probabilities and "sticky" random transitions;
      ``sample(key, params, n)`` draws one sequence ``(x [n, D], z [n])``.

    Examples:
      >>> import jax, jaxem
      >>> model = jaxem.models.gmm_hmm(2, 2, covariance_type="diag")
      >>> params = jaxem.models.gmm_hmm_params([0.5, 0.5], [[0.95, 0.05], [0.05, 0.95]],
      ...     [[0.5, 0.5], [0.3, 0.7]], [[[0.0], [3.0]], [[10.0], [14.0]]],
      ...     [[[1.0], [1.0]], [[1.0], [0.5]]])
      >>> x, z = jaxem.sample(model, params, jax.random.key(0), 300)
      >>> result = jaxem.fit(model, x, key=0, n_restarts=4)
    """
    n_states = validation.check_positive_int(n_states, "n_states")
    n_mix = validation.check_positive_int(n_mix, "n_mix")
    covariance = covariance_of(covariance_type)
    reg_covar = validation.check_nonnegative_float(reg_covar, "reg_covar")
    if missing not in ("reject", "marginalize"):
        raise ValueError(f"missing must be 'reject' or 'marginalize', got {missing!r}")
    if missing == "marginalize" and covariance.name == "tied":
        raise ValueError("missing='marginalize' is not available for covariance_type='tied'")
    model = gmm_hmm_model(n_states, n_mix, covariance, reg_covar, transition_mask=transition_mask, parallel=bool(parallel))
    if missing == "marginalize":
        return marginalizing_gmm_hmm(model, covariance, reg_covar, transition_mask)
    return model
