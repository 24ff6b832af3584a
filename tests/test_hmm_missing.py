"""Gaussian HMMs with missing values (``gaussian_hmm(..., missing="marginalize")``):
one em_step against a step-by-step NumPy float64 reference (the marginal density
of each step's observed features, brute-force enumeration of the K^T paths, and
the incomplete-data M-step with the conditional moments of the missing entries);
no-NaN data against the complete-data model; float32 against float64; a monotone
fit; validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

import jaxem
from brute_force_hmm import best_path, expected_counts

START = np.array([0.6, 0.4])
TRANSITIONS = np.array([[0.8, 0.2], [0.3, 0.7]])
MEANS = np.array([[0.0, 1.0, -1.0], [2.0, -1.0, 0.5]])
FULL = np.array([[[1.0, 0.4, 0.1], [0.4, 0.8, -0.2], [0.1, -0.2, 0.6]], [[0.7, -0.1, 0.2], [-0.1, 1.2, 0.3], [0.2, 0.3, 0.9]]])


def _params(covariance_type):
    covariances = FULL if covariance_type == "full" else np.stack([np.diag(c) for c in FULL])
    return jaxem.models.gaussian_hmm_params(START, TRANSITIONS, MEANS, covariances, covariance_type)


def _sequences_with_gaps(seed):
    rng = np.random.default_rng(seed)
    sequences = [rng.normal(size=(t, 3)) + 0.5 for t in (7, 5, 6)]
    for s in sequences:
        s[rng.uniform(size=s.shape) < 0.3] = np.nan
    sequences[0][2] = np.nan  # a step with nothing observed
    sequences[1][0, :2] = np.nan
    return sequences


def _reference(sequences, covs):
    """Total log-likelihood, the new means and covariances, transitions and starts."""
    k = len(MEANS)
    tables = []
    for s in sequences:
        table = np.zeros((len(s), k))
        for t, x in enumerate(s):
            o = ~np.isnan(x)
            if o.any():
                table[t] = [multivariate_normal(MEANS[j][o], covs[j][np.ix_(o, o)]).logpdf(x[o]) for j in range(k)]
        tables.append(table)
    total, gammas, xi, first = expected_counts(START, TRANSITIONS, tables)
    moments = np.zeros((k, 3)), np.zeros((k, 3, 3))
    counts = np.zeros(k)
    rows = []
    for s, gamma in zip(sequences, gammas):
        for x, g in zip(s, gamma):
            o, m = ~np.isnan(x), np.isnan(x)
            for j in range(k):
                expected, conditional = MEANS[j].copy(), np.zeros((3, 3))
                if o.any():
                    gain = covs[j][np.ix_(m, o)] @ np.linalg.inv(covs[j][np.ix_(o, o)])
                    expected[o] = x[o]
                    expected[m] = MEANS[j][m] + gain @ (x[o] - MEANS[j][o])
                    conditional[np.ix_(m, m)] = covs[j][np.ix_(m, m)] - gain @ covs[j][np.ix_(o, m)]
                else:
                    conditional = covs[j].copy()
                rows.append((j, g[j], expected, conditional))
                counts[j] += g[j]
                moments[0][j] += g[j] * expected
    means = moments[0] / counts[:, None]
    scatter = np.zeros((k, 3, 3))
    for j, w, expected, conditional in rows:
        centred = expected - means[j]
        scatter[j] += w * (np.outer(centred, centred) + conditional)
    return total, tables, means, scatter / counts[:, None, None], xi / xi.sum(axis=1, keepdims=True), first / first.sum()


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_em_step_matches_step_by_step_reference(covariance_type):
    sequences = _sequences_with_gaps(0)
    data = jaxem.Sequences.from_list(sequences)
    model = jaxem.models.gaussian_hmm(2, covariance_type=covariance_type, reg_covar=0.0, missing="marginalize")
    params = _params(covariance_type)
    new, log_lik = jaxem.em_step(model, params, data)

    covs = FULL if covariance_type == "full" else np.stack([np.diag(np.diag(c)) for c in FULL])
    total, tables, means, covariances, transitions, first = _reference(sequences, covs)
    if covariance_type == "diag":
        covariances = np.stack([np.diag(np.diag(c)) for c in covariances])
    np.testing.assert_allclose(float(log_lik), total, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(new.means), means, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.asarray(jaxem.models.covariances(new, covariance_type)), covariances, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.asarray(new.transition_matrix), transitions, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(new.initial_probs), first, rtol=1e-9)
    paths = np.asarray(jaxem.viterbi(model, params, data))
    for b, table in enumerate(tables):
        np.testing.assert_array_equal(paths[b, : len(table)], best_path(np.log(START), np.log(TRANSITIONS), table))


def test_no_missing_values_give_the_complete_data_step():
    rng = np.random.default_rng(1)
    data = jaxem.Sequences.from_list([rng.normal(size=(t, 3)) for t in (30, 20)])
    params = _params("full")
    complete, ll = jaxem.em_step(jaxem.models.gaussian_hmm(2, covariance_type="full"), params, data)
    marginal, ll_m = jaxem.em_step(jaxem.models.gaussian_hmm(2, covariance_type="full", missing="marginalize"), params, data)
    np.testing.assert_allclose(float(ll_m), float(ll), rtol=1e-12)
    for a, b in zip(marginal, complete):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_fit_is_monotone_and_float32_matches_float64():
    model = jaxem.models.gaussian_hmm(2, covariance_type="full", missing="marginalize")
    x, _ = jaxem.sample(jaxem.models.gaussian_hmm(2, covariance_type="full"), _params("full"), jax.random.key(0), 400)
    x = np.array(x)
    x[np.random.default_rng(2).uniform(size=x.shape) < 0.2] = np.nan
    result = jaxem.fit(model, x, key=0, n_restarts=2, max_iter=30)
    for trace in np.asarray(result.history):
        trace = trace[~np.isnan(trace)]
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    params64 = _params("full")
    params32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params64)
    for _ in range(5):
        params64, ll64 = jaxem.em_step(model, params64, x)
        params32, ll32 = jaxem.em_step(model, params32, x.astype(np.float32))
    assert params32.means.dtype == np.float32
    np.testing.assert_allclose(float(ll32), float(ll64), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(params32.means), np.asarray(params64.means), atol=1e-4)


def test_validation():
    x = np.zeros((10, 3))
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        jaxem.em_step(jaxem.models.gaussian_hmm(2, covariance_type="full"), _params("full"), x)
    model = jaxem.models.gaussian_hmm(2, covariance_type="full", missing="marginalize")
    x[4, 0] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        jaxem.em_step(model, _params("full"), x)
    with pytest.raises(ValueError, match="missing"):
        jaxem.models.gaussian_hmm(2, missing="impute")
    with pytest.raises(ValueError, match="prior"):  # the missing-data M-step is maximum likelihood only
        jaxem.models.gaussian_hmm(2, missing="marginalize", prior=jaxem.priors.HMMPrior(transition_matrix=2.0))
    with pytest.raises(ValueError, match="means"):
        jaxem.em_step(model, _params("full"), np.zeros((10, 2)))


def _poisson_table(x, rates):
    from scipy.stats import poisson

    return np.stack([np.nansum(poisson(r).logpmf(x), axis=1) for r in rates], axis=1)


def _bernoulli_table(x, probs):
    return np.stack([np.nansum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=1) for p in probs], axis=1)


@pytest.mark.parametrize("family", ["poisson", "bernoulli"])
def test_count_hmms_missing_entries_drop_out(family):
    rng = np.random.default_rng(3)
    if family == "poisson":
        theta = np.array([[1.0, 4.0, 0.5], [5.0, 1.0, 2.0]])
        sequences = [rng.poisson(2.0, size=(t, 3)).astype(float) for t in (7, 6)]
        make, table_fn, field = jaxem.models.poisson_hmm, _poisson_table, "rates"
        params = jaxem.models.poisson_hmm_params(START, TRANSITIONS, theta)
    else:
        theta = np.array([[0.2, 0.7, 0.4], [0.8, 0.3, 0.6]])
        sequences = [rng.integers(0, 2, size=(t, 3)).astype(float) for t in (7, 6)]
        make, table_fn, field = jaxem.models.bernoulli_hmm, _bernoulli_table, "probs"
        params = jaxem.models.bernoulli_hmm_params(START, TRANSITIONS, theta)
    complete = jaxem.Sequences.from_list(sequences)
    for s in sequences:
        s[rng.uniform(size=s.shape) < 0.3] = np.nan
    sequences[0][1] = np.nan
    model = make(2, missing="marginalize")
    new, log_lik = jaxem.em_step(model, params, jaxem.Sequences.from_list(sequences))

    tables = [table_fn(s, theta) for s in sequences]
    total, gammas, xi, first = expected_counts(START, TRANSITIONS, tables)
    np.testing.assert_allclose(float(log_lik), total, rtol=1e-10)
    gamma, x = np.concatenate(gammas), np.concatenate(sequences)
    observed = ~np.isnan(x)
    expected = (gamma.T @ np.where(observed, x, 0.0)) / (gamma.T @ observed)
    np.testing.assert_allclose(np.asarray(getattr(new, field)), expected, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(new.transition_matrix), xi / xi.sum(axis=1, keepdims=True), rtol=1e-9)

    # no NaN: the complete-data model's step
    ours, ll = jaxem.em_step(model, params, complete)
    reference, ll_ref = jaxem.em_step(make(2), params, complete)
    np.testing.assert_allclose(float(ll), float(ll_ref), rtol=1e-12)
    for a, b in zip(ours, reference):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", pytest.param("diag", marks=pytest.mark.slow)])
def test_gmm_hmm_with_missing_values(covariance_type):
    from scipy.special import logsumexp

    rng = np.random.default_rng(4)
    k, m = 2, 2
    means = np.stack([MEANS, MEANS[::-1] + 1.0], axis=1)  # [K, M, D]
    full = np.stack([FULL, FULL[::-1]], axis=1)  # [K, M, D, D]
    weights = np.array([[0.3, 0.7], [0.6, 0.4]])
    covs = full if covariance_type == "full" else np.stack([[np.diag(c) for c in state] for state in full])
    params = jaxem.models.gmm_hmm_params(START, TRANSITIONS, weights, means, covs, covariance_type)
    dense = full if covariance_type == "full" else np.stack([[np.diag(np.diag(c)) for c in state] for state in full])
    sequences = [rng.normal(size=(t, 3)) + 0.5 for t in (7, 6)]
    complete = jaxem.Sequences.from_list([s.copy() for s in sequences])
    for s in sequences:
        s[rng.uniform(size=s.shape) < 0.3] = np.nan
    sequences[1][3] = np.nan
    model = jaxem.models.gmm_hmm(k, m, covariance_type=covariance_type, reg_covar=0.0, missing="marginalize")
    data = jaxem.Sequences.from_list(sequences)
    new, log_lik = jaxem.em_step(model, params, data)

    tables = []
    for s in sequences:
        table = np.zeros((len(s), k))
        for t, x in enumerate(s):
            o = ~np.isnan(x)
            if o.any():
                table[t] = [
                    logsumexp([np.log(weights[j, c]) + multivariate_normal(means[j, c][o], dense[j, c][np.ix_(o, o)]).logpdf(x[o]) for c in range(m)])
                    for j in range(k)
                ]
        tables.append(table)
    total, _, xi, _ = expected_counts(START, TRANSITIONS, tables)
    np.testing.assert_allclose(float(log_lik), total, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(new.transition_matrix), xi / xi.sum(axis=1, keepdims=True), rtol=1e-9)
    assert float(jaxem.log_likelihood(model, new, data)) >= float(log_lik)  # EM does not decrease it

    ours, ll = jaxem.em_step(model, params, complete)
    reference, ll_ref = jaxem.em_step(jaxem.models.gmm_hmm(k, m, covariance_type=covariance_type, reg_covar=0.0), params, complete)
    np.testing.assert_allclose(float(ll), float(ll_ref), rtol=1e-12)
    for a, b in zip(ours, reference):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="tied"):
        jaxem.models.gmm_hmm(2, 2, covariance_type="tied", missing="marginalize")
