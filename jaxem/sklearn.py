"""scikit-learn estimators backed by jaxem (needs scikit-learn: ``pip install jaxem[sklearn]``).

``jaxem.sklearn.GaussianMixture`` and ``jaxem.sklearn.GaussianHMM`` (hmmlearn's
``fit(X, lengths)`` convention) follow scikit-learn's conventions (constructor
hyperparameters only, ``fit``/``predict``/``score``..., fitted attributes ending in
``_``), so it works in ``Pipeline``, ``GridSearchCV`` and ``clone``. It is a thin
wrapper: ``fit`` calls ``jaxem.fit`` (``n_init`` restarts, vmapped in one compiled
program) and the other methods call the functional API on the fitted params.

scikit-learn is imported only by this module; ``import jaxem`` never needs it.
"""

from __future__ import annotations

import functools
import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np

try:
    from sklearn.base import BaseEstimator, DensityMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "jaxem.sklearn needs scikit-learn >= 1.6: pip install 'jaxem[sklearn]'"
    ) from e

from jaxem._src import engine
from jaxem._src.families.covariance import covariance_of
from jaxem._src.sequences import Sequences, step_mask
from jaxem.models.gaussian_hmm import GaussianHMMParams, gaussian_hmm
from jaxem.models.gaussian_mixture import GaussianMixtureParams, gaussian_mixture
from jaxem.models.gaussian_mixture import covariances as full_covariances

__all__ = ["GaussianHMM", "GaussianMixture"]

_INIT_NAMES = {"kmeans++": "kmeans++", "k-means++": "kmeans++", "random_from_data": "random_from_data"}


@functools.lru_cache(maxsize=64)
def _model(n_components, covariance_type, reg_covar, init):
    # One Model object per configuration, so that jit caches are reused across calls.
    return gaussian_mixture(n_components, covariance_type=covariance_type, reg_covar=reg_covar, init=init)


def _hashable_float(value):
    """A real number as a plain float (NumPy scalars too), so that the cached model
    factories see equal settings as equal; anything else is passed on unchanged for
    the model factory to reject."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


def _seed(random_state) -> int:
    """An int seed: ``random_state`` itself when it is an int, else drawn from it."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


class GaussianMixture(DensityMixin, BaseEstimator):
    """A Gaussian mixture fitted by EM with jaxem, in scikit-learn's API.

    Args:
      n_components: number of components K.
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
      tol: convergence tolerance on the change of the mean log-likelihood per sample.
      reg_covar: added to the diagonal of every covariance (data units).
      max_iter: maximum number of EM iterations per restart.
      n_init: number of random restarts, run together under ``vmap``; the best
        (highest log-likelihood) is kept.
      init_params: ``"kmeans++"`` (also spelled ``"k-means++"``) or
        ``"random_from_data"``.
      random_state: ``None``, an int or a ``numpy.random.RandomState``. An int ``s``
        gives exactly ``jaxem.fit(..., key=s)``.
      verbose: 0 for silence; ``n >= 1`` prints progress to stderr every ``10 * n``
        EM iterations (see ``jaxem.fit``'s ``progress``).

    Fitted attributes: ``weights_ [K]``, ``means_ [K, D]``, ``covariances_`` and
    ``precisions_cholesky_`` and ``precisions_`` (scikit-learn's shape for the
    covariance type), ``converged_``, ``n_iter_``, ``lower_bound_`` (mean
    log-likelihood per sample of the fitted params), ``lower_bounds_`` (its trace),
    ``n_features_in_``.

    Arrays are computed in the input's float dtype (float64 needs
    ``jax.config.update("jax_enable_x64", True)``; otherwise float32).

    Example:
      >>> from jaxem.sklearn import GaussianMixture
      >>> gm = GaussianMixture(3, n_init=8, random_state=0).fit(x)
      >>> gm.predict(x), gm.bic(x)
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans++",
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.verbose = verbose

    # -- helpers ------------------------------------------------------------------

    def _get_model(self):
        if self.init_params not in _INIT_NAMES:
            raise ValueError(f"init_params must be one of {tuple(_INIT_NAMES)}, got {self.init_params!r}")
        return _model(self.n_components, self.covariance_type, _hashable_float(self.reg_covar), _INIT_NAMES[self.init_params])

    def _params(self, dtype):
        return GaussianMixtureParams(
            jnp.asarray(self.weights_).astype(dtype),
            jnp.asarray(self.means_).astype(dtype),
            jnp.asarray(self.precisions_cholesky_).astype(dtype),
        )

    def _validate(self, X, reset):
        return validate_data(self, X, reset=reset, dtype=[np.float64, np.float32], ensure_min_samples=1 if not reset else 2)

    def _fitted(self, X):
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        x = jnp.asarray(X)
        return self._get_model(), self._params(x.dtype), x

    # -- scikit-learn API ----------------------------------------------------------

    def fit(self, X, y=None):
        """Fits the mixture to ``X [n_samples, n_features]``; ``y`` is ignored."""
        del y
        X = self._validate(X, reset=True)
        model = self._get_model()
        if X.shape[0] < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = {self.n_components}, "
                f"n_samples = {X.shape[0]}"
            )
        progress = 10 * int(self.verbose) if self.verbose else False
        result = engine.fit(
            model,
            jnp.asarray(X),
            key=_seed(self.random_state),
            n_restarts=self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            progress=progress,
        )
        self._set_fitted(result, X.shape[0])
        if not self.converged_:
            warnings.warn(
                f"Best of {self.n_init} initializations did not converge in max_iter={self.max_iter} "
                "iterations; try a larger max_iter or tol, or check the data.",
                ConvergenceWarning,
            )
        return self

    def _set_fitted(self, result, n):
        params = result.params
        best = int(result.best_restart)
        covariance = covariance_of(self.covariance_type)
        full = full_covariances(params, self.covariance_type)
        self.weights_ = np.asarray(params.weights)
        self.means_ = np.asarray(params.means)
        self.covariances_ = np.asarray(covariance.reduce_covariances(full))
        self.precisions_cholesky_ = np.asarray(params.precisions_cholesky)
        self.precisions_ = np.asarray(covariance.precisions(params.precisions_cholesky))
        self.converged_ = bool(result.converged[best])
        self.n_iter_ = int(result.n_iter[best])
        self.lower_bound_ = float(result.log_likelihood) / n
        history = np.asarray(result.history[best])
        self.lower_bounds_ = history[: self.n_iter_] / n
        return self

    def predict(self, X):
        """``[n_samples]`` the most probable component of each sample."""
        model, params, x = self._fitted(X)
        return np.asarray(engine.predict(model, params, x))

    def predict_proba(self, X):
        """``[n_samples, n_components]`` posterior probabilities of the components."""
        model, params, x = self._fitted(X)
        return np.asarray(engine.posterior(model, params, x))

    def score_samples(self, X):
        """``[n_samples]`` log-density of each sample."""
        model, params, x = self._fitted(X)
        return np.asarray(engine.score_samples(model, params, x))

    def score(self, X, y=None):
        """Mean log-likelihood per sample (higher is better)."""
        del y
        return float(np.mean(self.score_samples(X)))

    def bic(self, X):
        """Bayesian information criterion on ``X`` (lower is better)."""
        model, params, x = self._fitted(X)
        return float(engine.bic(model, params, x))

    def aic(self, X):
        """Akaike information criterion on ``X`` (lower is better)."""
        model, params, x = self._fitted(X)
        return float(engine.aic(model, params, x))

    def sample(self, n_samples=1):
        """Draws ``(X [n_samples, n_features], y [n_samples])`` from the fitted mixture.

        Uses a key derived from ``random_state`` (different from the one ``fit`` used).
        """
        check_is_fitted(self)
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        model = self._get_model()
        params = self._params(jnp.asarray(self.means_).dtype)
        key = jax.random.fold_in(jax.random.key(_seed(self.random_state)), 1)
        x, z = engine.sample(model, params, key, int(n_samples))
        return np.asarray(x), np.asarray(z)


@functools.lru_cache(maxsize=64)
def _hmm_model(n_components, covariance_type, reg_covar, parallel):
    return gaussian_hmm(n_components, covariance_type=covariance_type, reg_covar=reg_covar, parallel=parallel)


class GaussianHMM(BaseEstimator):
    """A Gaussian hidden Markov model fitted by EM with jaxem, in hmmlearn's API.

    ``X [n_samples, n_features]`` holds one or several sequences concatenated, with
    ``lengths`` their lengths (hmmlearn's convention; ``None``: one sequence).

    Args:
      n_components: number of hidden states K.
      covariance_type: ``"diag"`` (default), ``"full"``, ``"tied"`` or ``"spherical"``.
      reg_covar: added to every emission variance (data units).
      n_iter: maximum number of EM iterations per restart.
      tol: convergence tolerance on the change of the log-likelihood *per
        observation* (hmmlearn's ``tol`` is on the total).
      n_init: number of random restarts, vmapped; the best is kept.
      random_state: ``None``, an int (exactly ``jaxem.fit(..., key=random_state)``)
        or a ``numpy.random.RandomState``.
      verbose: 0 for silence; ``n >= 1`` prints progress every ``10 * n`` iterations.
      parallel: parallel-in-time forward pass (see ``jaxem.models.gaussian_hmm``).

    Fitted attributes: ``startprob_ [K]``, ``transmat_ [K, K]``, ``means_ [K, D]``,
    ``covars_ [K, D, D]`` (full matrices for every type, as hmmlearn's property),
    ``precisions_cholesky_``, ``converged_``, ``n_iter_``, ``lower_bound_``
    (log-likelihood per observation of the fitted params), ``n_features_in_``.

    Example:
      >>> hmm = GaussianHMM(3, n_init=8, random_state=0).fit(x, lengths)
      >>> hmm.score(x, lengths), hmm.predict(x, lengths)
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="diag",
        reg_covar=1e-6,
        n_iter=100,
        tol=1e-4,
        n_init=1,
        random_state=None,
        verbose=0,
        parallel=False,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.n_iter = n_iter
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state
        self.verbose = verbose
        self.parallel = parallel

    def _get_model(self):
        return _hmm_model(self.n_components, self.covariance_type, _hashable_float(self.reg_covar), bool(self.parallel))

    def _sequences(self, X, lengths, reset):
        X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
        lengths = [X.shape[0]] if lengths is None else np.asarray(lengths)
        return Sequences.from_concatenated(X, np.asarray(lengths))

    def _fitted(self, X, lengths):
        check_is_fitted(self)
        seqs = self._sequences(X, lengths, reset=False)
        dtype = jnp.asarray(seqs.obs).dtype
        params = GaussianHMMParams(*(jnp.asarray(a).astype(dtype) for a in (
            self.startprob_, self.transmat_, self.means_, self.precisions_cholesky_)))
        return self._get_model(), params, seqs

    def fit(self, X, lengths=None):
        """Fits the HMM to the sequences in ``X`` (concatenated; ``lengths`` theirs)."""
        seqs = self._sequences(X, lengths, reset=True)
        model = self._get_model()
        if int(np.sum(seqs.lengths)) < self.n_components:
            raise ValueError(f"need at least n_components={self.n_components} observations")
        result = engine.fit(
            model, seqs, key=_seed(self.random_state), n_restarts=self.n_init, max_iter=self.n_iter,
            tol=self.tol, progress=10 * int(self.verbose) if self.verbose else False,
        )
        params, best = result.params, int(result.best_restart)
        self.startprob_ = np.asarray(params.initial_probs)
        self.transmat_ = np.asarray(params.transition_matrix)
        self.means_ = np.asarray(params.means)
        self.precisions_cholesky_ = np.asarray(params.precisions_cholesky)
        self.covars_ = np.asarray(full_covariances(params, self.covariance_type))
        self.converged_ = bool(result.converged[best])
        self.n_iter_ = int(result.n_iter[best])
        self.lower_bound_ = float(result.log_likelihood) / int(np.sum(seqs.lengths))
        if not self.converged_:
            warnings.warn(f"EM did not converge in n_iter={self.n_iter} iterations", ConvergenceWarning)
        return self

    def score(self, X, lengths=None):
        """Total log-likelihood of the sequences (as hmmlearn's ``score``)."""
        model, params, seqs = self._fitted(X, lengths)
        return float(engine.log_likelihood(model, params, seqs))

    def _steps(self, values, seqs):
        mask = np.asarray(step_mask(seqs.lengths, np.shape(seqs.obs)[1]))
        return np.asarray(values)[mask]

    def predict_proba(self, X, lengths=None):
        """``[n_samples, n_components]`` posterior state probabilities of every step."""
        model, params, seqs = self._fitted(X, lengths)
        return self._steps(engine.posterior(model, params, seqs), seqs)

    def score_samples(self, X, lengths=None):
        """``(log-likelihood, posteriors [n_samples, n_components])`` as in hmmlearn."""
        return self.score(X, lengths), self.predict_proba(X, lengths)

    def predict(self, X, lengths=None):
        """``[n_samples]`` the most probable state path (Viterbi), concatenated."""
        model, params, seqs = self._fitted(X, lengths)
        return self._steps(engine.predict(model, params, seqs), seqs)

    def bic(self, X, lengths=None):
        """Bayesian information criterion (lower is better)."""
        model, params, seqs = self._fitted(X, lengths)
        return float(engine.bic(model, params, seqs))

    def aic(self, X, lengths=None):
        """Akaike information criterion (lower is better)."""
        model, params, seqs = self._fitted(X, lengths)
        return float(engine.aic(model, params, seqs))

    def sample(self, n_samples=1):
        """Draws one sequence: ``(X [n_samples, n_features], states [n_samples])``."""
        check_is_fitted(self)
        model, params, _ = self._fitted(self.means_[:1], None)
        key = jax.random.fold_in(jax.random.key(_seed(self.random_state)), 1)
        x, z = engine.sample(model, params, key, n_samples)
        return np.asarray(x), np.asarray(z)
