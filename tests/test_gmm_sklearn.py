"""Gaussian mixture against scikit-learn's GaussianMixture (float64)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import jaxem
from tests.helpers import as_full_covariances, blobs, sklearn_precisions

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _data(name):
    if name == "faithful":
        return jaxem.load_dataset("faithful")[0], 3
    return blobs(1)[0], 3


def _sklearn_from(params, covariance_type, **kwargs):
    k = params.means.shape[0]
    return GaussianMixture(
        k,
        covariance_type=covariance_type,
        weights_init=np.asarray(params.weights),
        means_init=np.asarray(params.means),
        precisions_init=sklearn_precisions(params, covariance_type),
        **kwargs,
    )


@pytest.mark.parametrize("dataset", ["faithful", "blobs"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_em_step_matches_sklearn(covariance_type, dataset):
    x, k = _data(dataset)
    model = jaxem.models.gaussian_mixture(k, covariance_type=covariance_type)
    params = jaxem.init(model, jax.random.key(3), x)
    assert params.means.dtype == jnp.float64

    new, log_lik = jaxem.em_step(model, params, x)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = _sklearn_from(params, covariance_type, max_iter=1, tol=0.0).fit(x)
    rtol = 1e-6
    np.testing.assert_allclose(float(log_lik) / len(x), reference.lower_bound_, rtol=rtol)
    np.testing.assert_allclose(np.asarray(new.weights), reference.weights_, rtol=rtol)
    np.testing.assert_allclose(np.asarray(new.means), reference.means_, rtol=rtol, atol=1e-9)
    d = x.shape[1]
    ours = np.asarray(jaxem.models.covariances(new, covariance_type))
    theirs = as_full_covariances(reference.covariances_, covariance_type, k, d)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=1e-9 * np.abs(theirs).max())
    np.testing.assert_allclose(
        np.asarray(sklearn_precisions(new, covariance_type)),
        np.asarray(sklearn_precisions_from_sklearn(reference, covariance_type)),
        rtol=1e-5,
    )


def sklearn_precisions_from_sklearn(reference, covariance_type):
    u = reference.precisions_cholesky_
    if covariance_type == "full":
        return np.einsum("kij,klj->kil", u, u)
    if covariance_type == "tied":
        return u @ u.T
    return u * u


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_full_fit_reaches_sklearn_log_likelihood(covariance_type):
    x, k = _data("blobs")
    model = jaxem.models.gaussian_mixture(k, covariance_type=covariance_type)
    start = jaxem.init(model, jax.random.key(0), x)
    result = jaxem.fit(model, x, key=jax.random.key(0), init_params=start, max_iter=500, tol=1e-9)
    reference = _sklearn_from(start, covariance_type, max_iter=500, tol=1e-9).fit(x)
    assert bool(result.converged[0]) and reference.converged_
    per_sample = float(result.log_likelihood) / len(x)
    assert abs(per_sample - reference.score(x)) < 1e-5
    np.testing.assert_allclose(np.asarray(result.params.means), reference.means_, rtol=1e-4, atol=1e-6)


def test_score_samples_and_predict_match_sklearn():
    x, k = _data("faithful")
    model = jaxem.models.gaussian_mixture(k)
    params = jaxem.init(model, jax.random.key(5), x)
    reference = _sklearn_from(params, "full", max_iter=1, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference.fit(x)
    new, _ = jaxem.em_step(model, params, x)
    np.testing.assert_allclose(np.asarray(jaxem.score_samples(model, new, x)), reference.score_samples(x), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(jaxem.posterior(model, new, x)), reference.predict_proba(x), atol=1e-9)
    np.testing.assert_array_equal(np.asarray(jaxem.predict(model, new, x)), reference.predict(x))
    assert abs(float(jaxem.bic(model, new, x)) - reference.bic(x)) < 1e-6 * abs(reference.bic(x))
    assert abs(float(jaxem.aic(model, new, x)) - reference.aic(x)) < 1e-6 * abs(reference.aic(x))
