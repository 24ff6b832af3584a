"""hmmlearn's ``PoissonHMM`` on jaxem's Poisson HMM (``jaxem.models.poisson_hmm``)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from sklearn.utils import check_array

from jaxem._src.families.poisson import PoissonHMMParams
from jaxem._src.hmmlearn.base import _BaseHMM
from jaxem._src.registry import hashable
from jaxem.models.poisson_hmm import poisson_hmm


class PoissonHMM(_BaseHMM):
    """Hidden Markov model with Poisson emissions (hmmlearn's ``PoissonHMM``):
    ``X`` is ``[n_samples, n_features]`` non-negative integer counts.

    Args: as hmmlearn 0.3.3 (``lambdas_prior``, ``lambdas_weight``: the Gamma
    prior's alpha and beta; letters ``s t l``), plus ``n_init``.

    Attributes: ``startprob_``, ``transmat_``, ``lambdas_ [K, n_features]``.

    Examples:
      >>> import numpy as np
      >>> counts = np.random.default_rng(0).poisson(3.0, (200, 2))
      >>> from jaxem.hmmlearn import PoissonHMM
      >>> PoissonHMM(2, n_iter=5, random_state=0).fit(counts).lambdas_.shape
      (2, 2)
    """

    _kind = "poisson"
    _emission_letters = {"l": "lambdas_"}

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0, lambdas_prior=0.0,
                 lambdas_weight=0.0, algorithm="viterbi", random_state=None, n_iter=10, tol=1e-2, verbose=False,
                 params="stl", init_params="stl", implementation="log", *, n_init=1):
        super().__init__(n_components, startprob_prior, transmat_prior, algorithm, random_state, n_iter, tol,
                         verbose, params, init_params, implementation, n_init)
        self.lambdas_prior = lambdas_prior
        self.lambdas_weight = lambdas_weight

    def _validate_X(self, X):
        X = check_array(X)
        if np.any(X < 0) or np.any(X != np.round(X)):
            raise ValueError("PoissonHMM takes X of non-negative integer counts")
        return X

    def _check(self):
        super()._check()
        self.lambdas_ = np.atleast_2d(np.asarray(self.lambdas_, float))
        n_features = getattr(self, "n_features", self.lambdas_.shape[1])
        if self.lambdas_.shape != (self.n_components, n_features):
            raise ValueError("lambdas_ must have shape (n_components, n_features)")
        if np.any(self.lambdas_ <= 0):
            raise ValueError("lambdas_ must be positive")
        self.n_features = n_features

    def _model(self):
        return poisson_hmm(int(self.n_components))

    def _emission_prior(self):
        return dict(emission=hashable(self.lambdas_prior), emission_weight=hashable(self.lambdas_weight))

    def _to_params(self, dtype):
        initial, transition = self._chain_params(dtype)
        return PoissonHMMParams(initial, transition, jnp.asarray(self.lambdas_, dtype))

    def _emission_attributes(self, params):
        return {"lambdas_": np.asarray(params.rates)}

    def _get_n_fit_scalars_per_param(self):
        k, d = self.n_components, self.n_features
        return {"s": k - 1, "t": k * (k - 1), "l": k * d}

    def _emission_draws(self, states, random_state):
        return random_state.poisson(self.lambdas_[states])
