"""jaxem.sklearn.GaussianMixture: scikit-learn's estimator checks, pipelines, parity."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import jaxem
from jaxem.sklearn import GaussianMixture
from tests.helpers import blobs

# Every applicable check of scikit-learn 1.9 runs, on one configuration (the
# defaults). None is expected to fail. One is skipped by scikit-learn itself:
#   check_array_api_input: skipped unless the environment sets SCIPY_ARRAY_API=1;
#   jaxem converts every input to a JAX array anyway.
EXPECTED_FAILED_CHECKS = {}


@parametrize_with_checks([GaussianMixture()], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "covariance_type", ["full", "diag", pytest.param("tied", marks=pytest.mark.slow), pytest.param("spherical", marks=pytest.mark.slow)]
)
def test_estimator_equals_functional_api(covariance_type):
    x = blobs(2, n=300)[0]
    est = GaussianMixture(3, covariance_type=covariance_type, n_init=4, max_iter=60, tol=1e-4, random_state=7).fit(x)
    # The same model jaxem.models.gaussian_mixture(3, covariance_type=...) builds; the
    # estimator keeps one per configuration so that compiled functions are reused.
    model = est._get_model()
    result = jaxem.fit(model, x, key=7, n_restarts=4, max_iter=60, tol=1e-4)
    params = result.params
    np.testing.assert_array_equal(est.weights_, np.asarray(params.weights))
    np.testing.assert_array_equal(est.means_, np.asarray(params.means))
    np.testing.assert_array_equal(est.precisions_cholesky_, np.asarray(params.precisions_cholesky))
    best = int(result.best_restart)
    assert est.n_iter_ == int(result.n_iter[best]) and est.converged_ == bool(result.converged[best])
    assert est.lower_bound_ == pytest.approx(float(result.log_likelihood) / len(x), rel=1e-12)
    np.testing.assert_array_equal(est.predict_proba(x), np.asarray(jaxem.posterior(model, params, x)))
    np.testing.assert_array_equal(est.predict(x), np.asarray(jaxem.predict(model, params, x)))
    np.testing.assert_allclose(est.score_samples(x), np.asarray(jaxem.score_samples(model, params, x)), rtol=1e-12)
    assert est.bic(x) == pytest.approx(float(jaxem.bic(model, params, x)), rel=1e-12)
    assert est.aic(x) == pytest.approx(float(jaxem.aic(model, params, x)), rel=1e-12)
    # Fitted covariances in scikit-learn's shape for the type.
    full = np.asarray(jaxem.models.covariances(params, covariance_type))
    expected = {"full": full, "tied": full[0], "diag": np.diagonal(full, axis1=1, axis2=2),
                "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1)}[covariance_type]
    np.testing.assert_allclose(est.covariances_, expected, rtol=1e-12)


def test_matches_sklearn_gaussian_mixture_on_separated_data():
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    x = blobs(4, n=400)[0]
    # tol 1e-10: at 1e-8 both stop on the same optimum with means still 1.6e-5 apart
    # (where EM stops depends on the start: k-means to convergence here, since the fix)
    ours = GaussianMixture(3, n_init=4, tol=1e-10, max_iter=500, random_state=0).fit(x)
    theirs = SkGaussianMixture(3, n_init=4, tol=1e-10, max_iter=500, random_state=0).fit(x)
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-6)
    assert ours.score(x) == pytest.approx(theirs.score(x), rel=1e-6)
    assert ours.bic(x) == pytest.approx(theirs.bic(x), rel=1e-6)
    order_ours, order_theirs = np.argsort(ours.means_[:, 0]), np.argsort(theirs.means_[:, 0])
    np.testing.assert_allclose(ours.means_[order_ours], theirs.means_[order_theirs], rtol=1e-4, atol=1e-6)


def test_grid_search_in_pipeline_picks_true_number_of_components():
    x, labels, _, _, _ = blobs(5, n=450)
    x = x * np.array([1.0, 100.0, 0.01])[None, :]  # scales that StandardScaler removes
    pipe = make_pipeline(StandardScaler(), GaussianMixture(random_state=0, n_init=3, max_iter=200))
    search = GridSearchCV(
        pipe,
        {"gaussianmixture__n_components": [2, 3, 4]},
        cv=KFold(n_splits=3, shuffle=True, random_state=0),
    )
    search.fit(x)
    assert search.best_params_["gaussianmixture__n_components"] == 3
    scores = search.cv_results_["mean_test_score"]
    assert scores[1] > scores[0]
    predicted = search.best_estimator_.predict(x)
    for k in range(3):  # each true cluster maps to one fitted component
        assert np.bincount(predicted[labels == k]).max() >= 0.95 * np.sum(labels == k)


def test_sample_and_clone_and_errors():
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    x = blobs(6, n=200)[0]
    est = GaussianMixture(2, random_state=3)
    with pytest.raises(NotFittedError):
        est.predict(x)
    est.fit(x)
    xs, zs = est.sample(50)
    assert xs.shape == (50, 3) and zs.shape == (50,) and np.all(np.isfinite(xs))
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(ValueError, match="n_components"):
        GaussianMixture(300).fit(x)
    with pytest.raises(ValueError, match="init_params"):
        GaussianMixture(2, init_params="magic").fit(x)
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianMixture(2, covariance_type="banana").fit(x)
    with pytest.raises(ValueError, match="features"):
        est.predict(x[:, :2])
    with pytest.raises(ValueError, match="n_samples"):
        est.sample(0)


def test_float32_input_stays_float32():
    x = blobs(7, n=200)[0].astype(np.float32)
    est = GaussianMixture(3, random_state=0).fit(x)
    assert est.means_.dtype == np.float32 and est.predict_proba(x).dtype == np.float32
    assert np.isfinite(est.score(x))


def test_verbose_prints_progress(capsys):
    x = blobs(8, n=200)[0]
    GaussianMixture(2, random_state=0, max_iter=30, tol=0.0).fit(x)
    assert "jaxem fit" not in capsys.readouterr().err
    GaussianMixture(2, random_state=0, max_iter=30, tol=0.0, verbose=1).fit(x)
    assert "Iteration 10" in capsys.readouterr().out  # scikit-learn's verbose: stdout, every verbose_interval
