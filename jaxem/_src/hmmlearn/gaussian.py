"""hmmlearn's ``GaussianHMM`` on jaxem's Gaussian HMM (``jaxem.models.gaussian_hmm``)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxem._src.families.covariance import COVARIANCE_TYPES, covariance_of, covariances_from_factor
from jaxem._src.families.gaussian import GaussianHMMParams
from jaxem._src.hmmlearn.base import _BaseHMM, check_covariance_values, symmetric_covars
from jaxem._src.registry import hashable
from jaxem.models.gaussian_hmm import gaussian_hmm


def starting_covariance(X: np.ndarray, min_covar: float) -> np.ndarray:
    """hmmlearn's starting covariance ``[D, D]``: the data's covariance plus ``min_covar``."""
    return np.atleast_2d(np.cov(X.T)) + min_covar * np.eye(X.shape[1])


def check_covariance_type(covariance_type) -> None:
    """``ValueError`` unless ``covariance_type`` is one of ``COVARIANCE_TYPES``."""
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")


def _check_covars(covars, covariance_type, n_components):
    """hmmlearn's checks of ``covars_`` in the type's shape (``ValueError``)."""
    check_covariance_type(covariance_type)
    if covariance_type == "spherical":
        if len(covars) != n_components:
            raise ValueError("'spherical' covars have length n_components")
    elif covariance_type == "tied":
        if covars.ndim != 2 or covars.shape[0] != covars.shape[1]:
            raise ValueError("'tied' covars must have shape (n_dim, n_dim)")
    elif covariance_type == "diag":
        if covars.ndim != 2:
            raise ValueError("'diag' covars must have shape (n_components, n_dim)")
    else:
        if covars.ndim != 3 or covars.shape[1] != covars.shape[2]:
            raise ValueError("'full' covars must have shape (n_components, n_dim, n_dim)")
    check_covariance_values(covars, covariance_type)


class GaussianHMM(_BaseHMM):
    """Hidden Markov model with Gaussian emissions (hmmlearn's ``GaussianHMM``).

    Args: as hmmlearn 0.3.3 (``n_components``, ``covariance_type`` ("diag"
    default, "spherical", "full", "tied"), ``min_covar`` (added to the starting
    covariance), ``startprob_prior``, ``transmat_prior``, ``means_prior``,
    ``means_weight``, ``covars_prior``, ``covars_weight``, ``algorithm``,
    ``random_state``, ``n_iter``, ``tol`` (on the gain of the total
    log-likelihood), ``verbose``, ``params`` / ``init_params`` (letters ``s t m
    c``), ``implementation``), plus ``n_init``: starts run together, the best kept.

    Attributes: ``startprob_ [K]``, ``transmat_ [K, K]``, ``means_ [K, D]``,
    ``covars_`` (``[K, D, D]`` for every type, as hmmlearn's property; ``_covars_``
    holds the type's own shape), ``n_features``, ``monitor_``.

    Examples:
      >>> import numpy as np
      >>> from jaxem.hmmlearn import GaussianHMM
      >>> model = GaussianHMM(2, "full", n_iter=5, random_state=0)
      >>> model = model.fit(np.random.default_rng(0).normal(size=(100, 2)))
      >>> model.covars_.shape
      (2, 2, 2)
    """

    _kind = "gaussian"
    _emission_letters = {"m": "means_", "c": "_covars_"}

    def __init__(self, n_components=1, covariance_type="diag", min_covar=1e-3, startprob_prior=1.0,
                 transmat_prior=1.0, means_prior=0, means_weight=0, covars_prior=1e-2, covars_weight=1,
                 algorithm="viterbi", random_state=None, n_iter=10, tol=1e-2, verbose=False, params="stmc",
                 init_params="stmc", implementation="log", *, n_init=1):
        super().__init__(n_components, startprob_prior, transmat_prior, algorithm, random_state, n_iter, tol,
                         verbose, params, init_params, implementation, n_init)
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight

    @property
    def covars_(self):
        """``[K, D, D]`` covariance matrices (every type, as hmmlearn)."""
        covars = np.asarray(self._covars_)
        k, d = self.n_components, self.n_features
        if self.covariance_type == "full":
            return covars
        if self.covariance_type == "diag":
            return np.array([np.diag(row) for row in covars])
        if self.covariance_type == "tied":
            return np.tile(covars, (k, 1, 1))
        return np.eye(d)[None, :, :] * np.ravel(covars)[:, None, None]

    @covars_.setter
    def covars_(self, covars):
        covars = np.array(covars, dtype=float, copy=True)
        if self.covariance_type == "spherical" and covars.size == self.n_components:
            covars = covars.reshape(self.n_components)
        _check_covars(covars, self.covariance_type, self.n_components)
        self._covars_ = covars

    def _covariance_type(self):
        return self.covariance_type

    def _check(self):
        super()._check()
        check_covariance_type(self.covariance_type)
        self.means_ = np.asarray(self.means_, float)
        if self.means_.ndim != 2 or self.means_.shape[0] != self.n_components:
            raise ValueError(f"means_ must have shape (n_components, n_features), got {self.means_.shape}")
        self.n_features = self.means_.shape[1]
        expected = covariance_of(self.covariance_type).factor_shape(self.n_components, self.n_features)
        if np.shape(self._covars_) != expected:
            raise ValueError(f"covars_ for covariance_type={self.covariance_type!r} must have shape {expected}, "
                             f"got {np.shape(self._covars_)}")

    def _model(self):
        return gaussian_hmm(int(self.n_components), covariance_type=self.covariance_type, reg_covar=float(self.min_covar))

    def _emission_prior(self):
        return dict(means=hashable(self.means_prior), means_weight=hashable(self.means_weight),
                    covars=hashable(self.covars_prior), covars_weight=hashable(self.covars_weight))

    def _to_params(self, dtype):
        covariance = covariance_of(self.covariance_type)
        initial, transition = self._chain_params(dtype)
        factor = covariance.factor_from_covariances(jnp.asarray(self._covars_, dtype))
        return GaussianHMMParams(initial, transition, jnp.asarray(self.means_, dtype), factor)

    def _emission_attributes(self, params):
        covariance = covariance_of(self.covariance_type)
        k, d = np.shape(params.means)
        full = covariances_from_factor(jnp.asarray(params.precisions_cholesky), k, d, covariance)
        covars = symmetric_covars(np.asarray(covariance.reduce_covariances(full)), self.covariance_type)
        return {"means_": np.asarray(params.means), "_covars_": covars}

    def _restart_attributes(self, drawn, X):
        # hmmlearn's starting covariances: the data's covariance plus min_covar, in every state
        starts = super()._restart_attributes(drawn, X)
        cv = starting_covariance(X, self.min_covar)
        k = self.n_components
        shape = {"spherical": np.full(k, np.mean(np.diag(cv))), "tied": cv, "diag": np.tile(np.diag(cv), (k, 1)),
                 "full": np.tile(cv, (k, 1, 1))}[self.covariance_type]
        starts["_covars_"] = np.broadcast_to(shape, (int(self.n_init),) + shape.shape).copy()
        return starts

    def _get_n_fit_scalars_per_param(self):
        k, d = self.n_components, self.n_features
        covars = {"spherical": k, "diag": k * d, "full": k * d * (d + 1) // 2, "tied": d * (d + 1) // 2}
        return {"s": k - 1, "t": k * (k - 1), "m": k * d, "c": covars[self.covariance_type]}

    def _emission_draws(self, states, random_state):
        covars = self.covars_
        x = np.empty((len(states), self.means_.shape[1]))
        for state in np.unique(states):
            where = states == state
            x[where] = random_state.multivariate_normal(self.means_[state], covars[state], size=int(where.sum()))
        return x
