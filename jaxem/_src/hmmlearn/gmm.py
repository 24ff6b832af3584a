"""hmmlearn's ``GMMHMM`` on jaxem's GMM-HMM (``jaxem.models.gmm_hmm``: its
log-partition's gradient is the E-step), with hmmlearn's starts written in JAX and
hmmlearn's M-step with its priors (``jaxem/_src/hmmlearn_m_step.py``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src.families.covariance import covariance_of
from jaxem._src.families.gmm import GMMHMMParams, gmm_hmm_covariances
from jaxem._src.hmm import masked_kmeans, random_chain
from jaxem._src.hmmlearn.base import _BaseHMM, check_covariance_values, symmetric_covars
from jaxem._src.hmmlearn.gaussian import check_covariance_type
from jaxem._src.hmmlearn_m_step import gmm_prior_defaults
from jaxem._src.registry import hashable, memoized
from jaxem._src.sequences import step_mask
from jaxem.models.gmm_hmm import gmm_hmm


KMEANS_RUNS = 10  # hmmlearn's ``KMeans(n_init=10)``


def best_kmeans(key, x, mask, n_centres: int, n_runs: int = KMEANS_RUNS):
    """k-means as scikit-learn's ``KMeans(n_init=n_runs)`` that hmmlearn's
    ``GMMHMM`` starts with: ``n_runs`` runs of ``masked_kmeans`` on the rows of
    ``x [N, D]`` where ``mask [N]`` is True (vmapped), the ``[K, D]`` centres of
    the one of least inertia (the sum over valid rows of the squared distance to
    the nearest centre). One run's k-means++ seeding depends on the order of the
    rows; the best of several rarely does (hmmlearn's test that a fit does not
    depend on the order of its sequences)."""
    x, mask = jnp.asarray(x), jnp.asarray(mask)
    centres = jax.vmap(lambda k: masked_kmeans(k, x, mask, n_centres))(jax.random.split(key, n_runs))  # [R, K, D]
    distances = (jnp.sum(x * x, axis=1)[None, :, None] - 2.0 * jnp.einsum("nd,rkd->rnk", x, centres)
                 + jnp.sum(centres * centres, axis=2)[:, None, :])  # [R, N, K]
    inertia = jnp.sum(jnp.where(mask[None, :], jnp.min(distances, axis=2), 0.0), axis=1)  # [R]
    return centres[jnp.argmin(inertia)]


def _hmmlearn_gmm_init(n_states: int, n_mix: int, covariance, min_covar: float):
    """``init(key, data)`` for a GMM-HMM as hmmlearn's ``GMMHMM._init``, in JAX
    (vmapped over restarts): k-means (the best of ``KMEANS_RUNS`` runs, as
    hmmlearn's ``KMeans(n_init=10)``: ``best_kmeans``) on the pooled steps into
    ``n_states`` clusters, then k-means into ``n_mix`` clusters within each; a cluster with fewer
    than ``n_mix`` steps draws its means from a normal around the mean of the
    centres with the data's covariance (hmmlearn's fallback). Every covariance is
    the data's covariance plus ``min_covar`` (spherical: the mean of its
    diagonal), weights are uniform, and initial and transition probabilities are
    Dirichlet(1/K) draws as hmmlearn's."""

    def init(key, data):
        chain_key, state_key, mix_key, fallback_key = jax.random.split(key, 4)
        features = data.features
        b, t, d = features.x.shape
        dtype = features.x.dtype
        x = (features.x * features.scale[None, None, :] + features.shift[None, None, :]).reshape(b * t, d)
        mask = step_mask(data.lengths, t).reshape(b * t)
        weights = mask.astype(dtype)
        n = jnp.sum(weights)
        mean = jnp.sum(x * weights[:, None], axis=0) / n
        centred = (x - mean[None, :]) * weights[:, None]
        cv = centred.T @ centred / jnp.maximum(n - 1.0, 1.0) + min_covar * jnp.eye(d, dtype=dtype)
        centres = best_kmeans(state_key, x, mask, n_states)
        labels = jnp.argmin(jnp.sum((x[:, None, :] - centres[None, :, :]) ** 2, axis=2), axis=1)
        members = jnp.sum((labels[:, None] == jnp.arange(n_states)[None, :]) & mask[:, None], axis=0)  # [K]

        def state_means(key_k, state):
            return best_kmeans(key_k, x, mask & (labels == state), n_mix)

        means = jax.vmap(state_means)(jax.random.split(mix_key, n_states), jnp.arange(n_states))  # [K, M, D]
        noise = jax.random.normal(fallback_key, (n_states, n_mix, d), dtype)
        drawn = jnp.mean(centres, axis=0)[None, None, :] + jnp.einsum("de,kme->kmd", jnp.linalg.cholesky(cv), noise)
        means = jnp.where((members >= n_mix)[:, None, None], means, drawn)
        full = jnp.broadcast_to(cv, (n_states, n_mix, d, d))
        covariances = {
            "full": full,
            "tied": full[:, 0],
            "diag": jnp.diagonal(full, axis1=-2, axis2=-1),
            "spherical": jnp.mean(jnp.diagonal(full, axis1=-2, axis2=-1), axis=-1),
        }[covariance.name]
        initial, transition = random_chain(chain_key, n_states, dtype)
        return GMMHMMParams(
            initial_probs=initial,
            transition_matrix=transition,
            weights=jnp.full((n_states, n_mix), 1.0 / n_mix, dtype),
            means=means,
            precisions_cholesky=covariance.factor_from_covariances(covariances),
        )

    return init


@memoized
def _gmm_hmm(n_states: int, n_mix: int, covariance_type: str, min_covar: float):
    """jaxem's GMM-HMM (its E-step) with hmmlearn's starts (one object per settings)."""
    model = gmm_hmm(n_states, n_mix, covariance_type=covariance_type, reg_covar=min_covar)
    return model._replace(init=_hmmlearn_gmm_init(n_states, n_mix, covariance_of(covariance_type), min_covar))


_GMM_COVARS_SHAPES = {
    "spherical": lambda k, m, d: (k, m),
    "diag": lambda k, m, d: (k, m, d),
    "full": lambda k, m, d: (k, m, d, d),
    "tied": lambda k, m, d: (k, d, d),
}


class GMMHMM(_BaseHMM):
    """Hidden Markov model with Gaussian-mixture emissions (hmmlearn's ``GMMHMM``).

    Args: as hmmlearn 0.3.3 (``n_components``, ``n_mix``, ``min_covar`` (added to
    the starting covariances), ``startprob_prior``, ``transmat_prior``,
    ``weights_prior``, ``means_prior``, ``means_weight``, ``covars_prior``,
    ``covars_weight`` (``None``: hmmlearn's defaults for the type, with which the
    covariances are the plain weighted scatter), ``algorithm``,
    ``covariance_type`` ("diag" default, "spherical", "full", "tied": one full
    covariance shared by the mixture components of each state), ``random_state``,
    ``n_iter``, ``tol``, ``verbose``, ``params`` / ``init_params`` (letters ``s t m
    c w``), ``implementation``), plus ``n_init``: starts run together, the best kept.

    Attributes: ``startprob_ [K]``, ``transmat_ [K, K]``, ``weights_ [K, M]``,
    ``means_ [K, M, D]``, ``covars_`` in the type's shape (``[K, M]`` spherical,
    ``[K, M, D]`` diag, ``[K, M, D, D]`` full, ``[K, D, D]`` tied), ``n_features``,
    ``monitor_``; all settable by hand and used.

    The E-step is jaxem's GMM-HMM (``jaxem.models.gmm_hmm``: the gradient of its
    log-partition is the joint posterior of state and component); the M-step is
    hmmlearn's, with its priors (``jaxem/_src/hmmlearn_m_step.py``). Differences
    from hmmlearn: ``covars_prior`` / ``covars_weight`` left ``None`` stay ``None``
    (hmmlearn overwrites them with arrays in ``_check``); ``aic`` / ``bic`` count
    ``K (M - 1)`` free weights (hmmlearn counts ``M - 1``); a covariance of zero is
    refused (``ValueError``) rather than warned about.

    Examples:
      >>> import numpy as np
      >>> from jaxem.hmmlearn import GMMHMM
      >>> rng = np.random.default_rng(0)
      >>> x = np.concatenate([rng.normal(0.0, 1.0, (100, 2)), rng.normal(6.0, 1.0, (100, 2))])
      >>> model = GMMHMM(2, n_mix=2, n_iter=10, random_state=0).fit(x)
      >>> model.means_.shape, model.covars_.shape
      ((2, 2, 2), (2, 2, 2))
    """

    _kind = "gmm"
    _emission_letters = {"m": "means_", "c": "covars_", "w": "weights_"}

    def __init__(self, n_components=1, n_mix=1, min_covar=1e-3, startprob_prior=1.0, transmat_prior=1.0,
                 weights_prior=1.0, means_prior=0.0, means_weight=0.0, covars_prior=None, covars_weight=None,
                 algorithm="viterbi", covariance_type="diag", random_state=None, n_iter=10, tol=1e-2,
                 verbose=False, params="stmcw", init_params="stmcw", implementation="log", *, n_init=1):
        super().__init__(n_components, startprob_prior, transmat_prior, algorithm, random_state, n_iter, tol,
                         verbose, params, init_params, implementation, n_init)
        self.n_mix = n_mix
        self.min_covar = min_covar
        self.weights_prior = weights_prior
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight
        self.covariance_type = covariance_type

    def _covariance_type(self):
        return self.covariance_type

    def _check_options(self):
        super()._check_options()
        check_covariance_type(self.covariance_type)
        if isinstance(self.n_mix, bool) or not isinstance(self.n_mix, (int, np.integer)) or self.n_mix < 1:
            raise ValueError(f"n_mix must be a positive integer, got {self.n_mix!r}")

    def _check(self):
        super()._check()
        self.means_ = np.asarray(self.means_, float)
        if not hasattr(self, "n_features") and self.means_.ndim == 3:
            self.n_features = self.means_.shape[2]
        k, m, d = self.n_components, self.n_mix, self.n_features
        self.weights_ = np.asarray(self.weights_, float)
        if self.weights_.shape != (k, m):
            raise ValueError(f"weights_ must have shape (n_components, n_mix), actual shape: {self.weights_.shape}")
        self._check_sum_1("weights_")
        if self.means_.shape != (k, m, d):
            raise ValueError(f"means_ must have shape (n_components, n_mix, n_features), actual shape: {self.means_.shape}")
        self.covars_ = np.asarray(self.covars_, float)
        expected = _GMM_COVARS_SHAPES[self.covariance_type](k, m, d)
        if self.covars_.shape != expected:
            raise ValueError(f"{self.covariance_type!r} mixture covars must have shape {expected}, "
                             f"actual shape: {self.covars_.shape}")
        check_covariance_values(self.covars_, self.covariance_type)

    def _model(self):
        return _gmm_hmm(int(self.n_components), int(self.n_mix), self.covariance_type, float(self.min_covar))

    def _emission_prior(self):
        covars_prior, covars_weight = gmm_prior_defaults(self.covariance_type, int(self.n_mix), int(self.n_features))
        return dict(
            weights=hashable(self.weights_prior), means=hashable(self.means_prior),
            means_weight=hashable(self.means_weight),
            covars=hashable(covars_prior if self.covars_prior is None else self.covars_prior),
            covars_weight=hashable(covars_weight if self.covars_weight is None else self.covars_weight),
        )

    def _to_params(self, dtype):
        initial, transition = self._chain_params(dtype)
        factor = covariance_of(self.covariance_type).factor_from_covariances(jnp.asarray(self.covars_, dtype))
        return GMMHMMParams(initial, transition, jnp.asarray(self.weights_, dtype), jnp.asarray(self.means_, dtype), factor)

    def _emission_attributes(self, params):
        return {"weights_": np.asarray(params.weights), "means_": np.asarray(params.means),
                "covars_": symmetric_covars(np.asarray(gmm_hmm_covariances(params, self.covariance_type)),
                                            self.covariance_type)}

    def _get_n_fit_scalars_per_param(self):
        k, m, d = self.n_components, self.n_mix, self.n_features
        covars = {"spherical": k * m, "diag": k * m * d, "full": k * m * d * (d + 1) // 2, "tied": k * d * (d + 1) // 2}
        return {"s": k - 1, "t": k * (k - 1), "m": k * m * d, "c": covars[self.covariance_type], "w": k * (m - 1)}

    def _emission_draws(self, states, random_state):
        k, m, d = self.means_.shape
        covars = np.asarray(self.covars_)
        if self.covariance_type == "tied":
            full = np.broadcast_to(covars[:, None], (k, m, d, d))
        elif self.covariance_type == "full":
            full = covars
        elif self.covariance_type == "diag":
            full = covars[..., None] * np.eye(d)
        else:
            full = covars[..., None, None] * np.eye(d)
        cdf = np.cumsum(self.weights_[states], axis=1)
        mix = np.minimum((cdf > random_state.rand(len(states))[:, None]).argmax(axis=1), m - 1)
        x = np.empty((len(states), d))
        for t, (state, component) in enumerate(zip(states, mix)):
            x[t] = random_state.multivariate_normal(self.means_[state, component], full[state, component])
        return x
