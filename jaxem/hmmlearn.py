"""hmmlearn-compatible HMM estimators backed by jaxem (needs scikit-learn).

``GaussianHMM``, ``CategoricalHMM``, ``PoissonHMM`` and ``MultinomialHMM`` take
hmmlearn 0.3.3's constructor arguments (``covariance_type`` second positional,
``implementation`` accepted, ``params`` / ``init_params`` letters, priors,
``min_covar``), read and write its attributes (``startprob_``, ``transmat_``,
``means_``, ``covars_``, ``emissionprob_``, ``lambdas_``, set by hand and used),
and have its methods: ``fit(X, lengths)``, ``score``, ``score_samples``,
``predict``, ``predict_proba``, ``decode(algorithm="viterbi" | "map")``,
``sample(n, random_state=, currstate=)``, ``aic``, ``bic``, with ``monitor_``
(``history``, ``converged``). ``tests/peers/run_hmmlearn_suite.py`` runs
hmmlearn's own tests against them.

What runs where: the E-step, the EM loop and decoding are jaxem's, compiled
(``jaxem.fit`` with the model's log-partition gradient as the E-step); the
M-step is hmmlearn's MAP update for the letters in ``params``
(``jaxem/_src/hmmlearn_m_step.py``). ``n_init`` (jaxem's addition, default 1)
runs that many starts together under ``vmap`` and keeps the best. Starts:
initial and transition probabilities from Dirichlet(1/K) as hmmlearn, Gaussian
means from k-means (in JAX) and covariances from the data's covariance plus
``min_covar`` as hmmlearn, categorical rows from Dirichlet(1), Poisson rates and
multinomial rows from k-means clusters (``docs/starts.md``).

Arrays are computed in float64 (JAX's 64-bit mode for the duration of each
call, as ``jaxem.sklearn``), except for float32 input, computed in float32.
``implementation`` is accepted and ignored: jaxem's forward pass is always in log
space, so ``"scaling"`` never underflows.

Example:
  >>> import numpy as np
  >>> from jaxem.hmmlearn import GaussianHMM
  >>> x = np.concatenate([np.random.default_rng(0).normal(m, 1.0, (50, 2)) for m in (0.0, 5.0, 0.0)])
  >>> model = GaussianHMM(2, "diag", n_iter=20, random_state=0).fit(x, [150])
  >>> states = model.predict(x)
  >>> log_prob, posteriors = model.score_samples(x)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections import deque

import jax
import jax.numpy as jnp
import numpy as np

try:
    from scipy import linalg
    from sklearn.base import BaseEstimator
    from sklearn.utils import check_array, check_random_state
    from sklearn.utils.validation import check_is_fitted
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("jaxem.hmmlearn needs scikit-learn: pip install 'jaxem[sklearn]'") from e

from jaxem._src import convergence, engine
from jaxem._src.families import categorical
from jaxem._src.families.categorical import CategoricalHMMParams
from jaxem._src.families.covariance import COVARIANCE_TYPES, covariance_of, covariances_from_factor
from jaxem._src.families.gaussian import GaussianHMMParams
from jaxem._src.families.poisson import PoissonHMMParams
from jaxem._src.hmm import component_hmm
from jaxem._src.hmmlearn_m_step import HmmlearnPrior, hmmlearn_m_step
from jaxem._src.registry import hashable, memoized
from jaxem._src.sequences import Sequences, step_mask
from jaxem.models.categorical_hmm import categorical_hmm
from jaxem.models.gaussian_hmm import gaussian_hmm
from jaxem.models.poisson_hmm import poisson_hmm

__all__ = ["CategoricalHMM", "ConvergenceMonitor", "GMMHMM", "GaussianHMM", "MultinomialHMM", "PoissonHMM"]

_log = logging.getLogger(__name__)

DECODER_ALGORITHMS = frozenset(("viterbi", "map"))
IMPLEMENTATIONS = frozenset(("log", "scaling"))


class ConvergenceMonitor:
    """hmmlearn's convergence record: ``history`` (the log-likelihood before each EM
    update of the fit), ``iter`` (updates done) and ``converged`` (``iter == n_iter``
    or the last gain below ``tol``). ``report`` prints a line to stderr when
    ``verbose`` and logs a warning when the log-likelihood went down."""

    _template = "{iter:>10d} {log_prob:>16.8f} {delta:>+16.8f}"

    def __init__(self, tol, n_iter, verbose):
        self.tol = tol
        self.n_iter = n_iter
        self.verbose = verbose
        self.history = deque()
        self.iter = 0

    def __repr__(self):
        items = sorted(dict(vars(self), history=list(self.history)).items())
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v}" for k, v in items) + ")"

    def _reset(self):
        self.iter = 0
        self.history.clear()

    def report(self, log_prob):
        """Records ``log_prob``, the log-likelihood before the next update."""
        if self.verbose:
            delta = log_prob - self.history[-1] if self.history else np.nan
            print(self._template.format(iter=self.iter + 1, log_prob=log_prob, delta=delta), file=sys.stderr)
        precision = np.finfo(float).eps ** 0.5
        if self.history and log_prob - self.history[-1] < -precision:
            _log.warning(
                f"Model is not converging.  Current: {log_prob} is not greater than {self.history[-1]}. "
                f"Delta is {log_prob - self.history[-1]}"
            )
        self.history.append(log_prob)
        self.iter += 1

    @property
    def converged(self):
        return self.iter == self.n_iter or (len(self.history) >= 2 and self.history[-1] - self.history[-2] < self.tol)


def _precision(dtype):
    """float32 input computes in float32; anything else in float64 (a scoped
    ``jax.enable_x64``, so the user's global setting is untouched)."""
    return contextlib.nullcontext() if np.dtype(dtype) == np.float32 else jax.enable_x64(True)


def _float_dtype(dtype):
    return np.float32 if np.dtype(dtype) == np.float32 else np.float64


def _lengths(X, lengths) -> np.ndarray:
    lengths = np.asarray([X.shape[0]] if lengths is None else lengths).reshape(-1)
    if not np.issubdtype(lengths.dtype, np.integer) or np.any(lengths < 1):
        raise ValueError(f"lengths must be positive integers, got {lengths}")
    if int(lengths.sum()) != X.shape[0]:
        raise ValueError(f"lengths array {lengths} doesn't sum to {X.shape[0]} samples")
    return lengths


def _normalized(a, axis=-1):
    a = np.asarray(a, float)
    total = a.sum(axis=axis, keepdims=True)
    return a / np.where(total == 0, 1.0, total)


@memoized
def _fit_model(model, kind: str, letters: str, prior: HmmlearnPrior, covariance_type: str):
    """``model`` with hmmlearn's M-step for ``letters`` under ``prior`` (one object per settings)."""
    return model._replace(m_step=hmmlearn_m_step(kind, letters, prior, covariance_type))


@memoized
def _multinomial_hmm(n_states: int):
    return component_hmm(categorical.counts_component("emission_probs"), n_states, params_type=CategoricalHMMParams)


@functools.partial(jax.jit, static_argnums=0)
def _draw_starts(model, keys, data):
    return jax.vmap(model.init, in_axes=(0, None))(keys, model.prepare(data))


@functools.partial(jax.jit, static_argnums=0)
def _path_log_probability(model, params, data, paths):
    """``log p(x, z)`` of the state paths ``[B, T]`` (``-1`` past each length), summed."""
    data = model.prepare(data)
    potentials = model.log_joint(params, data)
    mask = step_mask(data.lengths, paths.shape[1])
    z = jnp.where(mask, paths, 0)
    emission = jnp.take_along_axis(potentials.log_emission, z[..., None], axis=-1)[..., 0]
    transition = potentials.log_transition[z[:, :-1], z[:, 1:]]
    zero = jnp.zeros((), emission.dtype)
    return (
        jnp.sum(potentials.log_initial[z[:, 0]])
        + jnp.sum(jnp.where(mask, emission, zero))
        + jnp.sum(jnp.where(mask[:, 1:], transition, zero))
    )


class _BaseHMM(BaseEstimator):
    """What every hmmlearn-compatible HMM shares (hmmlearn's ``BaseHMM``); a family
    supplies its letters, model, params conversion, checks and sampler."""

    _kind = ""
    _emission_letters: dict = {}  # letter -> attribute name

    def __init__(self, n_components, startprob_prior, transmat_prior, algorithm, random_state, n_iter, tol,
                 verbose, params, init_params, implementation, n_init):
        self.n_components = n_components
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.algorithm = algorithm
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.params = params
        self.init_params = init_params
        self.implementation = implementation
        self.n_init = n_init
        self.monitor_ = ConvergenceMonitor(self.tol, self.n_iter, self.verbose)

    # -- family hooks ---------------------------------------------------------------

    def _model(self):
        raise NotImplementedError

    def _to_params(self, dtype):
        raise NotImplementedError

    def _emission_attributes(self, params) -> dict:
        """hmmlearn's emission attributes from (NumPy) jaxem params of one restart."""
        raise NotImplementedError

    def _emission_prior(self) -> dict:
        return {}

    def _observations(self, X):
        """``X`` as the model's observations (symbols for a categorical HMM)."""
        return X

    def _emission_draws(self, states, random_state):
        raise NotImplementedError

    def _get_n_fit_scalars_per_param(self) -> dict:
        raise NotImplementedError

    def _validate_X(self, X):
        return check_array(X)

    # -- hmmlearn's checks ----------------------------------------------------------

    def _check_options(self):
        if self.implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {sorted(IMPLEMENTATIONS)}, got {self.implementation!r}")
        if isinstance(self.n_init, bool) or not isinstance(self.n_init, (int, np.integer)) or self.n_init < 1:
            raise ValueError(f"n_init must be a positive integer, got {self.n_init!r}")
        if isinstance(self.n_iter, bool) or not isinstance(self.n_iter, (int, np.integer)) or self.n_iter < 0:
            raise ValueError(f"n_iter must be a non-negative integer, got {self.n_iter!r}")

    def _check_sum_1(self, name):
        s = getattr(self, name).sum(axis=-1)
        if not np.allclose(s, 1):
            if s.ndim == 0:
                raise ValueError(f"{name} must sum to 1 (got {s:.4f})")
            raise ValueError(f"{name} rows must sum to 1 (got row sums of {s})")

    def _check(self):
        """Validates the model's attributes (hmmlearn's ``_check``): ``ValueError``
        naming the attribute."""
        self._check_options()
        self.startprob_ = np.asarray(self.startprob_, float)
        if len(self.startprob_) != self.n_components:
            raise ValueError("startprob_ must have length n_components")
        self._check_sum_1("startprob_")
        self.transmat_ = np.asarray(self.transmat_, float)
        if self.transmat_.shape != (self.n_components, self.n_components):
            raise ValueError("transmat_ must have shape (n_components, n_components)")
        self._check_sum_1("transmat_")

    def _check_and_set_n_features(self, X):
        n_features = X.shape[1]
        if hasattr(self, "n_features"):
            if self.n_features != n_features:
                raise ValueError(f"Unexpected number of dimensions, got {n_features} but expected {self.n_features}")
        else:
            self.n_features = n_features

    def _needs_init(self, code, name):
        if code in self.init_params:
            if hasattr(self, name):
                _log.warning(
                    "Even though the %r attribute is set, it will be overwritten during initialization "
                    "because 'init_params' contains %r", name, code,
                )
            return True
        return not hasattr(self, name)

    # -- jaxem plumbing -------------------------------------------------------------

    def _sequences(self, X, lengths):
        return Sequences.from_concatenated(self._observations(X), _lengths(X, lengths))

    def _prior(self) -> HmmlearnPrior:
        return HmmlearnPrior(
            startprob=hashable(self.startprob_prior), transmat=hashable(self.transmat_prior), **self._emission_prior()
        )

    def _covariance_type(self):
        return "diag"

    def _letters(self, params):
        return "".join(sorted(set(params) & set("st" + "".join(self._emission_letters))))

    def _chain_params(self, dtype):
        return jnp.asarray(self.startprob_, dtype), jnp.asarray(self.transmat_, dtype)

    def _set_params(self, params):
        params = jax.tree_util.tree_map(np.array, params)  # writeable copies, as hmmlearn's
        self.startprob_ = params.initial_probs
        self.transmat_ = params.transition_matrix
        for name, value in self._emission_attributes(params).items():
            setattr(self, name, value)

    # -- hmmlearn's API -------------------------------------------------------------

    def _init(self, X, lengths=None):
        """Starting values of the parameters whose letters are in ``init_params``
        (or that are not set): ``n_init`` starts drawn in JAX, the first kept in the
        attributes; returns the ``[n_init]`` batch of jaxem params for ``fit``."""
        X = self._validate_X(X)
        self._check_options()
        self._check_and_set_n_features(X)
        names = {"s": "startprob_", "t": "transmat_", **self._emission_letters}
        wanted = [letter for letter, name in names.items() if self._needs_init(letter, name)]
        fits = self._get_n_fit_scalars_per_param()
        n_fit = sum(fits[p] for p in self.params if p in fits)
        if X.size < n_fit:
            _log.warning(
                "Fitting a model with %d free scalar parameters with only %d data points will result in a "
                "degenerate solution.", n_fit, X.size,
            )
        starts = None
        if wanted:
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            with _precision(X.dtype):
                keys = jax.random.split(jax.random.key(seed), int(self.n_init))
                drawn = _draw_starts(self._model(), keys, self._sequences(X, [X.shape[0]]))
                starts = self._restart_attributes(jax.tree_util.tree_map(np.asarray, drawn), X)
            for letter in wanted:
                setattr(self, names[letter], starts[names[letter]][0])
        batch = {}
        for letter, name in names.items():
            own = np.asarray(getattr(self, name))
            batch[name] = starts[name] if letter in wanted else np.broadcast_to(own, (int(self.n_init),) + own.shape)
        self._start_batch = batch
        return batch

    def _restart_attributes(self, drawn, X) -> dict:
        """``{attribute: [n_init, ...]}`` in hmmlearn's layout from drawn jaxem params."""
        per_restart = []
        for r in range(int(self.n_init)):
            params = jax.tree_util.tree_map(lambda leaf: leaf[r], drawn)
            per_restart.append({"startprob_": params.initial_probs, "transmat_": params.transition_matrix,
                                **self._emission_attributes(params)})
        return {name: np.stack([p[name] for p in per_restart]) for name in per_restart[0]}

    def fit(self, X, lengths=None):
        """Estimates the parameters by EM from the sequences ``X`` (concatenated,
        ``[n_samples, n_features]``) with ``lengths`` (``None``: one sequence)."""
        X = self._validate_X(X)
        lengths = _lengths(X, lengths)
        batch = self._init(X, lengths)
        self._check()
        self.monitor_._reset()
        if self.n_iter == 0:
            return self
        n_obs = int(lengths.sum())
        dtype = _float_dtype(X.dtype)
        with _precision(X.dtype):
            saved = {name: getattr(self, name) for name in batch}
            restarts = []
            for r in range(int(self.n_init)):
                for name, values in batch.items():
                    setattr(self, name, values[r])
                restarts.append(self._to_params(dtype))
            for name, value in saved.items():
                setattr(self, name, value)
            init_params = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *restarts)
            model = _fit_model(self._model(), self._kind, self._letters(self.params), self._prior(), self._covariance_type())
            with convergence.silenced():  # hmmlearn reports convergence through monitor_, not a warning
                result = engine.fit(
                    model, self._sequences(X, lengths), key=0, n_restarts=int(self.n_init), max_iter=int(self.n_iter),
                    tol=max(float(self.tol), 0.0) / n_obs, init_params=init_params,
                )
            best = int(result.best_restart)
            self._set_params(result.params)
            history = np.asarray(result.history[best])[: int(result.n_iter[best])]
        for log_prob in history:
            self.monitor_.report(float(log_prob))
        if (self.transmat_.sum(axis=1) == 0).any():
            _log.warning("Some rows of transmat_ have zero sum because no transition from the state was ever observed.")
        return self

    def _fitted(self, X, lengths):
        check_is_fitted(self, "startprob_")
        self._check()
        X = self._validate_X(X)
        return X, self._model(), self._sequences(X, lengths)

    def _posteriors(self, model, params, seqs):
        posteriors = np.asarray(engine.posterior(model, params, seqs))
        return posteriors[np.asarray(step_mask(seqs.lengths, np.shape(seqs.obs)[1]))]

    def score_samples(self, X, lengths=None):
        """``(log_prob, posteriors [n_samples, n_components])``: the total
        log-likelihood of ``X`` and the posterior state probabilities of every step."""
        X, model, seqs = self._fitted(X, lengths)
        with _precision(X.dtype):
            params = self._to_params(_float_dtype(X.dtype))
            log_prob = float(engine.log_likelihood(model, params, seqs))
            return log_prob, self._posteriors(model, params, seqs)

    def score(self, X, lengths=None):
        """The total log-likelihood of the sequences in ``X``."""
        X, model, seqs = self._fitted(X, lengths)
        with _precision(X.dtype):
            return float(engine.log_likelihood(model, self._to_params(_float_dtype(X.dtype)), seqs))

    def decode(self, X, lengths=None, algorithm=None):
        """``(log_prob, state_sequence [n_samples])`` by ``algorithm`` (default
        ``self.algorithm``): ``"viterbi"`` (the most probable path and its joint
        log-probability) or ``"map"`` (the most probable state of every step and,
        as hmmlearn, the sum of those posterior probabilities)."""
        algorithm = algorithm or self.algorithm
        if algorithm not in DECODER_ALGORITHMS:
            raise ValueError(f"Unknown decoder {algorithm!r}")
        X, model, seqs = self._fitted(X, lengths)
        with _precision(X.dtype):
            params = self._to_params(_float_dtype(X.dtype))
            if algorithm == "map":
                posteriors = self._posteriors(model, params, seqs)
                return float(np.max(posteriors, axis=1).sum()), np.argmax(posteriors, axis=1)
            paths = engine.viterbi(model, params, seqs)
            log_prob = float(_path_log_probability(model, params, seqs, paths))
            mask = np.asarray(step_mask(seqs.lengths, np.shape(seqs.obs)[1]))
            return log_prob, np.asarray(paths)[mask].astype(int)

    def predict(self, X, lengths=None):
        """``[n_samples]`` the decoded states (``self.algorithm``)."""
        return self.decode(X, lengths)[1]

    def predict_proba(self, X, lengths=None):
        """``[n_samples, n_components]`` posterior state probabilities."""
        return self.score_samples(X, lengths)[1]

    def sample(self, n_samples=1, random_state=None, currstate=None):
        """``(X [n_samples, ...], state_sequence [n_samples])`` drawn from the model
        with NumPy (``random_state``, default ``self.random_state``), from
        ``currstate`` when given (else from ``startprob_``)."""
        check_is_fitted(self, "startprob_")
        self._check()
        random_state = check_random_state(self.random_state if random_state is None else random_state)
        transmat_cdf = np.cumsum(self.transmat_, axis=1)
        if currstate is None:
            currstate = int((np.cumsum(self.startprob_) > random_state.rand()).argmax())
        states = np.empty(int(n_samples), dtype=int)
        states[0] = currstate
        for t in range(1, int(n_samples)):
            states[t] = (transmat_cdf[states[t - 1]] > random_state.rand()).argmax()
        return np.atleast_2d(self._emission_draws(states, random_state)), states

    def get_stationary_distribution(self):
        """The stationary distribution of the states (left eigenvector of ``transmat_``)."""
        check_is_fitted(self, "transmat_")
        eigvals, eigvecs = linalg.eig(self.transmat_.T)
        eigvec = np.real_if_close(eigvecs[:, np.argmax(eigvals)])
        return eigvec / eigvec.sum()

    def aic(self, X, lengths=None):
        """Akaike information criterion, ``-2 log L + 2 p`` (lower is better)."""
        n_params = sum(self._get_n_fit_scalars_per_param().values())
        return -2 * self.score(X, lengths=lengths) + 2 * n_params

    def bic(self, X, lengths=None):
        """Bayesian information criterion, ``-2 log L + p log n`` (lower is better)."""
        n_params = sum(self._get_n_fit_scalars_per_param().values())
        return -2 * self.score(X, lengths=lengths) + n_params * np.log(len(X))


def _check_covars(covars, covariance_type, n_components):
    """hmmlearn's checks of ``covars_`` in the type's shape (``ValueError``)."""
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
    if covariance_type == "spherical":
        if len(covars) != n_components:
            raise ValueError("'spherical' covars have length n_components")
        if np.any(covars <= 0):
            raise ValueError("'spherical' covars must be positive")
    elif covariance_type == "tied":
        if covars.ndim != 2 or covars.shape[0] != covars.shape[1]:
            raise ValueError("'tied' covars must have shape (n_dim, n_dim)")
        if not np.allclose(covars, covars.T) or np.any(np.linalg.eigvalsh(covars) <= 0):
            raise ValueError("'tied' covars must be symmetric, positive-definite")
    elif covariance_type == "diag":
        if covars.ndim != 2:
            raise ValueError("'diag' covars must have shape (n_components, n_dim)")
        if np.any(covars <= 0):
            raise ValueError("'diag' covars must be positive")
    else:
        if covars.ndim != 3 or covars.shape[1] != covars.shape[2]:
            raise ValueError("'full' covars must have shape (n_components, n_dim, n_dim)")
        for n, matrix in enumerate(covars):
            if not np.allclose(matrix, matrix.T) or np.any(np.linalg.eigvalsh(matrix) <= 0):
                raise ValueError(f"component {n} of 'full' covars must be symmetric, positive-definite")


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
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {self.covariance_type!r}")
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
        return {"means_": np.asarray(params.means), "_covars_": np.asarray(covariance.reduce_covariances(full))}

    def _restart_attributes(self, drawn, X):
        # hmmlearn's starting covariances: the data's covariance plus min_covar, in every state
        starts = super()._restart_attributes(drawn, X)
        d = X.shape[1]
        cv = np.atleast_2d(np.cov(X.T)) + self.min_covar * np.eye(d)
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


class _EmissionProbsHMM(_BaseHMM):
    """An HMM whose emissions are rows of category probabilities ``emissionprob_
    [K, n_features]`` (letter ``e``): categorical and multinomial."""

    _emission_letters = {"e": "emissionprob_"}

    def _to_params(self, dtype):
        initial, transition = self._chain_params(dtype)
        return CategoricalHMMParams(initial, transition, jnp.asarray(self.emissionprob_, dtype))

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
        return _multinomial_hmm(int(self.n_components))

    def _emission_draws(self, states, random_state):
        trials = np.unique(self.n_trials)
        if trials.size != 1:
            raise ValueError("For sampling, a single n_trials must be given")
        return np.stack([random_state.multinomial(int(trials[0]), self.emissionprob_[s]) for s in states])


class GMMHMM(_BaseHMM):
    """hmmlearn's ``GMMHMM`` (Gaussian-mixture emissions): not available yet, since
    jaxem has no GMM-HMM model family; constructing it raises ``NotImplementedError``."""

    def __init__(self, n_components=1, n_mix=1, min_covar=1e-3, startprob_prior=1.0, transmat_prior=1.0,
                 weights_prior=1.0, means_prior=0.0, means_weight=0.0, covars_prior=None, covars_weight=None,
                 algorithm="viterbi", covariance_type="diag", random_state=None, n_iter=10, tol=1e-2,
                 verbose=False, params="stmcw", init_params="stmcw", implementation="log", *, n_init=1):
        raise NotImplementedError("GMMHMM: jaxem has no Gaussian-mixture-emission HMM family yet")
