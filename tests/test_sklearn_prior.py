"""Issue 12: priors in the estimators. ``jaxem.sklearn.GaussianMixture(prior=...)``
is MAP-EM, equal to ``jaxem.fit`` of ``gaussian_mixture(prior=...)``; the prior is
an ordinary parameter (get_params, set_params, clone)."""

import jax
import numpy as np
import pytest
from sklearn.base import clone

import jaxem
from jaxem.sklearn import GaussianMixture


def _data():
    rng = np.random.default_rng(0)
    return np.r_[rng.normal(0.0, 1.0, (60, 2)), rng.normal(4.0, 0.5, (60, 2))]


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_estimator_with_prior_equals_jaxem_fit_with_the_same_prior(covariance_type):
    x = _data()
    prior = jaxem.priors.MixturePrior(weights=2.0, components=jaxem.priors.weak_gaussian(x, covariance_type, strength=5.0, scale=0.5))
    gm = GaussianMixture(2, covariance_type=covariance_type, n_init=2, random_state=0, prior=prior, tol=1e-6).fit(x)
    model = jaxem.models.gaussian_mixture(2, covariance_type=covariance_type, init="kmeans", prior=prior)
    result = jaxem.fit(model, x, key=0, n_restarts=2, tol=1e-6, max_iter=100)
    np.testing.assert_allclose(gm.weights_, np.asarray(result.params.weights), rtol=1e-10)
    np.testing.assert_allclose(gm.means_, np.asarray(result.params.means), rtol=1e-10)
    np.testing.assert_allclose(gm.precisions_cholesky_, np.asarray(result.params.precisions_cholesky), rtol=1e-10)
    np.testing.assert_allclose(gm.lower_bound_, float(result.log_likelihood) / len(x), rtol=1e-10)
    # the prior changed the answer: the ML fit differs
    plain = GaussianMixture(2, covariance_type=covariance_type, n_init=2, random_state=0, tol=1e-6).fit(x)
    assert not np.allclose(plain.covariances_, gm.covariances_, rtol=1e-4)
    # the trace is the log posterior, which MAP-EM never lowers
    assert np.all(np.diff(gm.lower_bounds_) >= -1e-12)


def test_prior_is_a_parameter_get_set_clone():
    x = _data()
    prior = jaxem.priors.MixturePrior(weights=3.0)
    gm = GaussianMixture(2, prior=prior)
    assert gm.get_params()["prior"] is prior
    assert GaussianMixture(2).get_params()["prior"] is None
    copy = clone(gm)
    assert copy.prior == prior and copy is not gm
    other = jaxem.priors.MixturePrior(weights=5.0)
    assert gm.set_params(prior=other).prior is other
    with pytest.raises((TypeError, ValueError), match="prior"):
        GaussianMixture(2, prior="strong").fit(x)
