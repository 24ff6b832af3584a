"""Linear autoregressive HMM (``jaxem.models.ar_hmm``): one em_step against a NumPy
float64 reference (brute-force enumeration of the K^T paths for the posterior,
weighted least squares for the M-step), for every covariance type and order 2;
recovery of known params from sampled data; float32 against float64; validation
and save/load. The first ``order`` steps of a sequence are conditioned on (no
emission term), in the reference as in jaxem."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

import jaxem
from brute_force_hmm import best_path, expected_counts
from jaxem._src.families.covariance import covariance_of, covariances_from_factor

START = np.array([0.6, 0.4])
TRANSITIONS = np.array([[0.85, 0.15], [0.2, 0.8]])


def _covariances(params, covariance_type):
    k, d = params.intercepts.shape
    return np.asarray(covariances_from_factor(params.precisions_cholesky, k, d, covariance_of(covariance_type)))


def _regressors(x, order):
    """``[T, 1 + p D]`` rows ``[1, x_t-1, ..., x_t-p]`` (zeros before the start)."""
    t, d = x.shape
    padded = np.concatenate([np.zeros((order, d)), x])
    return np.concatenate([np.ones((t, 1))] + [padded[order - j : order - j + t] for j in range(1, order + 1)], axis=1)


def _log_emission(x, params, covariance_type, order):
    weights = np.concatenate([np.asarray(params.intercepts)[:, :, None], np.asarray(params.coefficients)], axis=2)
    covs = _covariances(params, covariance_type)
    r = _regressors(x, order)
    table = np.stack([multivariate_normal(np.zeros(x.shape[1]), covs[k]).logpdf(x - r @ weights[k].T) for k in range(len(covs))], axis=1)
    table[:order] = 0.0
    return table


def _reference_m_step(sequences, gammas, covariance_type, order):
    x = np.concatenate([s[order:] for s in sequences])
    r = np.concatenate([_regressors(s, order)[order:] for s in sequences])
    g = np.concatenate([gm[order:] for gm in gammas])
    weights, covs = [], []
    for k in range(g.shape[1]):
        w = np.linalg.solve(r.T @ (g[:, k, None] * r), r.T @ (g[:, k, None] * x)).T
        e = x - r @ w.T
        weights.append(w)
        covs.append((g[:, k, None] * e).T @ e / g[:, k].sum())
    covs = np.asarray(covs)
    counts = g.sum(axis=0)
    if covariance_type == "tied":
        covs = np.broadcast_to(np.einsum("k,kij->ij", counts, covs) / counts.sum(), covs.shape)
    elif covariance_type == "diag":
        covs = np.stack([np.diag(np.diag(c)) for c in covs])
    elif covariance_type == "spherical":
        covs = np.stack([np.eye(c.shape[0]) * np.mean(np.diag(c)) for c in covs])
    return np.asarray(weights), covs


def _order_two_params(covariance_type):
    coefficients = np.array(
        [[[0.5, 0.1, 0.2, 0.0], [0.0, 0.4, 0.0, -0.1]], [[-0.3, 0.0, 0.1, 0.1], [0.2, 0.6, 0.0, 0.0]]]
    )
    intercepts = np.array([[0.0, 1.0], [2.0, -1.0]])
    full = np.array([[[0.5, 0.1], [0.1, 0.3]], [[0.8, -0.2], [-0.2, 0.6]]])
    covariances = {"full": full, "tied": full[0], "diag": np.array([[0.5, 0.3], [0.8, 0.6]]), "spherical": np.array([0.4, 0.7])}
    return jaxem.models.ar_hmm_params(START, TRANSITIONS, coefficients, intercepts, covariances[covariance_type], covariance_type)


@pytest.mark.parametrize(
    "covariance_type", ["full", "diag", pytest.param("tied", marks=pytest.mark.slow), pytest.param("spherical", marks=pytest.mark.slow)]
)
def test_em_step_matches_numpy_reference(covariance_type):
    order = 2
    rng = np.random.default_rng(0)
    sequences = [rng.normal(size=(t, 2)) * 1.5 + np.array([3.0, -2.0]) for t in (8, 7, 6)]
    data = jaxem.Sequences.from_list(sequences)
    model = jaxem.models.ar_hmm(2, order=order, covariance_type=covariance_type, reg_covar=0.0)
    params = _order_two_params(covariance_type)
    new, log_lik = jaxem.em_step(model, params, data)

    tables = [_log_emission(s, params, covariance_type, order) for s in sequences]
    total, gammas, xi, first = expected_counts(START, TRANSITIONS, tables)
    np.testing.assert_allclose(float(log_lik), total, rtol=1e-10)
    paths = np.asarray(jaxem.viterbi(model, params, data))
    for b, table in enumerate(tables):
        np.testing.assert_array_equal(paths[b, : len(table)], best_path(np.log(START), np.log(TRANSITIONS), table))
    weights, covs = _reference_m_step(sequences, gammas, covariance_type, order)
    np.testing.assert_allclose(np.asarray(new.intercepts), weights[:, :, 0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.asarray(new.coefficients), weights[:, :, 1:], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(_covariances(new, covariance_type), covs, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.asarray(new.transition_matrix), xi / xi.sum(axis=1, keepdims=True), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(new.initial_probs), first / first.sum(), rtol=1e-9)


@pytest.mark.slow
def test_fit_recovers_sampled_params_and_float32_matches_float64():
    model = jaxem.models.ar_hmm(2, order=1, covariance_type="full")
    coefficients = np.array([[[0.8, 0.1], [0.0, 0.7]], [[-0.5, 0.0], [0.3, -0.4]]])
    intercepts = np.array([[0.0, 0.5], [3.0, -2.0]])
    covs = np.array([[[0.3, 0.05], [0.05, 0.2]], [[0.5, -0.1], [-0.1, 0.4]]])
    truth = jaxem.models.ar_hmm_params([0.5, 0.5], [[0.97, 0.03], [0.04, 0.96]], coefficients, intercepts, covs)
    x, z = jaxem.sample(model, truth, jax.random.key(0), 3000)
    result = jaxem.fit(model, x, key=0, n_restarts=3)
    order = np.argsort(np.asarray(result.params.intercepts)[:, 0])
    np.testing.assert_allclose(np.asarray(result.params.coefficients)[order], coefficients, atol=0.06)
    np.testing.assert_allclose(np.asarray(result.params.intercepts)[order], intercepts, atol=0.2)
    np.testing.assert_allclose(_covariances(result.params, "full")[order], covs, atol=0.05)
    for trace in np.asarray(result.history):
        trace = trace[~np.isnan(trace)]
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))

    x64 = np.asarray(x, np.float64)[:800]
    params64 = jaxem.init(model, jax.random.key(3), x64)
    params32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params64)
    for _ in range(8):
        params64, ll64 = jaxem.em_step(model, params64, x64)
        params32, ll32 = jaxem.em_step(model, params32, x64.astype(np.float32))
    assert params32.coefficients.dtype == np.float32
    np.testing.assert_allclose(float(ll32), float(ll64), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(params32.coefficients), np.asarray(params64.coefficients), atol=1e-3)


def test_validation_and_save_load(tmp_path):
    model = jaxem.models.ar_hmm(2, order=2, covariance_type="diag", reg_covar=1e-4)
    params = _order_two_params("diag")
    with pytest.raises(ValueError, match="order"):
        jaxem.models.ar_hmm(2, order=0)
    with pytest.raises(ValueError, match="coefficients"):
        jaxem.models.ar_hmm_params(START, TRANSITIONS, np.zeros((2, 2, 3)), np.zeros((2, 2)), np.ones((2, 2)), "diag")
    with pytest.raises(ValueError, match="coefficients"):
        jaxem.em_step(jaxem.models.ar_hmm(2, order=1, covariance_type="diag"), params, np.zeros((10, 2)))
    with pytest.raises(ValueError, match="longer than order"):
        jaxem.em_step(model, params, np.zeros((2, 2)))
    # K - 1 + K (K - 1) + K D (p D + 1) + K D
    assert jaxem.n_parameters(model, params) == 1 + 2 + 2 * 2 * 5 + 4
    jaxem.save(tmp_path / "ar.npz", model, params)
    loaded_model, loaded = jaxem.load(tmp_path / "ar.npz")
    assert loaded_model is model and isinstance(loaded, jaxem.models.ARHMMParams)
    np.testing.assert_array_equal(np.asarray(loaded.coefficients), np.asarray(params.coefficients))
