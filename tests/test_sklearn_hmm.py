"""jaxem.sklearn.GaussianHMM (= jaxem.hmmlearn.GaussianHMM): hmmlearn's conventions and scores."""

import jax
import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM as HmmlearnGaussianHMM

import jaxem
import jaxem.hmmlearn
from jaxem.sklearn import GaussianHMM

TRUE = jaxem.models.gaussian_hmm_params(
    [0.6, 0.4], [[0.9, 0.1], [0.2, 0.8]], [[0.0, 0.0], [4.0, 2.0]], [[1.0, 0.5], [0.7, 1.2]]
)


def _data():
    model = jaxem.models.gaussian_hmm(2)
    xs = [np.asarray(jaxem.sample(model, TRUE, jax.random.key(i), n)[0]) for i, n in enumerate((120, 90, 150))]
    return np.concatenate(xs), [120, 90, 150]


def _per_type(full, covariance_type):
    return {"full": full, "tied": full[0], "diag": np.diagonal(full, axis1=1, axis2=2),
            "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1)}[covariance_type]


@pytest.mark.parametrize("covariance_type", ["diag", pytest.param("full", marks=pytest.mark.slow)])
def test_matches_hmmlearn_score_on_the_same_params(covariance_type):
    x, lengths = _data()
    est = GaussianHMM(2, covariance_type=covariance_type, n_init=3, n_iter=100, tol=1e-4, random_state=0).fit(x, lengths)
    assert est.monitor_.converged and est.covars_.shape == (2, 2, 2)
    reference = HmmlearnGaussianHMM(2, covariance_type=covariance_type, init_params="")
    reference.n_features = 2
    reference.startprob_, reference.transmat_, reference.means_ = est.startprob_, est.transmat_, est.means_
    reference.covars_ = _per_type(est.covars_, covariance_type)
    assert est.score(x, lengths) == pytest.approx(reference.score(x, lengths), rel=1e-10)
    log_prob, posteriors = est.score_samples(x, lengths)
    ref_log_prob, ref_posteriors = reference.score_samples(x, lengths)
    assert log_prob == pytest.approx(ref_log_prob, rel=1e-10)
    np.testing.assert_allclose(posteriors, ref_posteriors, atol=1e-9)
    np.testing.assert_array_equal(est.predict(x, lengths), reference.predict(x, lengths))
    # recovers the generating chain (up to label order)
    order = np.argsort(est.means_[:, 0])
    np.testing.assert_allclose(est.transmat_[np.ix_(order, order)], np.asarray(TRUE.transition_matrix), atol=0.1)


@pytest.mark.slow
def test_sample_criteria_and_errors():
    x, lengths = _data()
    est = GaussianHMM(2, n_init=2, n_iter=30, random_state=5).fit(x, lengths)
    assert GaussianHMM is jaxem.hmmlearn.GaussianHMM
    xs, zs = est.sample(40)
    assert xs.shape == (40, 2) and zs.shape == (40,) and np.all(np.isfinite(xs))
    assert np.isfinite(est.bic(x, lengths)) and np.isfinite(est.aic(x, lengths))
    with pytest.raises(ValueError, match="lengths"):
        est.score(x, [100, 100])
    with pytest.raises(ValueError, match="features"):
        est.predict(x[:, :1], lengths)
