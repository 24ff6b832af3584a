"""Gaussian mixtures with missing values: a float64 NumPy reference and MCAR recovery."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

import jaxem
from tests.helpers import blobs


def _reference_em_step(x, weights, means, covs, covariance_type, reg_covar):
    """Incomplete-data EM, one step, row by row with explicit index sets (float64)."""
    n, d = x.shape
    k = len(weights)
    log_p = np.zeros((n, k))
    for i in range(n):
        o = ~np.isnan(x[i])
        for j in range(k):
            log_p[i, j] = np.log(weights[j]) + (
                multivariate_normal(means[j][o], covs[j][np.ix_(o, o)]).logpdf(x[i][o]) if o.any() else 0.0
            )
    top = log_p.max(axis=1, keepdims=True)
    log_lik = float(np.sum(top[:, 0] + np.log(np.exp(log_p - top).sum(axis=1))))
    resp = np.exp(log_p - top)
    resp /= resp.sum(axis=1, keepdims=True)
    counts = resp.sum(axis=0)
    new_means, new_covs = np.zeros((k, d)), np.zeros((k, d, d))
    for j in range(k):
        hats, conds = np.zeros((n, d)), np.zeros((n, d, d))
        for i in range(n):
            o, m = ~np.isnan(x[i]), np.isnan(x[i])
            hat = x[i].copy()
            cond = np.zeros((d, d))
            if m.any():
                s_oo = covs[j][np.ix_(o, o)]
                s_mo = covs[j][np.ix_(m, o)]
                gain = s_mo @ np.linalg.inv(s_oo) if o.any() else np.zeros((m.sum(), 0))
                hat[m] = means[j][m] + gain @ (x[i][o] - means[j][o])
                cond[np.ix_(m, m)] = covs[j][np.ix_(m, m)] - gain @ s_mo.T
            hats[i], conds[i] = hat, cond
        new_means[j] = resp[:, j] @ hats / counts[j]
        c = hats - new_means[j]
        new_covs[j] = (np.einsum("n,ni,nj->ij", resp[:, j], c, c) + np.einsum("n,nij->ij", resp[:, j], conds)) / counts[j]
    if covariance_type == "diag":
        new_covs = np.stack([np.diag(np.diag(c)) for c in new_covs])
    new_covs = new_covs + reg_covar * np.eye(d)[None]
    return counts / n, new_means, new_covs, log_lik


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_one_step_matches_numpy_reference(covariance_type):
    rng = np.random.default_rng(0)
    x = blobs(1, n=40)[0]
    x[rng.random(x.shape) < 0.25] = np.nan
    x[3] = np.nan  # a row with nothing observed
    model = jaxem.models.gaussian_mixture(2, covariance_type=covariance_type, missing="marginalize", reg_covar=1e-3)
    covs = {"full": np.array([[[2.0, 0.3, 0.1], [0.3, 1.5, -0.2], [0.1, -0.2, 1.0]], np.eye(3) * 3.0]),
            "diag": np.array([[2.0, 1.5, 1.0], [3.0, 3.0, 0.5]])}[covariance_type]
    params = jaxem.models.gaussian_mixture_params([0.4, 0.6], [[-3.0, 0.0, 1.0], [2.0, 2.0, 0.0]], covs, covariance_type)
    new, log_lik = jaxem.em_step(model, params, x)
    full = np.asarray(jaxem.models.covariances(params, covariance_type))
    weights, means, ref_covs, ref_log_lik = _reference_em_step(x, np.asarray(params.weights), np.asarray(params.means), full, covariance_type, 1e-3)
    assert float(log_lik) == pytest.approx(ref_log_lik, rel=1e-10)
    np.testing.assert_allclose(np.asarray(new.weights), weights, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(new.means), means, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(jaxem.models.covariances(new, covariance_type)), ref_covs, rtol=1e-8, atol=1e-12)


def test_no_missing_values_equals_the_complete_data_model():
    x = blobs(2, n=200)[0]
    plain = jaxem.models.gaussian_mixture(3, covariance_type="tied")
    marginal = jaxem.models.gaussian_mixture(3, covariance_type="tied", missing="marginalize")
    params = jaxem.init(plain, 0, x)
    (a, la), (b, lb) = jaxem.em_step(plain, params, x), jaxem.em_step(marginal, params, x)
    assert float(la) == pytest.approx(float(lb), rel=1e-12)
    for u, v in zip(a, b):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-9, atol=1e-12)


def test_mcar_fit_agrees_with_complete_rows_and_truth():
    x, labels, weights, true_means, _ = blobs(3, n=900)
    rng = np.random.default_rng(1)
    holes = rng.random(x.shape) < 0.1  # missing completely at random
    x_missing = np.where(holes, np.nan, x)
    complete = x[~holes.any(axis=1)]
    model = jaxem.models.gaussian_mixture(3, missing="marginalize")
    result = jaxem.fit(model, x_missing, key=0, n_restarts=4)
    reference = jaxem.fit(jaxem.models.gaussian_mixture(3), complete, key=0, n_restarts=4)
    order, ref_order = np.argsort(np.asarray(result.params.means)[:, 0]), np.argsort(np.asarray(reference.params.means)[:, 0])
    truth = np.argsort(true_means[:, 0])
    means = np.asarray(result.params.means)[order]
    np.testing.assert_allclose(means, np.asarray(reference.params.means)[ref_order], atol=0.25)
    np.testing.assert_allclose(means, true_means[truth], atol=0.25)
    np.testing.assert_allclose(np.asarray(result.params.weights)[order], weights[truth], atol=0.05)
    assert np.isfinite(float(result.log_likelihood))
    # uses the incomplete rows too: its estimates are at least as close to the truth
    assert np.abs(means - true_means[truth]).mean() <= np.abs(np.asarray(reference.params.means)[ref_order] - true_means[truth]).mean() + 0.05


def test_nan_is_still_rejected_by_default_and_inf_always():
    x = blobs(4, n=50)[0]
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        jaxem.fit(jaxem.models.gaussian_mixture(2), x, key=0)
    x[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        jaxem.fit(jaxem.models.gaussian_mixture(2, missing="marginalize"), x, key=0)
    with pytest.raises(ValueError, match="missing"):
        jaxem.models.gaussian_mixture(2, missing="impute")
