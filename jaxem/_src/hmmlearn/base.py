"""What every hmmlearn-compatible HMM estimator shares (hmmlearn's ``BaseHMM``):
``ConvergenceMonitor``, the attribute checks, ``fit`` (jaxem's compiled EM with
hmmlearn's M-step, ``n_init`` starts under ``vmap``), scoring, decoding and
sampling. A family (``gaussian.py``, ``categorical.py``, ``poisson.py``,
``multinomial.py``, ``gmm.py``) supplies its letters, model, params conversion,
checks and emission sampler."""

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
from jaxem._src.gmm_hmm import state_potentials
from jaxem._src.hmmlearn_m_step import HmmlearnPrior, hmmlearn_m_step
from jaxem._src.registry import hashable, memoized
from jaxem._src.sequences import Sequences, step_mask

_log = logging.getLogger("jaxem.hmmlearn")

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



@memoized
def _fit_model(model, kind: str, letters: str, prior: HmmlearnPrior, covariance_type: str):
    """``model`` with hmmlearn's M-step for ``letters`` under ``prior`` (one object per settings)."""
    return model._replace(m_step=hmmlearn_m_step(kind, letters, prior, covariance_type))


@functools.partial(jax.jit, static_argnums=0)
def _draw_starts(model, keys, data):
    return jax.vmap(model.init, in_axes=(0, None))(keys, model.prepare(data))


@functools.partial(jax.jit, static_argnums=0)
def _path_log_probability(model, params, data, paths):
    """``log p(x, z)`` of the state paths ``[B, T]`` (``-1`` past each length), summed."""
    data = model.prepare(data)
    potentials = model.log_joint(params, data)
    if potentials.log_emission.ndim == 4:  # mixture emissions [B, T, K, M]: the state's density
        potentials = state_potentials(potentials)
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



def symmetric_covars(covars: np.ndarray, covariance_type: str) -> np.ndarray:
    """``covars`` in hmmlearn's shape for ``covariance_type``, with ``full`` and
    ``tied`` matrices ``[..., D, D]`` made exactly symmetric (``(A + A^T) / 2``).
    Covariances from a precision factor are symmetric only to rounding; in float32,
    for variances near 1e-3 and below, that can exceed the ``np.allclose`` (atol
    1e-8) of ``check_covariance_values`` and of hmmlearn, which then refuse a
    fitted model's own ``covars_``."""
    if covariance_type in ("spherical", "diag"):
        return covars
    return 0.5 * (covars + np.swapaxes(covars, -1, -2))


def check_covariance_values(covars: np.ndarray, covariance_type: str) -> None:
    """Positive variances (``diag``, ``spherical``) or symmetric positive-definite
    matrices over the last two axes (``full``, ``tied``): ``ValueError`` otherwise."""
    if covariance_type in ("spherical", "diag"):
        if np.any(covars <= 0):
            raise ValueError(f"{covariance_type!r} covars must be positive")
        return
    for n, matrix in enumerate(covars.reshape((-1,) + covars.shape[-2:])):
        if not np.allclose(matrix, matrix.T) or np.any(np.linalg.eigvalsh(matrix) <= 0):
            raise ValueError(f"{covariance_type!r} covars must be symmetric, positive-definite (matrix {n} is not)")
