"""hmmlearn's ``CategoricalHMM`` on jaxem's categorical HMM
(``jaxem.models.categorical_hmm``), and what it shares with ``MultinomialHMM``."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from sklearn.utils import check_array

from jaxem._src.families.categorical import CategoricalHMMParams
from jaxem._src.hmmlearn.base import _BaseHMM
from jaxem._src.registry import hashable
from jaxem.models.categorical_hmm import categorical_hmm


class _EmissionProbsHMM(_BaseHMM):
    """An HMM whose emissions are rows of category probabilities ``emissionprob_
    [K, n_features]`` (letter ``e``): categorical and multinomial."""

    _emission_letters = {"e": "emissionprob_"}
    _params_type = CategoricalHMMParams

    def _to_params(self, dtype):
        initial, transition = self._chain_params(dtype)
        return self._params_type(initial, transition, jnp.asarray(self.emissionprob_, dtype))

    def _emission_attributes(self, params):
        return {"emissionprob_": np.asarray(params.emission_probs)}

    def _get_n_fit_scalars_per_param(self):
        k, s = self.n_components, self.n_features
        return {"s": k - 1, "t": k * (k - 1), "e": k * (s - 1)}


class CategoricalHMM(_EmissionProbsHMM):
    """Hidden Markov model with categorical (symbol) emissions (hmmlearn's
    ``CategoricalHMM``). ``X`` is ``[n_samples, 1]`` integer symbols.

    Args: as hmmlearn 0.3.3 (``emissionprob_prior``, ``n_features``: the number of
    symbols, told from the data when ``None``; letters ``s t e``), plus ``n_init``.

    Attributes: ``startprob_``, ``transmat_``, ``emissionprob_ [K, n_features]``.

    Examples:
      >>> import numpy as np
      >>> symbols = np.random.default_rng(0).integers(0, 3, (200, 1))
      >>> from jaxem.hmmlearn import CategoricalHMM
      >>> model = CategoricalHMM(2, n_iter=5, random_state=0).fit(symbols)
      >>> model.emissionprob_.shape
      (2, 3)
    """

    _kind = "categorical"

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0, *, emissionprob_prior=1.0,
                 n_features=None, algorithm="viterbi", random_state=None, n_iter=10, tol=1e-2, verbose=False,
                 params="ste", init_params="ste", implementation="log", n_init=1):
        super().__init__(n_components, startprob_prior, transmat_prior, algorithm, random_state, n_iter, tol,
                         verbose, params, init_params, implementation, n_init)
        self.emissionprob_prior = emissionprob_prior
        self.n_features = n_features

    def _check_and_set_n_features(self, X):
        if not np.issubdtype(X.dtype, np.integer):
            raise ValueError("Symbols should be integers")
        if X.min() < 0:
            raise ValueError("Symbols should be nonnegative")
        if self.n_features is not None:
            if self.n_features - 1 < X.max():
                raise ValueError(f"Largest symbol is {X.max()} but the model only emits symbols up to {self.n_features - 1}")
        else:
            self.n_features = int(X.max()) + 1

    def _validate_X(self, X):
        X = check_array(X)
        if X.shape[1] != 1:
            raise ValueError(f"CategoricalHMM takes X of shape (n_samples, 1), got {X.shape}")
        if self.n_features is not None and X.size and X.max() >= self.n_features:
            raise ValueError(f"Largest symbol is {X.max()} but the model only emits symbols up to {self.n_features - 1}")
        return X

    def _check(self):
        super()._check()
        self.emissionprob_ = np.atleast_2d(np.asarray(self.emissionprob_, float))
        if self.n_features is None:
            self.n_features = self.emissionprob_.shape[1]
        if self.emissionprob_.shape != (self.n_components, self.n_features):
            raise ValueError(f"emissionprob_ must have shape ({self.n_components}, {self.n_features})")
        self._check_sum_1("emissionprob_")

    def _observations(self, X):
        return X[:, 0]

    def _model(self):
        return categorical_hmm(int(self.n_components), int(self.n_features))

    def _emission_prior(self):
        return dict(emission=hashable(self.emissionprob_prior))

    def _emission_draws(self, states, random_state):
        cdf = np.cumsum(self.emissionprob_, axis=1)
        u = random_state.rand(len(states))
        return (cdf[states] > u[:, None]).argmax(axis=1)[:, None]
