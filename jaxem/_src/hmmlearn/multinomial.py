"""hmmlearn's ``MultinomialHMM`` on jaxem's multinomial HMM (``jaxem.models.multinomial_hmm``)."""

from __future__ import annotations

import numpy as np

from jaxem._src.hmmlearn.categorical import _EmissionProbsHMM
from jaxem.models.multinomial_hmm import MultinomialHMMParams, multinomial_hmm


class MultinomialHMM(_EmissionProbsHMM):
    """Hidden Markov model with multinomial emissions (hmmlearn's
    ``MultinomialHMM``): every row of ``X`` holds the counts of ``n_features``
    categories in ``n_trials`` draws.

    Args: as hmmlearn 0.3.3 (``n_trials``: an int, or ``None`` to take each row's
    total; letters ``s t e``), plus ``n_init``.

    Attributes: ``startprob_``, ``transmat_``, ``emissionprob_ [K, n_features]``.

    Examples:
      >>> import numpy as np
      >>> counts = np.random.default_rng(0).multinomial(5, [0.2, 0.3, 0.5], size=100)
      >>> from jaxem.hmmlearn import MultinomialHMM
      >>> MultinomialHMM(2, n_trials=5, n_iter=5, random_state=0).fit(counts).emissionprob_.shape
      (2, 3)
    """

    _kind = "multinomial"
    _params_type = MultinomialHMMParams

    def __init__(self, n_components=1, n_trials=None, startprob_prior=1.0, transmat_prior=1.0, algorithm="viterbi",
                 random_state=None, n_iter=10, tol=1e-2, verbose=False, params="ste", init_params="ste",
                 implementation="log", *, n_init=1):
        super().__init__(n_components, startprob_prior, transmat_prior, algorithm, random_state, n_iter, tol,
                         verbose, params, init_params, implementation, n_init)
        self.n_trials = n_trials

    def _check_and_set_n_features(self, X):
        super()._check_and_set_n_features(X)
        if not np.issubdtype(X.dtype, np.integer) or X.min() < 0:
            raise ValueError("Symbol counts should be nonnegative integers")
        if self.n_trials is None:
            self.n_trials = X.sum(axis=1)
        elif not (X.sum(axis=1) == self.n_trials).all():
            raise ValueError("Total count for each sample should add up to the number of trials")

    def _check(self):
        super()._check()
        self.emissionprob_ = np.atleast_2d(np.asarray(self.emissionprob_, float))
        n_features = getattr(self, "n_features", self.emissionprob_.shape[1])
        if self.emissionprob_.shape != (self.n_components, n_features):
            raise ValueError("emissionprob_ must have shape (n_components, n_features)")
        self.n_features = n_features
        self._check_sum_1("emissionprob_")
        if self.n_trials is None:
            raise ValueError("n_trials must be set")

    def _model(self):
        # n_trials may differ between rows (hmmlearn's array form): the model takes any totals
        return multinomial_hmm(int(self.n_components))

    def _emission_draws(self, states, random_state):
        trials = np.unique(self.n_trials)
        if trials.size != 1:
            raise ValueError("For sampling, a single n_trials must be given")
        return np.stack([random_state.multinomial(int(trials[0]), self.emissionprob_[s]) for s in states])
