"""``jaxem.sklearn.GaussianMixture`` as a drop-in for scikit-learn's: its arguments,
private helpers its tests use, messages and dtypes (the rest is measured by
``tests/peers/run_sklearn_suite.py`` on scikit-learn's own tests)."""

import re
import warnings

import jax
import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.mixture import GaussianMixture as SkGaussianMixture  # noqa: E402

import jaxem  # noqa: E402
from jaxem.sklearn import GaussianMixture  # noqa: E402


def _blobs(n=150, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[-5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    return np.concatenate([rng.normal(c, 0.6, (n // 3, 2)) for c in centres])


@pytest.fixture(scope="module")
def x():
    return _blobs()


def test_default_init_is_kmeans_as_scikit_learn():
    assert GaussianMixture().init_params == SkGaussianMixture().init_params == "kmeans"


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_every_scikit_learn_init_params_fits(x, init_params):
    gm = GaussianMixture(3, covariance_type="diag", init_params=init_params, n_init=2, random_state=0).fit(x)
    assert gm.converged_ and np.isfinite(gm.score(x))
    if init_params != "random":  # random responsibilities may end in another local optimum
        sk = SkGaussianMixture(3, covariance_type="diag", init_params=init_params, n_init=2, random_state=0).fit(x)
        assert gm.score(x) == pytest.approx(sk.score(x), abs=1e-3)


def test_kmeans_seeder_finds_the_kmeans_centres(x):
    model = jaxem.models.gaussian_mixture(3, covariance_type="diag", init="kmeans")
    params = jaxem.init(model, 0, x)
    ours = np.sort(np.asarray(params.means), axis=0)
    theirs = np.sort(KMeans(3, n_init=1, random_state=0).fit(x).cluster_centers_, axis=0)
    np.testing.assert_allclose(ours, theirs, atol=1e-8)


def test_kmeans_seeder_runs_under_vmap(x):
    from jaxem._src import seeding

    keys = jax.random.split(jax.random.key(0), 4)
    centres = jax.vmap(seeding.kmeans, in_axes=(0, None, None))(keys, jax.numpy.asarray(x), 3)
    assert centres.shape == (4, 3, 2)


def test_initial_values_are_the_start_with_max_iter_zero(x):
    weights = np.array([0.2, 0.3, 0.5])
    means = np.array([[-4.0, 0.5], [0.5, 4.0], [4.0, 0.5]])
    precisions = np.array([[1.0, 2.0], [3.0, 4.0], [0.5, 0.25]])
    gm = GaussianMixture(
        3, covariance_type="diag", max_iter=0, weights_init=weights, means_init=means, precisions_init=precisions
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # max_iter=0 does not warn
        gm.fit(x)
    np.testing.assert_allclose(gm.weights_, weights)
    np.testing.assert_allclose(gm.means_, means)
    np.testing.assert_allclose(gm.precisions_, precisions, rtol=1e-12)
    assert gm.n_iter_ == 0 and not gm.converged_
    assert gm.lower_bound_ == pytest.approx(gm.score(x), rel=1e-12)


def test_initial_values_are_checked_with_scikit_learn_messages(x):
    gm = GaussianMixture(3, covariance_type="diag", weights_init=np.ones((3, 1)) / 3)
    with pytest.raises(ValueError, match=re.escape("The parameter 'weights' should have the shape of (3,), but got (3, 1)")):
        gm.fit(x)
    with pytest.raises(ValueError, match="should be normalized"):
        gm.set_params(weights_init=np.array([0.2, 0.2, 0.2])).fit(x)
    with pytest.raises(ValueError, match="The parameter 'means' should have the shape of"):
        gm.set_params(weights_init=None, means_init=np.zeros((4, 2))).fit(x)
    with pytest.raises(ValueError, match="'diag precision' should be positive"):
        gm.set_params(means_init=None, precisions_init=-np.ones((3, 2))).fit(x)
    full = GaussianMixture(3, precisions_init=np.stack([np.diag([1.0, -1.0])] * 3))
    with pytest.raises(ValueError, match="'full precision' should be symmetric, positive-definite"):
        full.fit(x)


def test_warm_start_continues_from_the_fitted_params(x):
    gm = GaussianMixture(3, covariance_type="diag", max_iter=1, warm_start=True, random_state=0, tol=1e-9)
    bounds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(4):
            bounds.append(gm.fit(x).lower_bound_)
    assert all(b >= a - 1e-12 for a, b in zip(bounds, bounds[1:]))
    cold = GaussianMixture(3, covariance_type="diag", max_iter=1, random_state=0, tol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert cold.fit(x).fit(x).lower_bound_ == pytest.approx(bounds[0], rel=1e-12)


def test_fit_predict_and_private_parameter_api(x):
    gm = GaussianMixture(3, covariance_type="full", random_state=0)
    labels = gm.fit_predict(x)
    np.testing.assert_array_equal(labels, gm.predict(x))
    assert gm._n_parameters() == 3 * 2 * 3 // 2 + 3 * 2 + 2
    params = gm._get_parameters()
    other = GaussianMixture(3, covariance_type="full")
    other._set_parameters(params)
    np.testing.assert_allclose(other.precisions_, gm.precisions_)


def test_convergence_warning_and_sample_wording(x):
    gm = GaussianMixture(3, covariance_type="diag", max_iter=1, tol=0.0, random_state=0)
    with pytest.warns(ConvergenceWarning, match="Best performing initialization did not converge"):
        gm.fit(x)
    with pytest.raises(ValueError, match="Invalid value for 'n_samples'"):
        gm.sample(0)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_reg_covar_zero_on_degenerate_data_raises_scikit_learn_error(covariance_type):
    x = np.vstack([np.ones((5, 3)), np.zeros((5, 3))])
    gm = GaussianMixture(4, covariance_type=covariance_type, reg_covar=0, random_state=0)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        gm.fit(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_dtype_is_kept_without_global_x64(x, dtype):
    with jax.enable_x64(False):
        gm = GaussianMixture(3, covariance_type="diag", random_state=0).fit(x.astype(dtype))
        assert gm.means_.dtype == dtype and gm.precisions_cholesky_.dtype == dtype
        assert gm.predict_proba(x.astype(dtype)).dtype == dtype
        assert gm.score_samples(x.astype(dtype)).dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_private_initialize_from_responsibilities_as_scikit_learn(covariance_type, dtype):
    # scikit-learn's test_gaussian_mixture_precisions_init calls _initialize(X, resp)
    rng = np.random.RandomState(0)
    X = rng.random_sample((60, 3)).astype(dtype)
    resp = rng.random_sample((60, 4)).astype(dtype)
    resp /= resp.sum(axis=1, keepdims=True)
    ours, theirs = GaussianMixture(4, covariance_type=covariance_type), SkGaussianMixture(4, covariance_type=covariance_type)
    ours._initialize(X, resp)
    theirs._initialize(X, resp)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert getattr(ours, name).dtype == dtype
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=rtol, atol=rtol, err_msg=name)
    # given precisions replace the estimated factor, in scikit-learn's (upper triangular)
    # form; K comes from resp (scikit-learn's test leaves n_components at its default 1)
    factor = theirs.precisions_cholesky_
    precisions = factor**2 if covariance_type in ("diag", "spherical") else factor @ np.swapaxes(factor, -1, -2)
    given = GaussianMixture(covariance_type=covariance_type, precisions_init=precisions)
    given._initialize(X, resp)
    np.testing.assert_allclose(given.precisions_cholesky_, factor, rtol=10 * rtol, atol=10 * rtol)


def test_full_precisions_init_starts_from_scikit_learns_upper_factor(x):
    # regression: the start took the lower Cholesky factor of precisions_init
    # (a valid factor, not scikit-learn's precisions_cholesky_)
    precisions = np.array([[[2.0, 0.5], [0.5, 1.0]]] * 3)
    gm = GaussianMixture(3, max_iter=0, precisions_init=precisions).fit(x)
    factor = gm.precisions_cholesky_
    np.testing.assert_allclose(np.tril(factor[0], -1), 0.0)
    np.testing.assert_allclose(factor @ np.swapaxes(factor, -1, -2), precisions, rtol=1e-12)
