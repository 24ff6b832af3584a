"""Issue 12, case 7: clusters at scale 1e-8. ``reg_covar`` is in data units (as
scikit-learn's), so the default 1e-6 swamps variances of 1e-16 and the clusters
merge; the data-scaled weak prior ``jaxem.priors.weak_gaussian`` with
``reg_covar=0`` is scale-free and recovers them."""

import itertools

import numpy as np

import jaxem


def _tiny_clusters(n=240):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], n // 3)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    return (1e-8 * (centres[labels] + rng.normal(size=(n, 2)))).astype(np.float32), labels


def _agreement(labels, predicted):
    """Fraction of rows labelled alike, under the best matching of the labels."""
    return max(np.mean(np.asarray(perm)[predicted] == labels) for perm in itertools.permutations(range(3)))


def test_weak_data_scaled_prior_recovers_clusters_at_scale_1e_8():
    x, labels = _tiny_clusters()
    default = jaxem.models.gaussian_mixture(3)
    fitted = jaxem.fit(default, x, key=0, n_restarts=2)
    assert _agreement(labels, np.asarray(jaxem.posterior(default, fitted.params, x)).argmax(1)) < 0.7

    prior = jaxem.priors.MixturePrior(components=jaxem.priors.weak_gaussian(x, "full"))
    model = jaxem.models.gaussian_mixture(3, reg_covar=0.0, prior=prior)
    result = jaxem.fit(model, x, key=0, n_restarts=2)
    assert _agreement(labels, np.asarray(jaxem.posterior(model, result.params, x)).argmax(1)) >= 0.99
    # the fitted standard deviations are the clusters' own (1e-8), not reg_covar's 1e-3
    sd = np.sqrt(np.diagonal(np.asarray(jaxem.models.covariances(result.params)), axis1=1, axis2=2))
    assert np.all((sd > 0.5e-8) & (sd < 2e-8)), sd
    # MAP-EM climbs the log posterior
    for trace in np.asarray(result.history):
        trace = trace[np.isfinite(trace)]
        assert np.all(np.diff(trace) >= -1e-5 * np.abs(trace[1:])), trace
