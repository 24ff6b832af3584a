"""Factor analysis and PPCA: against scikit-learn's FactorAnalysis at its optimum,
the closed-form PPCA solution (Tipping & Bishop 1999), SciPy's Gaussian density
of the observed coordinates (missing values), monotone EM and float32 vs float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.datasets import load_wine
from sklearn.decomposition import FactorAnalysis

import jaxem
from jaxem.models import FactorAnalysisParams


@pytest.fixture(scope="module")
def wine():
    a = load_wine().data
    return (a - a.mean(0)) / a.std(0)  # [178, 13]; unscaled wine has a Heywood case


def covariance(params):
    w = np.asarray(params.loadings)
    return w @ w.T + np.diag(np.broadcast_to(np.asarray(params.noise_variance), w.shape[:1]))


def test_log_likelihood_and_fit_match_sklearn_at_its_optimum(wine):
    reference = FactorAnalysis(2, tol=1e-10, max_iter=5000).fit(wine)
    model = jaxem.models.factor_analysis(2)
    at_sklearn = FactorAnalysisParams(reference.mean_, reference.components_.T, reference.noise_variance_)
    np.testing.assert_allclose(jaxem.score_samples(model, at_sklearn, wine), reference.score_samples(wine), rtol=1e-10)
    result = jaxem.fit(model, wine, key=0, max_iter=2000, tol=1e-10, algorithm="squarem")
    n = wine.shape[0]
    assert abs(float(result.log_likelihood) / n - reference.score(wine)) < 1e-6
    np.testing.assert_allclose(covariance(result.params), reference.get_covariance(), atol=1e-3)  # a flat optimum


def test_ppca_reaches_closed_form_mle(wine):
    n, d = wine.shape
    q = 2
    centred = wine - wine.mean(0)
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / n)
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    sigma2 = eigenvalues[q:].mean()
    w = eigenvectors[:, :q] * np.sqrt(eigenvalues[:q] - sigma2)
    model = jaxem.models.ppca(q)
    closed = FactorAnalysisParams(wine.mean(0), w, np.asarray(sigma2))
    best = float(jaxem.log_likelihood(model, closed, wine))
    expected = multivariate_normal(wine.mean(0), w @ w.T + sigma2 * np.eye(d)).logpdf(wine).sum()
    np.testing.assert_allclose(best, expected, rtol=1e-12)
    result = jaxem.fit(model, wine, key=1, max_iter=2000, tol=1e-12, algorithm="squarem")
    assert abs(float(result.log_likelihood) - best) / n < 1e-6
    np.testing.assert_allclose(float(result.params.noise_variance), sigma2, rtol=1e-6)
    np.testing.assert_allclose(covariance(result.params), w @ w.T + sigma2 * np.eye(d), atol=1e-5)


def test_missing_values_are_marginalized_exactly(wine):
    rng = np.random.default_rng(0)
    x = wine[:60].copy()
    x[rng.random(x.shape) < 0.2] = np.nan
    x[3] = np.nan  # a row with nothing observed contributes log 1 = 0
    model = jaxem.models.factor_analysis(3)
    params = jaxem.init(model, 0, x)
    cov, mean = covariance(params), np.asarray(params.mean)
    expected = []
    for row in x:
        seen = ~np.isnan(row)
        expected.append(multivariate_normal(mean[seen], cov[np.ix_(seen, seen)]).logpdf(row[seen]) if seen.any() else 0.0)
    np.testing.assert_allclose(jaxem.score_samples(model, params, x), expected, rtol=1e-10, atol=1e-10)
    # Posterior of z given the observed coordinates, by Gaussian conditioning.
    post = jaxem.posterior(model, params, x)
    w, psi = np.asarray(params.loadings), np.asarray(params.noise_variance)
    for i in (0, 3, 7):
        seen = ~np.isnan(x[i])
        ws = w[seen]
        s = ws @ ws.T + np.diag(psi[seen])
        gain = ws.T @ np.linalg.inv(s)
        np.testing.assert_allclose(post.means[i], gain @ (x[i, seen] - mean[seen]), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(post.covariances[i], np.eye(3) - gain @ ws, rtol=1e-9, atol=1e-12)
    # EM with missing values never decreases the log-likelihood.
    lls = []
    for _ in range(15):
        params, ll = jaxem.em_step(model, params, x)
        lls.append(float(ll))
    assert np.all(np.diff(lls) >= -1e-9 * abs(lls[-1]))
    assert lls[-1] > lls[0] + 1.0


def test_float32_fit_agrees_with_float64(wine):
    model = jaxem.models.factor_analysis(2)
    start = jaxem.init(model, 0, wine)  # the same start in both precisions
    r64 = jaxem.fit(model, wine, key=0, init_params=start, max_iter=300, tol=1e-8)
    r32 = jaxem.fit(model, wine.astype(np.float32), key=0, init_params=start, max_iter=300, tol=1e-8)
    assert r32.log_likelihood.dtype == jnp.float32
    assert abs(float(r32.log_likelihood) - float(r64.log_likelihood)) / wine.shape[0] < 1e-4
    np.testing.assert_allclose(covariance(r32.params), covariance(r64.params), atol=2e-3)
    rescored = float(jaxem.log_likelihood(model, jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), r32.params), wine))
    assert abs(rescored - float(r32.log_likelihood)) / wine.shape[0] < 1e-5


def test_sample_bic_predict_and_checks(wine):
    model = jaxem.models.factor_analysis(2)
    params = FactorAnalysisParams(np.zeros(4), np.ones((4, 2)), np.full(4, 0.5))
    x, z = jaxem.sample(model, params, jax.random.key(0), 20000)
    assert x.shape == (20000, 4) and z.shape == (20000, 2)
    np.testing.assert_allclose(np.cov(np.asarray(x).T), covariance(params), atol=0.1)
    assert jaxem.n_parameters(model, params) == 4 + 8 - 1 + 4
    assert jaxem.n_parameters(jaxem.models.ppca(2), params._replace(noise_variance=np.asarray(0.5))) == 4 + 8 - 1 + 1
    np.testing.assert_allclose(jaxem.predict(model, params, x[:5]), jaxem.posterior(model, params, x[:5]).means)
    with pytest.raises(ValueError, match="infinite"):
        jaxem.log_likelihood(model, params, np.array([[np.inf, 0, 0, 0]]))
    with pytest.raises(ValueError, match="n_factors"):
        jaxem.init(jaxem.models.factor_analysis(5), 0, np.zeros((10, 4)))
    with pytest.raises(ValueError, match="noise_variance"):
        jaxem.log_likelihood(model, params._replace(noise_variance=-np.ones(4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="shape"):
        jaxem.log_likelihood(model, params._replace(loadings=np.ones((4, 3))), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="n_factors"):
        jaxem.models.factor_analysis(0)
    assert jaxem.models.factor_analysis(2) is model


def test_q_function_of_gaussian_latent_is_log_likelihood_minus_posterior_entropy(wine):
    # Regression: expected_log_joint dropped the negative entries of the gradient
    # (it is signed for a Gaussian latent: E[z], -E[zzᵀ]/2), so Q was wrong.
    model = jaxem.models.factor_analysis(2)
    params = jaxem.init(model, 0, wine[:50])
    new, log_lik, info = jaxem.em_step_with_info(model, params, wine[:50])
    covs = np.asarray(jaxem.posterior(model, params, wine[:50]).covariances)
    entropy = 0.5 * np.sum(np.linalg.slogdet(2 * np.pi * np.e * covs)[1])
    np.testing.assert_allclose(float(info.q_before), float(log_lik) - entropy, rtol=1e-10)
    assert float(info.q_after) >= float(info.q_before)
