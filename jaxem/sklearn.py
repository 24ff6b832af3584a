"""scikit-learn estimators backed by jaxem (needs scikit-learn: ``pip install jaxem[sklearn]``).

``jaxem.sklearn.GaussianMixture`` and ``jaxem.sklearn.GaussianHMM`` (the same class
as ``jaxem.hmmlearn.GaussianHMM``: hmmlearn's API) follow scikit-learn's conventions (constructor
hyperparameters only, ``fit``/``predict``/``score``..., fitted attributes ending in
``_``), so it works in ``Pipeline``, ``GridSearchCV`` and ``clone``. It is a thin
wrapper: ``fit`` calls ``jaxem.fit`` (``n_init`` restarts, vmapped in one compiled
program) and the other methods call the functional API on the fitted params.

scikit-learn is imported only by this module; ``import jaxem`` never needs it.
"""

from __future__ import annotations

import contextlib
import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np

try:
    from sklearn.base import BaseEstimator, DensityMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_array, check_random_state
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "jaxem.sklearn needs scikit-learn >= 1.6: pip install 'jaxem[sklearn]'"
    ) from e

from jaxem._src import engine
from jaxem._src import convergence
from jaxem._src.families.covariance import covariance_of
from jaxem.models.gaussian_mixture import GaussianMixtureParams, gaussian_mixture
from jaxem.models.gaussian_mixture import covariances as full_covariances
# hmmlearn's GaussianHMM, kept here for older code (jaxem.hmmlearn has every HMM):
from jaxem.hmmlearn import GaussianHMM  # noqa: E402,F401

__all__ = ["GaussianHMM", "GaussianMixture"]


class _VerboseReport:
    """scikit-learn's ``verbose`` for jaxem's vmapped restarts, on stdout as
    scikit-learn's: ``1`` names the initializations and prints ``Iteration n``
    every ``verbose_interval`` iterations and whether the fit converged; ``2``
    adds times (compilation excluded), the change of the lower bound per sample
    and the final lower bound."""

    def __init__(self, verbose: int, interval: int, n_init: int):
        self.verbose, self.every, self.n_init = int(verbose), max(int(interval), 1), n_init
        self._last = None

    def compiling(self) -> None:
        print(f"Initialization 0..{self.n_init - 1} (run together, vmapped)", flush=True)
        if self.verbose >= 2:
            print("  compiling ...", flush=True)

    def __call__(self, info) -> None:
        self._last = info
        if self.verbose == 1:
            print(f"  Iteration {info.iteration}", flush=True)
        else:
            change = "-" if not np.isfinite(info.change) else f"{info.change:.5g}"
            print(
                f"  Iteration {info.iteration}\t time lapse {info.seconds:.5f}s\t ll change {change}"
                f"\t converged {info.n_converged}/{info.n_restarts}",
                flush=True,
            )

    def end(self, converged: bool, lower_bound: float) -> None:
        state = "converged" if converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {state}.", flush=True)
        else:
            seconds = self._last.seconds if self._last is not None else 0.0
            compiled = self._last.compile_seconds if self._last is not None else 0.0
            print(
                f"Initialization {state}. time lapse {seconds:.5f}s (compiling {compiled:.2f}s)\t "
                f"lower bound {lower_bound:.5f}",
                flush=True,
            )


def _fit_quietly(*args, **kwargs):
    """``jaxem.fit`` without its ConvergenceWarning: the estimators warn in their
    peers' words (and only where the peer does)."""
    with convergence.silenced():
        return engine.fit(*args, **kwargs)

# scikit-learn's init_params names -> jaxem's seeders (``gaussian_mixture(init=...)``).
_INIT_NAMES = {
    "kmeans": "kmeans",
    "k-means++": "kmeans++",
    "kmeans++": "kmeans++",
    "random": "random",
    "random_from_data": "random_from_data",
}

_ILL_DEFINED = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar, or scale the input data."
)

_NOT_CONVERGED = (
    "Best performing initialization did not converge. Try different init parameters, or "
    "increase max_iter, tol, or check for degenerate data."
)


def _model(n_components, covariance_type, reg_covar, init, prior=None, missing="reject"):
    # Registered factories return one Model object per configuration, so jit caches are reused.
    return gaussian_mixture(
        n_components, covariance_type=covariance_type, reg_covar=reg_covar, init=init, prior=prior, missing=missing
    )


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


def _precision(dtype):
    """A context computing in ``dtype``: float64 data turn on JAX's 64-bit mode for the
    duration only (``jax.enable_x64``), so float64 stays float64 without the user
    setting ``jax_enable_x64``; float32 data need nothing."""
    if np.dtype(dtype) == np.float64:
        return jax.enable_x64(True)
    return contextlib.nullcontext()


def _check_shape(value, shape, name):
    if value.shape != shape:
        raise ValueError(f"The parameter '{name}' should have the shape of {shape}, but got {value.shape}")


def check_weights_init(weights, n_components) -> np.ndarray:
    """``weights_init [K]``: in [0, 1] and summing to one (scikit-learn's messages)."""
    weights = check_array(weights, dtype=[np.float64, np.float32], ensure_2d=False)
    _check_shape(weights, (n_components,), "weights")
    if np.any(weights < 0.0) or np.any(weights > 1.0):
        # scikit-learn's message, which names the minimum "max value" and the maximum "min value".
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got "
            f"max value {np.min(weights):.5f}, min value {np.max(weights):.5f}"
        )
    atol = 1e-6 if weights.dtype == np.float32 else 1e-8
    if not np.allclose(abs(1.0 - float(np.sum(weights))), 0.0, atol=atol):
        raise ValueError(f"The parameter 'weights' should be normalized, but got sum(weights) = {np.sum(weights):.5f}")
    return weights


def check_means_init(means, n_components, n_features) -> np.ndarray:
    """``means_init [K, D]``."""
    means = check_array(means, dtype=[np.float64, np.float32], ensure_2d=False)
    _check_shape(means, (n_components, n_features), "means")
    return means


def check_precisions_init(precisions, covariance_type, n_components, n_features) -> np.ndarray:
    """``precisions_init`` in scikit-learn's shape for ``covariance_type`` (full
    ``[K, D, D]``, tied ``[D, D]``, diag ``[K, D]``, spherical ``[K]``): symmetric
    positive definite matrices, or positive entries."""
    precisions = check_array(precisions, dtype=[np.float64, np.float32], ensure_2d=False, allow_nd=True)
    shape = covariance_of(covariance_type).factor_shape(n_components, n_features)
    _check_shape(precisions, tuple(shape), f"{covariance_type} precision")
    if covariance_type in ("diag", "spherical"):
        if np.any(precisions <= 0.0):
            raise ValueError(f"'{covariance_type} precision' should be positive")
        return precisions
    for matrix in precisions.reshape((-1, n_features, n_features)):
        if not (np.allclose(matrix, matrix.T) and np.all(np.linalg.eigvalsh(matrix) > 0.0)):
            raise ValueError(f"'{covariance_type} precision' should be symmetric, positive-definite")
    return precisions


def _precisions_cholesky(precisions, covariance_type) -> np.ndarray:
    """The upper triangular factor ``U`` (``P = U Uᵀ``; scikit-learn's
    ``precisions_cholesky_``, the factor jaxem's fits keep) of checked precisions in
    the covariance type's shape: with ``J`` the reversal of the axes,
    ``U = J chol(J P J) J``."""
    if covariance_type in ("diag", "spherical"):
        return np.sqrt(precisions)
    flipped = precisions[..., ::-1, ::-1]
    return np.linalg.cholesky(flipped)[..., ::-1, ::-1]


class GaussianMixture(DensityMixin, BaseEstimator):
    """A Gaussian mixture fitted by EM with jaxem, in scikit-learn's API.

    A drop-in for ``sklearn.mixture.GaussianMixture``: the same constructor
    arguments, methods and fitted attributes (``tests/peers/run_sklearn_suite.py``
    runs scikit-learn's own tests against it).

    Args:
      n_components: number of components K.
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
      tol: convergence tolerance on the change of the mean log-likelihood per sample.
      reg_covar: added to the diagonal of every covariance (data units).
      max_iter: maximum number of EM iterations per restart; 0 gives the starting
        params (no EM step).
      n_init: number of random restarts, run together under ``vmap``; the best
        (highest log-likelihood) is kept.
      init_params: ``"kmeans"`` (default: k-means++ then Lloyd's k-means
        iterations, in JAX), ``"k-means++"`` (also ``"kmeans++"``), ``"random"``
        (random responsibilities) or ``"random_from_data"``.
      weights_init: optional ``[K]`` starting weights.
      means_init: optional ``[K, D]`` starting means.
      precisions_init: optional starting precisions, scikit-learn's shape for the
        covariance type (full ``[K, D, D]``, tied ``[D, D]``, diag ``[K, D]``,
        spherical ``[K]``). What is not given comes from ``init_params``.
      random_state: ``None``, an int or a ``numpy.random.RandomState``. An int ``s``
        gives exactly ``jaxem.fit(..., key=s)``.
      warm_start: if true, a second ``fit`` starts from the fitted params (one
        restart) instead of initializing.
      verbose: as scikit-learn's, on stdout: 0 silent; 1 names the (vmapped)
        initializations, prints ``Iteration n`` every ``verbose_interval``
        iterations and whether EM converged; 2 also times (compilation excluded),
        the change of the lower bound and the final lower bound.
      verbose_interval: iterations between the progress lines of ``verbose``.
      prior: optional ``jaxem.priors.MixturePrior`` (Dirichlet weights, a
        ``jaxem.priors.GaussianPrior`` on the components), given to
        ``jaxem.models.gaussian_mixture``: MAP-EM (``docs/priors.md``);
        ``lower_bound_`` stays the mean log-likelihood per sample, ``lower_bounds_``
        traces the log posterior EM ascends.
      missing: ``"reject"`` (default: NaN in ``X`` is an error, as in
        scikit-learn) or ``"marginalize"``: NaN entries are missing at random and
        integrated out exactly (``jaxem.models.gaussian_mixture(missing=...)``), in
        ``fit`` and in every method that takes ``X``.

    Fitted attributes: ``weights_ [K]``, ``means_ [K, D]``, ``covariances_`` and
    ``precisions_cholesky_`` and ``precisions_`` (scikit-learn's shape for the
    covariance type), ``converged_``, ``n_iter_``, ``lower_bound_`` (mean
    log-likelihood per sample of the fitted params), ``lower_bounds_`` (its trace),
    ``n_features_in_``.

    Arrays are computed in the input's float dtype: float64 input runs in JAX's
    64-bit mode for the duration of the call (no global ``jax_enable_x64`` needed),
    float32 input in float32.

    Examples:
      >>> from jaxem.sklearn import GaussianMixture
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> gm = GaussianMixture(2, n_init=4, random_state=0).fit(x)
      >>> gm.means_.shape, gm.predict(x).shape
      ((2, 2), (272,))
      >>> bool(gm.converged_)
      True
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
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        prior=None,
        missing="reject",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.prior = prior
        self.missing = missing

    # -- helpers ------------------------------------------------------------------

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "marginalize"
        return tags

    def _get_model(self):
        if self.init_params not in _INIT_NAMES:
            raise ValueError(f"init_params must be one of {tuple(_INIT_NAMES)}, got {self.init_params!r}")
        return _model(
            self.n_components,
            self.covariance_type,
            _hashable_float(self.reg_covar),
            _INIT_NAMES[self.init_params],
            self.prior,
            self.missing,
        )

    def _params(self, dtype):
        return GaussianMixtureParams(
            jnp.asarray(self.weights_).astype(dtype),
            jnp.asarray(self.means_).astype(dtype),
            jnp.asarray(self.precisions_cholesky_).astype(dtype),
        )

    def _validate(self, X, reset):
        finite = "allow-nan" if self.missing == "marginalize" else True
        return validate_data(
            self, X, reset=reset, dtype=[np.float64, np.float32], ensure_min_samples=1 if not reset else 2, ensure_all_finite=finite
        )

    def _is_fitted(self) -> bool:
        return "precisions_cholesky_" in vars(self)

    def _call(self, function, X):
        """``function(model, params, x)`` on checked ``X`` in its precision, as NumPy."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        with _precision(X.dtype):
            x = jnp.asarray(X)
            return np.asarray(function(self._get_model(), self._params(x.dtype), x))

    def _check_initial_values(self, n_features, n_components=None):
        """The user's ``weights_init``, ``means_init``, ``precisions_init`` (checked
        for ``n_components``, default ``self.n_components``; ``None`` when not given)."""
        k = self.n_components if n_components is None else n_components
        weights = None if self.weights_init is None else check_weights_init(self.weights_init, k)
        means = None if self.means_init is None else check_means_init(self.means_init, k, n_features)
        factor = None
        if self.precisions_init is not None:
            precisions = check_precisions_init(self.precisions_init, self.covariance_type, k, n_features)
            factor = _precisions_cholesky(precisions, self.covariance_type)
        return weights, means, factor

    def _initial_params(self, model, x, key, n_init, given):
        """``[n_init]``-batched starting params: the model's seeding (from the keys
        ``jaxem.fit`` would split from ``key``), with the user's initial values in
        place of the seeded ones."""
        keys = jax.random.split(key, n_init)
        seeded = jax.vmap(model.init, in_axes=(0, None))(keys, model.prepare(x))
        fields = []
        for seeded_field, user in zip(seeded, given):
            if user is None:
                fields.append(seeded_field)
            else:
                fields.append(jnp.broadcast_to(jnp.asarray(user, x.dtype), seeded_field.shape))
        return GaussianMixtureParams(*fields)

    def _initialize(self, X, resp):
        """scikit-learn's private ``_initialize``: sets ``weights_``, ``means_``,
        ``covariances_``, ``precisions_cholesky_`` from the M-step of the
        responsibilities ``resp [n_samples, K]`` on ``X [n_samples, n_features]``
        (plus ``reg_covar``), the user's ``weights_init``, ``means_init`` or
        ``precisions_init`` in place of what is given (then ``covariances_`` is
        not set). As scikit-learn's, K is taken from ``resp``, not ``n_components``."""
        X = check_array(X, dtype=[np.float64, np.float32])
        resp = check_array(resp, dtype=X.dtype)
        if resp.shape[0] != X.shape[0]:
            raise ValueError(f"resp has {resp.shape[0]} rows for {X.shape[0]} samples in X")
        k = resp.shape[1]
        model = _model(k, self.covariance_type, _hashable_float(self.reg_covar), "kmeans")
        covariance = covariance_of(self.covariance_type)
        with _precision(X.dtype):
            x = jnp.asarray(X)
            ones = GaussianMixtureParams(  # a template of ones: the M-step keeps the zeros of its params
                jnp.ones((k,), x.dtype),
                jnp.ones((k, X.shape[1]), x.dtype),
                jnp.ones(covariance.factor_shape(k, X.shape[1]), x.dtype),
            )
            params = model.m_step(model.prepare(x), jnp.asarray(resp), ones)
            weights, means, covariances, factor = self._sklearn_parameters(params)
        given_weights, given_means, given_factor = self._check_initial_values(X.shape[1], k)
        self.weights_ = weights if given_weights is None else given_weights
        self.means_ = means if given_means is None else given_means
        if given_factor is None:
            self.covariances_, self.precisions_cholesky_ = covariances, factor
        else:
            self.precisions_cholesky_ = given_factor

    # -- scikit-learn API ----------------------------------------------------------

    def fit(self, X, y=None):
        """Fits the mixture to ``X [n_samples, n_features]``; ``y`` is ignored.

        With ``warm_start`` and a fitted estimator, EM continues from the fitted params.
        """
        del y
        X = self._validate(X, reset=True)
        if X.shape[0] < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = {self.n_components}, "
                f"n_samples = {X.shape[0]}"
            )
        model = self._get_model()
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, numbers.Integral) or self.max_iter < 0:
            raise ValueError(f"max_iter must be a non-negative integer, got {self.max_iter!r}")
        continuing = bool(self.warm_start) and self._is_fitted()
        given = (None, None, None) if continuing else self._check_initial_values(X.shape[1])
        previous_bound = self.lower_bound_ if continuing else None
        with _precision(X.dtype):
            x = jnp.asarray(X)
            key = jax.random.key(_seed(self.random_state))
            n_init = 1 if continuing else self.n_init
            if continuing:
                init_params = jax.tree_util.tree_map(lambda leaf: leaf[None], self._params(x.dtype))
            elif any(value is not None for value in given) or self.max_iter == 0:
                init_params = self._initial_params(model, x, key, n_init, given)
            else:
                init_params = None
            if self.max_iter == 0:
                self._set_start(model, init_params, x)
                return self
            progress = _VerboseReport(self.verbose, self.verbose_interval, n_init) if self.verbose else False
            result = _fit_quietly(
                model, x, key=key, n_restarts=n_init, max_iter=self.max_iter, tol=self.tol,
                init_params=init_params, progress=progress,
            )
            if not np.isfinite(float(result.log_likelihood)):
                raise ValueError(_ILL_DEFINED)
            self._set_fitted(result, X.shape[0])
        if previous_bound is not None and abs(self.lower_bound_ - previous_bound) < self.tol:
            self.converged_ = True  # as scikit-learn: the change from the previous fit's bound
        if self.verbose and self.max_iter > 0:
            progress.end(self.converged_, self.lower_bound_)
        if not self.converged_:
            warnings.warn(_NOT_CONVERGED, ConvergenceWarning)
        return self

    def fit_predict(self, X, y=None):
        """Fits the mixture to ``X`` and returns ``[n_samples]`` the most probable
        component of each sample under the fitted params (as ``fit(X).predict(X)``)."""
        return self.fit(X, y).predict(X)

    def _set_start(self, model, init_params, x):
        """Fitted attributes for ``max_iter=0``: the first restart's starting params."""
        params = jax.tree_util.tree_map(lambda leaf: leaf[0], init_params)
        self._set_parameters(self._well_defined(self._sklearn_parameters(params)))
        self.converged_ = False
        self.n_iter_ = 0
        self.lower_bound_ = float(jnp.mean(engine.score_samples(model, params, x)))
        self.lower_bounds_ = np.zeros((0,), np.asarray(x).dtype)

    def _well_defined(self, parameters):
        """``parameters`` (scikit-learn's tuple) unchanged when finite with positive
        definite covariances; else scikit-learn's ``ValueError`` (collapsed
        components with ``reg_covar=0``), before any attribute is set."""
        if not all(np.all(np.isfinite(p)) for p in parameters):
            raise ValueError(_ILL_DEFINED)
        covariances = np.asarray(parameters[2])
        if not bool(np.all(np.asarray(covariance_of(self.covariance_type).positive_definite(jnp.asarray(covariances))))):
            raise ValueError(_ILL_DEFINED)
        return parameters

    def _sklearn_parameters(self, params):
        covariance = covariance_of(self.covariance_type)
        full = full_covariances(params, self.covariance_type)
        return (
            np.asarray(params.weights),
            np.asarray(params.means),
            np.asarray(covariance.reduce_covariances(full)),
            np.asarray(params.precisions_cholesky),
        )

    def _set_fitted(self, result, n):
        best = int(result.best_restart)
        self._set_parameters(self._well_defined(self._sklearn_parameters(result.params)))
        self.converged_ = bool(result.converged[best])
        self.n_iter_ = int(result.n_iter[best])
        self.lower_bound_ = float(result.log_likelihood) / n
        history = np.asarray(result.history[best])
        self.lower_bounds_ = history[: self.n_iter_] / n
        return self

    def _get_parameters(self):
        """``(weights_, means_, covariances_, precisions_cholesky_)`` (scikit-learn's private API)."""
        return (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_)

    def _set_parameters(self, params):
        """Sets ``(weights_, means_, covariances_, precisions_cholesky_)`` and
        ``precisions_`` from them (scikit-learn's private API)."""
        self.weights_, self.means_, self.covariances_, self.precisions_cholesky_ = (np.asarray(p) for p in params)
        factor = self.precisions_cholesky_
        if self.covariance_type in ("diag", "spherical"):
            self.precisions_ = factor**2
        else:
            self.precisions_ = factor @ np.swapaxes(factor, -1, -2)

    def _n_parameters(self) -> int:
        """Number of free parameters (scikit-learn's private API)."""
        check_is_fitted(self)
        with _precision(self.means_.dtype):
            return engine.n_parameters(self._get_model(), self._params(self.means_.dtype))

    def predict(self, X):
        """``[n_samples]`` the most probable component of each sample."""
        return self._call(engine.predict, X)

    def predict_proba(self, X):
        """``[n_samples, n_components]`` posterior probabilities of the components."""
        return self._call(engine.posterior, X)

    def score_samples(self, X):
        """``[n_samples]`` log-density of each sample."""
        return self._call(engine.score_samples, X)

    def score(self, X, y=None):
        """Mean log-likelihood per sample (higher is better)."""
        del y
        return float(np.mean(self.score_samples(X)))

    def bic(self, X):
        """Bayesian information criterion on ``X`` (lower is better)."""
        return float(self._call(engine.bic, X))

    def aic(self, X):
        """Akaike information criterion on ``X`` (lower is better)."""
        return float(self._call(engine.aic, X))

    def sample(self, n_samples=1):
        """Draws ``(X [n_samples, n_features], y [n_samples])`` from the fitted mixture.

        Uses a key derived from ``random_state`` (different from the one ``fit`` used).
        """
        check_is_fitted(self)
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples!r} . The sampling requires at least one sample."
            )
        with _precision(self.means_.dtype):
            model = self._get_model()
            params = self._params(self.means_.dtype)
            key = jax.random.fold_in(jax.random.key(_seed(self.random_state)), 1)
            x, z = engine.sample(model, params, key, int(n_samples))
            return np.asarray(x), np.asarray(z)
