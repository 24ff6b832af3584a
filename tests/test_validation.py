"""Bad input raises a clear error naming the argument, at the public boundary."""

import jax
import numpy as np
import pytest

import jaxem

X = np.random.default_rng(0).normal(size=(30, 2))
MODEL = jaxem.models.gaussian_mixture(2)
PARAMS = jaxem.init(MODEL, jax.random.key(0), X)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: jaxem.fit(MODEL, X[:, 0], key=0), ValueError, "x must have 2 dimensions"),
        (lambda: jaxem.fit(MODEL, X[None], key=0), ValueError, "x must have 2 dimensions"),
        (lambda: jaxem.fit(MODEL, np.zeros((0, 2)), key=0), ValueError, "at least one row"),
        (lambda: jaxem.fit(MODEL, np.where(np.arange(60).reshape(30, 2) == 7, np.nan, X), key=0), ValueError, "x contains NaN"),
        (lambda: jaxem.fit(MODEL, np.where(np.arange(60).reshape(30, 2) == 7, np.inf, X), key=0), ValueError, "x contains NaN or infinite"),
        (lambda: jaxem.fit(jaxem.models.gaussian_mixture(31), X, key=0), ValueError, "n_components=31"),
        (lambda: jaxem.fit(MODEL, X, key=0, max_iter=0), ValueError, "max_iter"),
        (lambda: jaxem.fit(MODEL, X, key=0, max_iter=2.5), ValueError, "max_iter"),
        (lambda: jaxem.fit(MODEL, X, key=0, tol=-1.0), ValueError, "tol"),
        (lambda: jaxem.fit(MODEL, X, key=0, tol=float("nan")), ValueError, "tol"),
        (lambda: jaxem.fit(MODEL, X, key=0, n_restarts=0), ValueError, "n_restarts"),
        (lambda: jaxem.fit(MODEL, X, key="seed"), TypeError, "key"),
        (lambda: jaxem.fit(MODEL, [["a", "b"]], key=0), TypeError, "x must be an array of numbers"),
        (lambda: jaxem.fit(MODEL, X, key=0, sample_weight=-np.ones(30)), ValueError, "sample_weight must be non-negative"),
        (lambda: jaxem.fit(MODEL, X, key=0, sample_weight=np.ones(29)), ValueError, "sample_weight must have shape"),
        (lambda: jaxem.fit(MODEL, X, key=0, sample_weight=np.zeros(30)), ValueError, "positive entry"),
        (lambda: jaxem.fit(MODEL, X, key=0, init_params=PARAMS._replace(means=PARAMS.means[:, :1])), ValueError, "init_params"),
        (lambda: jaxem.em_step(MODEL, PARAMS, X[:, :1]), ValueError, "x has 1 features but params.means has 2"),
        (lambda: jaxem.em_step(MODEL, PARAMS, np.full((30, 2), np.nan)), ValueError, "NaN"),
        (lambda: jaxem.em_step(MODEL, (1, 2, 3), X), TypeError, "params must be GaussianMixtureParams"),
        (lambda: jaxem.log_likelihood(MODEL, PARAMS, X[:, :1]), ValueError, "features"),
        (lambda: jaxem.em_step(jaxem.models.gaussian_mixture(3), PARAMS, X), ValueError, "n_components=3"),
        (lambda: jaxem.em_step("model", PARAMS, X), TypeError, "model must be a jaxem Model"),
        (lambda: jaxem.sample(MODEL, PARAMS, jax.random.key(0), 0), ValueError, "n must be a positive integer"),
        (lambda: jaxem.models.gaussian_mixture(0), ValueError, "n_components"),
        (lambda: jaxem.models.gaussian_mixture(2, covariance_type="banana"), ValueError, "covariance_type"),
        (lambda: jaxem.models.gaussian_mixture(2, reg_covar=-1.0), ValueError, "reg_covar"),
        (lambda: jaxem.models.gaussian_mixture(2, init="magic"), ValueError, "init"),
        (lambda: jaxem.models.gaussian_mixture_params([0.5, 0.6], [[0.0], [1.0]], [[[1.0]], [[1.0]]]), ValueError, "weights"),
        (lambda: jaxem.models.gaussian_mixture_params([1.5, -0.5], [[0.0], [1.0]], [[[1.0]], [[1.0]]]), ValueError, "weights"),
        (lambda: jaxem.models.gaussian_mixture_params([0.5, 0.5], [[0.0], [1.0]], [[[1.0]], [[-1.0]]]), ValueError, "positive definite"),
        (lambda: jaxem.models.gaussian_mixture_params([0.5, 0.5], [[0.0], [1.0]], [1.0, 1.0]), ValueError, "covariances"),
        (lambda: jaxem.models.gaussian_mixture_params([0.5, 0.5], [[0.0], [1.0]], [1.0, 0.0], "spherical"), ValueError, "positive definite"),
        (lambda: jaxem.models.gaussian_mixture_params([1.0], [[0.0]], [[[np.nan]]]), ValueError, "covariances contains NaN"),
    ],
)
def test_bad_input_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_em_step_shape_checks_run_under_user_jit():
    with pytest.raises(ValueError, match="features"):
        jax.jit(lambda x: jaxem.em_step(MODEL, PARAMS, x))(X[:, :1])


def test_integer_data_is_accepted_as_float():
    counts = np.random.default_rng(1).integers(0, 10, size=(40, 2))
    result = jaxem.fit(MODEL, counts, key=0, max_iter=5)
    assert np.isfinite(float(result.log_likelihood))
