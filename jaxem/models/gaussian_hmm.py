"""Hidden Markov models with multivariate Gaussian emissions.

The family is ``jaxem/_src/families/gaussian.py``; this factory validates the
options and calls the generic HMM builder.
"""

from __future__ import annotations

from typing import Optional

from jaxem._src import hmm_missing, priors, validation
from jaxem._src.base import Array, Model
from jaxem._src.families import gaussian
from jaxem._src.families.covariance import covariance_of
from jaxem._src.families.gaussian import GaussianHMMParams, gaussian_hmm_params
from jaxem._src.hmm import component_hmm
from jaxem._src.registry import register_model

__all__ = ["GaussianHMMParams", "gaussian_hmm", "gaussian_hmm_params"]


@register_model("gaussian_hmm")
def gaussian_hmm(
    n_states: int,
    *,
    covariance_type: str = "diag",
    reg_covar: float = 1e-6,
    transition_mask: Optional[Array] = None,
    parallel: bool = False,
    prior: Optional[priors.HMMPrior] = None,
    missing: str = "reject",
) -> Model:
    """A hidden Markov model with Gaussian emissions.

    Data: one sequence ``[T, D]`` (``[T]`` means D = 1) or a padded batch
    ``jaxem.Sequences(obs [B, T_max, D], lengths [B])``. The E-step is the gradient
    of the normalized forward recursion (``jaxem.chain_latent``); the emission table
    ``[B, T, K]`` is one contraction of the features ``[1, x', quad(x')]`` (data
    centred and scaled once, as in ``gaussian_mixture``) with the natural
    parameters; the M-step is closed form. Memory is O(B · T · (K + F)) for
    ``F = 1 + D + quad`` features, e.g. ~30 MB for T = 100 000, K = 8, D = 2 in float32.

    Args:
      n_states: number of hidden states K.
      covariance_type: ``"diag"``, ``"full"``, ``"tied"`` or ``"spherical"``.
      reg_covar: added to every emission variance in the M-step (data units).
      transition_mask: optional ``[K, K]`` bool of allowed transitions (e.g.
        ``numpy.triu(numpy.ones((K, K), bool))`` for left-to-right); disallowed
        ones stay exactly zero.
      parallel: compute the log-partition in parallel over time
        (``lax.associative_scan``; see ``jaxem.chain_latent``) instead of sequentially.
      prior: optional ``jaxem.priors.HMMPrior``: Dirichlet concentrations of the
        initial probabilities and transition rows, and a
        ``jaxem.priors.GaussianPrior`` of the emissions; EM is then MAP-EM
        (``docs/priors.md``). ``jaxem.priors.hmmlearn_gaussian`` maps hmmlearn's
        priors (use ``reg_covar=0.0`` to match hmmlearn exactly).
      missing: ``"reject"`` (default: NaN in the data is an error) or
        ``"marginalize"``: NaN entries are missing at random; a step uses the
        marginal of its observed features, a step with none observed contributes
        no emission (``jaxem/_src/hmm_missing.py``; O(B T K D³) per iteration).

    Returns:
      A ``Model`` whose params are ``GaussianHMMParams``. ``init`` runs k-means
      (k-means++ seeding, Lloyd's iterations, in JAX) on the pooled steps and starts
      each state from its cluster's mean and covariance, with initial probabilities
      and transition rows drawn from Dirichlet(1/K) as hmmlearn does
      (``docs/starts.md``); ``sample(key, params, n)``
      draws one sequence of ``n`` steps, ``(x [n, D], z [n])``.

    Examples:
      >>> x, _ = jaxem.load_dataset("geyser")
      >>> data = jaxem.Sequences.from_list([x[:150], x[150:]])   # two sequences
      >>> model = jaxem.models.gaussian_hmm(2, covariance_type="full")
      >>> result = jaxem.fit(model, data, key=0, n_restarts=4)
      >>> result.params.transition_matrix.shape
      (2, 2)
      >>> jaxem.viterbi(model, result.params, data).shape
      (2, 150)
    """
    n_states = validation.check_positive_int(n_states, "n_states")
    covariance = covariance_of(covariance_type)
    reg_covar = validation.check_nonnegative_float(reg_covar, "reg_covar")
    if missing not in ("reject", "marginalize"):
        raise ValueError(f"missing must be 'reject' or 'marginalize', got {missing!r}")
    initial, transition, emissions = priors.check_hmm_prior(
        prior, n_states, lambda value: gaussian.check_prior(value, covariance, n_states)
    )
    if missing == "marginalize" and prior is not None:
        raise ValueError("missing='marginalize' does not take a prior yet; pass prior=None")
    model = component_hmm(
        gaussian.component(covariance, reg_covar, emissions),
        n_states,
        params_type=GaussianHMMParams,
        transition_mask=transition_mask,
        parallel=bool(parallel),
        initial_prior=initial,
        transition_prior=transition,
    )
    if missing == "marginalize":
        return hmm_missing.marginalizing_hmm(model, covariance, reg_covar, transition_mask)
    return model
