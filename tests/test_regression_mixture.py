"""Mixture of linear regressions: one step against NumPy weighted least squares and
scikit-learn, recovery from sampled data, validation."""

import jax
import numpy as np
import pytest
import scipy.special
import scipy.stats
from sklearn.linear_model import LinearRegression

import jaxem
from jaxem import models

TRUE = models.regression_mixture_params([0.4, 0.6], [[2.0, -1.0], [-1.5, 0.5]], [1.0, -2.0], [0.25, 0.5])


def _small(seed=0, n=60):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)) * [1.0, 3.0] + [5.0, -2.0]
    y = x @ [1.0, 0.5] + rng.normal(size=n) + np.where(rng.random(n) < 0.5, 4.0, 0.0)
    start = models.regression_mixture_params([0.5, 0.5], [[0.8, 0.4], [1.2, 0.6]], [-3.0, 2.0], [1.0, 2.0])
    return x, y, start


def _responsibilities(x, y, params):
    means = x @ np.asarray(params.coefs).T + np.asarray(params.intercepts)[None, :]
    log_joint = scipy.stats.norm.logpdf(y[:, None], means, np.sqrt(np.asarray(params.variances))[None, :])
    log_joint += np.log(np.asarray(params.weights))[None, :]
    return np.exp(log_joint - scipy.special.logsumexp(log_joint, axis=1, keepdims=True)), log_joint


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_one_step_is_weighted_least_squares(fit_intercept):
    x, y, start = _small()
    if not fit_intercept:
        start = start._replace(intercepts=start.intercepts * 0.0)
    model = models.regression_mixture(2, fit_intercept=fit_intercept, reg_variance=0.0)
    r, log_joint = _responsibilities(x, y, start)
    np.testing.assert_allclose(np.asarray(model.log_joint(start, model.prepare((x, y)))), log_joint, rtol=1e-10)
    new, log_lik = jaxem.em_step(model, start, (x, y))
    np.testing.assert_allclose(float(log_lik), scipy.special.logsumexp(log_joint, axis=1).sum(), rtol=1e-12)
    design = np.column_stack([np.ones(len(x)), x]) if fit_intercept else x
    for k in range(2):
        w = np.sqrt(r[:, k])
        beta = np.linalg.lstsq(design * w[:, None], y * w, rcond=None)[0]
        coefs = beta[1:] if fit_intercept else beta
        np.testing.assert_allclose(np.asarray(new.coefs[k]), coefs, rtol=1e-8, atol=1e-10)
        if fit_intercept:
            np.testing.assert_allclose(float(new.intercepts[k]), beta[0], rtol=1e-8, atol=1e-10)
            reference = LinearRegression().fit(x, y, sample_weight=r[:, k])
            np.testing.assert_allclose(np.asarray(new.coefs[k]), reference.coef_, rtol=1e-7)
            np.testing.assert_allclose(float(new.intercepts[k]), reference.intercept_, rtol=1e-7)
        residual = y - design @ beta
        np.testing.assert_allclose(float(new.variances[k]), np.sum(r[:, k] * residual**2) / r[:, k].sum(), rtol=1e-8)
    np.testing.assert_allclose(np.asarray(new.weights), r.mean(axis=0), rtol=1e-10)


def test_recovers_parameters_from_sampled_data():
    model = models.regression_mixture(2)
    (x, y), _ = jaxem.sample(model, TRUE, jax.random.key(0), 2000)
    result = jaxem.fit(model, (x, y), key=jax.random.key(1), n_restarts=8, max_iter=300, tol=1e-8)
    order = np.argsort(np.asarray(result.params.intercepts))[::-1]  # true intercepts: 1, -2
    p = jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[order], result.params)
    np.testing.assert_allclose(p.coefs, np.asarray(TRUE.coefs), atol=0.08)
    np.testing.assert_allclose(p.intercepts, np.asarray(TRUE.intercepts), atol=0.08)
    np.testing.assert_allclose(p.variances, np.asarray(TRUE.variances), atol=0.08)
    np.testing.assert_allclose(p.weights, np.asarray(TRUE.weights), atol=0.04)
    assert float(result.log_likelihood) >= float(jaxem.log_likelihood(model, TRUE, (x, y)))
    for trace in np.asarray(result.history):
        trace = trace[np.isfinite(trace)]
        assert np.all(np.diff(trace) >= -1e-8 * np.abs(trace[1:]))


def test_variance_floor_and_empty_component_stay_finite():
    x = np.linspace(0.0, 1.0, 5)[:, None]
    y = 2.0 * x[:, 0] + 1.0  # fitted exactly by one line
    model = models.regression_mixture(2, reg_variance=1e-4)
    start = models.regression_mixture_params([0.5, 0.5], [[2.0], [-5.0]], [1.0, 30.0], [1.0, 1.0])
    params = start
    for _ in range(20):
        params, _ = jaxem.em_step(model, params, (x, y))
    leaves = [np.asarray(leaf) for leaf in params]
    assert all(np.all(np.isfinite(leaf)) for leaf in leaves)
    assert np.all(np.asarray(params.variances) >= 1e-4)


def test_sample_response_and_n_parameters():
    x = np.random.default_rng(0).normal(size=(5, 2))
    y, z = models.sample_regression_response(jax.random.key(0), TRUE, x)
    assert y.shape == (5,) and z.shape == (5,)
    assert jaxem.n_parameters(models.regression_mixture(2), TRUE) == 2 * 4 + 1
    assert jaxem.n_parameters(models.regression_mixture(2, fit_intercept=False), TRUE) == 2 * 3 + 1


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: jaxem.fit(models.regression_mixture(2), np.ones((5, 2)), key=0), TypeError, r"pair \(x, y\)"),
        (lambda: jaxem.fit(models.regression_mixture(2), (np.ones(5), np.ones(5)), key=0), ValueError, "x must have 2"),
        (lambda: jaxem.fit(models.regression_mixture(2), (np.ones((5, 1)), np.ones(4)), key=0), ValueError, "y must have one entry"),
        (lambda: jaxem.fit(models.regression_mixture(2), (np.ones((5, 1)), np.array([1, 2, np.nan, 4, 5])), key=0), ValueError, "y contains NaN"),
        (lambda: jaxem.em_step(models.regression_mixture(2), TRUE, (np.ones((5, 3)), np.ones(5))), ValueError, "coefs has shape"),
        (lambda: models.regression_mixture_params([0.5, 0.5], [[1.0], [2.0]], [0.0, 0.0], [1.0, 0.0]), ValueError, "variances"),
        (lambda: models.regression_mixture_params([0.5, 0.5], [[1.0], [2.0]], [0.0], [1.0, 1.0]), ValueError, "intercepts"),
        (lambda: models.regression_mixture(2, reg_variance=-1.0), ValueError, "reg_variance"),
    ],
)
def test_bad_input_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()
