"""Fuzzing the public entry points: only a sound result or a documented exception.

Hypothesis throws random shapes, dtypes, NaN/inf, huge and tiny values, wrong
types and out-of-range settings at every public function of the Gaussian-mixture
API. A call may raise ``ValueError`` or ``TypeError`` (the documented exceptions);
anything else it raises fails the test, and so does a result with NaN in it (fitted
params and log-likelihoods must be finite; a log-density may be ``-inf`` only).

The default run tries a fixed (derandomized) set of examples; the slow run tries
many more random ones.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxem

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
# A few models, built once so that compiled code is shared between examples.
MODELS = {(k, t): jaxem.models.gaussian_mixture(k, covariance_type=t) for k in (1, 2) for t in COVARIANCE_TYPES}
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, 1e38, -3e38, 1e300, 1e-310]
DOCUMENTED = (ValueError, TypeError)


@st.composite
def hostile_arrays(draw, shape=None):
    """Arrays (or array-likes) of random shape and dtype with special values."""
    if shape is None:
        ndim = draw(st.sampled_from([2, 2, 2, 2, 1, 0, 3]))
        shape = tuple(draw(st.integers(0, 4)) for _ in range(ndim))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    scale = draw(st.sampled_from([1.0, 1.0, 1e-30, 1e30, 1e200]))
    offset = draw(st.sampled_from([0.0, 0.0, 1e6, -1e20]))
    values = offset + scale * rng.normal(size=shape)
    for _ in range(draw(st.integers(0, 2))):
        if values.size:
            values.flat[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from(SPECIAL))
    kind = draw(st.sampled_from(["float64", "float64", "float32", "float32", "float16", "int32", "bool", "complex64", "str", "object", "list", "jax"]))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind in ("float64", "float32", "float16", "int32", "bool", "complex64"):
            return values.astype(kind)
        if kind == "str":
            return values.astype(str)
        if kind == "object":
            return values.astype(object)
        if kind == "list":
            return values.tolist()
        return jnp.asarray(values.astype(np.float32))


def _valid_params(k, d, covariance_type, dtype):
    shapes = {"full": np.stack([np.eye(d)] * k), "tied": np.eye(d), "diag": np.ones((k, d)), "spherical": np.ones(k)}
    means = np.arange(k * d, dtype=np.float64).reshape(k, d)
    return jaxem.models.gaussian_mixture_params(np.full(k, 1.0 / k), means, shapes[covariance_type], covariance_type)._replace()


@st.composite
def calls(draw):
    k = draw(st.sampled_from([1, 2]))
    covariance_type = draw(st.sampled_from(COVARIANCE_TYPES))
    model = MODELS[k, covariance_type]
    x = draw(st.one_of(hostile_arrays(), hostile_arrays(shape=(draw(st.integers(1, 6)), draw(st.integers(1, 3))))))
    d = np.shape(x)[-1] if np.ndim(x) >= 1 and np.shape(x)[-1] > 0 else 2
    params = _valid_params(k, d, covariance_type, np.float64)
    mutation = draw(st.sampled_from(["none", "none", "leaf", "object"]))
    if mutation == "leaf":
        field = draw(st.sampled_from(params._fields))
        same_shape = draw(st.booleans())
        shape = np.shape(getattr(params, field)) if same_shape else None
        params = params._replace(**{field: draw(hostile_arrays(shape=shape))})
    elif mutation == "object":
        params = draw(st.sampled_from([None, (1, 2, 3), "params", np.zeros(3)]))
    weight = draw(st.one_of(st.none(), hostile_arrays(shape=(np.shape(x)[0],) if np.ndim(x) else (1,)), hostile_arrays()))
    key = draw(st.sampled_from([0, 1, jax.random.key(2), "seed", 1.5, None]))
    n = draw(st.sampled_from([1, 3, 0, -1, 2.5, True, "3", np.int64(2)]))
    entry = draw(st.sampled_from(
        ["fit", "em_step", "init", "posterior", "predict", "score_samples", "log_likelihood", "bic", "aic", "sample", "factory", "params"]
    ))
    options = dict(
        n_components=draw(st.sampled_from([1, 2, 0, -1, 2.5, True, "2", None, np.int64(2)])),
        covariance_type=draw(st.sampled_from(list(COVARIANCE_TYPES) + ["banana", None, 3])),
        reg_covar=draw(st.sampled_from([1e-6, 0.0, -1.0, np.nan, np.inf, "a", None, True])),
        init=draw(st.sampled_from(["kmeans++", "random_from_data", "magic", None])),
        max_iter=draw(st.sampled_from([3, 3, 0, -1, 2.5])),
        n_restarts=draw(st.sampled_from([1, 2, 0])),
        tol=draw(st.sampled_from([1e-3, -1.0, np.nan, np.inf, "a"])),
    )
    arrays = (draw(hostile_arrays()), draw(hostile_arrays()), draw(hostile_arrays()))
    return entry, model, params, x, weight, key, n, options, arrays


def _finite(tree):
    return all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree_util.tree_leaves(tree))


def _no_nan_or_plus_inf(value):
    value = np.asarray(value)
    return not np.any(np.isnan(value)) and not np.any(value == np.inf)


def _run(entry, model, params, x, weight, key, n, options, arrays):
    if entry == "fit":
        result = jaxem.fit(model, x, key=key, n_restarts=options["n_restarts"], max_iter=options["max_iter"], tol=options["tol"], sample_weight=weight)
        assert _finite(result.params) and np.isfinite(float(result.log_likelihood)), result
    elif entry == "em_step":
        new, log_lik = jaxem.em_step(model, params, x, sample_weight=weight)
        assert _finite(new) and _no_nan_or_plus_inf(log_lik), (new, log_lik)
    elif entry == "init":
        assert _finite(jaxem.init(model, key, x))
    elif entry == "posterior":
        post = np.asarray(jaxem.posterior(model, params, x))
        assert _finite(post) and np.all(post >= 0) and np.allclose(post.sum(-1), 1.0, atol=1e-3), post
    elif entry == "predict":
        labels = np.asarray(jaxem.predict(model, params, x))
        assert np.all((labels >= 0) & (labels < model_k(params)))
    elif entry == "score_samples":
        assert _no_nan_or_plus_inf(jaxem.score_samples(model, params, x))
    elif entry == "log_likelihood":
        assert _no_nan_or_plus_inf(jaxem.log_likelihood(model, params, x, sample_weight=weight))
    elif entry in ("bic", "aic"):
        value = getattr(jaxem, entry)(model, params, x)
        assert not np.isnan(float(value)) and float(value) != -np.inf
    elif entry == "sample":
        xs, zs = jaxem.sample(model, params, key, n)
        assert _finite(xs) and np.shape(xs)[0] == n
    elif entry == "factory":
        model = jaxem.models.gaussian_mixture(
            options["n_components"], covariance_type=options["covariance_type"], reg_covar=options["reg_covar"], init=options["init"]
        )
        assert isinstance(model, jaxem.Model)
    else:
        weights, means, covariances = arrays
        params = jaxem.models.gaussian_mixture_params(weights, means, covariances, options["covariance_type"])
        assert _finite(params)


def model_k(params):
    return np.shape(params.means)[0]


def _check_call(call):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _run(*call)
    except DOCUMENTED:
        pass


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(calls())
def test_public_entry_points_fuzz(call):
    _check_call(call)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(calls())
def test_public_entry_points_fuzz_long(call):
    _check_call(call)
