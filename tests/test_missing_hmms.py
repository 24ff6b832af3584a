"""Categorical, multinomial, tied GMM-HMM and autoregressive HMMs with
``missing="marginalize"``: one em_step against brute-force enumeration of the K^T
paths with step-by-step SciPy float64 emissions and NumPy M-steps; no-NaN data give
exactly the complete-data step; EM fixed points against SciPy's optimizer; MCAR
against the complete-data fit; float32 against float64; validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp, softmax

import jaxem
from brute_force_hmm import expected_counts

START = np.array([0.6, 0.4])
TRANSITIONS = np.array([[0.8, 0.2], [0.3, 0.7]])
EMISSIONS = np.array([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4]])


def _assert_same_step(model, complete_model, params, data):
    ours, ll = jaxem.em_step(model, params, data)
    reference, ll_ref = jaxem.em_step(complete_model, params, data)
    np.testing.assert_allclose(float(ll), float(ll_ref), rtol=1e-13)
    for a, b in zip(ours, reference):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-14)


def _assert_chain_step(new, log_lik, tables, start=START, transitions=TRANSITIONS):
    total, gammas, xi, first = expected_counts(start, transitions, tables)
    np.testing.assert_allclose(float(log_lik), total, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(new.transition_matrix), xi / xi.sum(axis=1, keepdims=True), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(new.initial_probs), first / first.sum(), rtol=1e-9)
    return gammas


def test_categorical_hmm_missing_symbols_have_no_emission():
    rng = np.random.default_rng(0)
    sequences = [rng.integers(0, 4, size=t).astype(float) for t in (7, 6)]
    complete = jaxem.Sequences.from_list([s.copy() for s in sequences])
    for s in sequences:
        s[rng.uniform(size=s.shape) < 0.3] = np.nan
    sequences[1][0] = np.nan
    params = jaxem.models.categorical_hmm_params(START, TRANSITIONS, EMISSIONS)
    model = jaxem.models.categorical_hmm(2, 4, missing="marginalize")
    data = jaxem.Sequences.from_list(sequences)
    new, log_lik = jaxem.em_step(model, params, data)
    tables = [np.stack([np.where(np.isnan(s), 0.0, np.log(EMISSIONS[k][np.nan_to_num(s).astype(int)])) for k in range(2)], 1) for s in sequences]
    gammas = _assert_chain_step(new, log_lik, tables)
    x, g = np.concatenate(sequences), np.concatenate(gammas)
    seen = ~np.isnan(x)
    counts = g[seen].T @ np.eye(4)[x[seen].astype(int)]
    np.testing.assert_allclose(np.asarray(new.emission_probs), counts / counts.sum(axis=1, keepdims=True), rtol=1e-9)
    assert np.all(np.isfinite(np.asarray(jaxem.viterbi(model, params, data))))
    _assert_same_step(model, jaxem.models.categorical_hmm(2, 4), params, complete)


@pytest.mark.slow
def test_categorical_hmm_float32_and_prior():
    """float32 against float64, and a prior still applies (the model stays on the exponential-family path)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=40).astype(float)
    x[rng.uniform(size=x.shape) < 0.3] = np.nan
    params = jaxem.models.categorical_hmm_params(START, TRANSITIONS, EMISSIONS)
    model = jaxem.models.categorical_hmm(2, 4, missing="marginalize")
    data = jaxem.Sequences(x[None], np.array([40]))
    new, log_lik = jaxem.em_step(model, params, data)
    seen = ~np.isnan(x)
    gamma = np.asarray(jaxem.posterior(model, params, data))[0]
    counts = gamma[seen].T @ np.eye(4)[x[seen].astype(int)]
    params32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
    data32 = jaxem.Sequences(np.asarray(data.obs, np.float32), data.lengths)
    new32, ll32 = jaxem.em_step(model, params32, data32)
    assert new32.emission_probs.dtype == np.float32
    np.testing.assert_allclose(float(ll32), float(log_lik), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(new32.emission_probs), np.asarray(new.emission_probs), atol=1e-6)
    with_prior = jaxem.models.categorical_hmm(2, 4, missing="marginalize", prior=jaxem.priors.HMMPrior(emissions=2.0))
    new_map, _ = jaxem.em_step(with_prior, params, data)
    np.testing.assert_allclose(np.asarray(new_map.emission_probs), (counts + 1) / (counts + 1).sum(axis=1, keepdims=True), rtol=1e-8)


def _multinomial_table(x, n_trials):
    """``[T, K]`` log-likelihood of each step's observed cells (SciPy)."""
    table = np.zeros((len(x), 2))
    for t, row in enumerate(x):
        o = ~np.isnan(row)
        if not o.any():
            continue
        for k in range(2):
            p = EMISSIONS[k]
            if o.all():
                table[t, k] = stats.multinomial(int(row.sum()), p).logpmf(row)
            elif n_trials is None:
                table[t, k] = stats.multinomial(int(row[o].sum()), p[o] / p[o].sum()).logpmf(row[o])
            else:
                lump = n_trials - row[o].sum()
                table[t, k] = stats.multinomial(n_trials, np.append(p[o], p[~o].sum())).logpmf(np.append(row[o], lump))
    return table


def _multinomial_counts(x, gamma, n_trials):
    counts = np.zeros((2, 4))
    for row, g in zip(x, gamma):
        o = ~np.isnan(row)
        for k in range(2):
            p = EMISSIONS[k]
            filled = np.where(o, row, 0.0)
            if not o.all():
                if n_trials is None:
                    filled = filled + np.where(o, 0.0, row[o].sum() * p / p[o].sum()) if o.any() else filled
                else:
                    filled = filled + np.where(o, 0.0, (n_trials - row[o].sum()) * p / p[~o].sum())
            counts[k] += g[k] * filled
    return counts / counts.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("n_trials", [5, pytest.param(None, marks=pytest.mark.slow)])
def test_multinomial_hmm_observed_cells(n_trials):
    rng = np.random.default_rng(1)
    sequences = [rng.multinomial(5, [0.3, 0.3, 0.2, 0.2], size=t).astype(float) for t in (7, 6)]
    complete = jaxem.Sequences.from_list([s.copy() for s in sequences])
    for s in sequences:
        s[rng.uniform(size=s.shape) < 0.3] = np.nan
    sequences[0][3] = np.nan
    params = jaxem.models.multinomial_hmm_params(START, TRANSITIONS, EMISSIONS)
    model = jaxem.models.multinomial_hmm(2, n_trials=n_trials, missing="marginalize")
    new, log_lik = jaxem.em_step(model, params, jaxem.Sequences.from_list(sequences))
    tables = [_multinomial_table(s, n_trials) for s in sequences]
    gammas = _assert_chain_step(new, log_lik, tables)
    expected = _multinomial_counts(np.concatenate(sequences), np.concatenate(gammas), n_trials)
    np.testing.assert_allclose(np.asarray(new.emission_probs), expected, rtol=1e-9)
    _assert_same_step(model, jaxem.models.multinomial_hmm(2, n_trials=n_trials), params, complete)


@pytest.mark.slow
def test_multinomial_fixed_point_maximizes_the_marginal_likelihood():
    """One state, known n: EM's fixed point maximizes Σ log Mult([x_O, n - N_O]; n, [p_O, P_M])."""
    rng = np.random.default_rng(2)
    x = rng.multinomial(6, [0.4, 0.3, 0.2, 0.1], size=60).astype(float)
    x[rng.uniform(size=x.shape) < 0.3] = np.nan
    model = jaxem.models.multinomial_hmm(1, n_trials=6, missing="marginalize")
    start = jaxem.models.multinomial_hmm_params([1.0], [[1.0]], np.full((1, 4), 0.25))
    params = jaxem.fit(model, x, key=0, max_iter=500, tol=1e-14, init_params=start).params
    o = ~np.isnan(x)

    def negative(logits):
        p = softmax(np.concatenate([[0.0], logits]))
        total = 0.0
        for row, m in zip(x, o):
            if m.all():
                total += stats.multinomial(6, p).logpmf(row)
            elif m.any():
                total += stats.multinomial(6, np.append(p[m], p[~m].sum())).logpmf(np.append(row[m], 6 - row[m].sum()))
        return -total

    best = optimize.minimize(negative, np.zeros(3), method="BFGS", options={"gtol": 1e-9})
    np.testing.assert_allclose(np.asarray(params.emission_probs)[0], softmax(np.concatenate([[0.0], best.x])), atol=1e-5)


@pytest.mark.slow
def test_tied_gmm_hmm_with_missing_values():
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(3)
    means = np.array([[[0.0, 1.0, -1.0], [2.0, -1.0, 0.5]], [[3.0, 0.0, 1.0], [-2.0, 2.0, 0.0]]])  # [K, M, D]
    tied = np.array([[[1.0, 0.4, 0.1], [0.4, 0.8, -0.2], [0.1, -0.2, 0.6]], [[0.7, -0.1, 0.2], [-0.1, 1.2, 0.3], [0.2, 0.3, 0.9]]])
    weights = np.array([[0.3, 0.7], [0.6, 0.4]])
    params = jaxem.models.gmm_hmm_params(START, TRANSITIONS, weights, means, tied, "tied")
    sequences = [rng.normal(size=(t, 3)) * 1.5 + 0.5 for t in (7, 6)]
    complete = jaxem.Sequences.from_list([s.copy() for s in sequences])
    for s in sequences:
        s[rng.uniform(size=s.shape) < 0.3] = np.nan
    sequences[1][3] = np.nan
    model = jaxem.models.gmm_hmm(2, 2, covariance_type="tied", reg_covar=0.0, missing="marginalize")
    data = jaxem.Sequences.from_list(sequences)
    new, log_lik = jaxem.em_step(model, params, data)

    x = np.concatenate(sequences)
    component = np.zeros((len(x), 2, 2))  # log w_km + log N(x_O; μ_km,O, Σ_k,OO)
    for t, row in enumerate(x):
        o = ~np.isnan(row)
        for k in range(2):
            for c in range(2):
                density = multivariate_normal(means[k, c][o], tied[k][np.ix_(o, o)]).logpdf(row[o]) if o.any() else 0.0
                component[t, k, c] = np.log(weights[k, c]) + density
    state = logsumexp(component, axis=2)
    tables = [state[:7], state[7:]]
    gamma = np.concatenate(_assert_chain_step(new, log_lik, tables))
    joint = gamma[:, :, None] * np.exp(component - state[:, :, None])  # p(z_t = k, m_t = c | x)
    for k in range(2):
        scatter, new_means = np.zeros((3, 3)), []
        for c in range(2):
            hats, conds = [], []
            for row in x:
                o, m = ~np.isnan(row), np.isnan(row)
                hat, cond = np.where(o, row, 0.0), np.zeros((3, 3))
                gain = tied[k][np.ix_(m, o)] @ np.linalg.inv(tied[k][np.ix_(o, o)]) if o.any() else np.zeros((m.sum(), 0))
                hat[m] = means[k, c][m] + gain @ (row[o] - means[k, c][o])
                cond[np.ix_(m, m)] = tied[k][np.ix_(m, m)] - gain @ tied[k][np.ix_(o, m)]
                hats.append(hat)
                conds.append(cond)
            hats, conds, g = np.asarray(hats), np.asarray(conds), joint[:, k, c]
            mean = g @ hats / g.sum()
            new_means.append(mean)
            scatter += np.einsum("t,ti,tj->ij", g, hats - mean, hats - mean) + np.einsum("t,tij->ij", g, conds)
        np.testing.assert_allclose(np.asarray(new.means)[k], np.asarray(new_means), rtol=1e-8, atol=1e-10)
        covariance = np.asarray(jaxem.models.gmm_hmm_covariances(new, "tied"))[k]
        np.testing.assert_allclose(covariance, scatter / joint[:, k].sum(), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(np.asarray(new.weights)[k], joint[:, k].sum(axis=0) / joint[:, k].sum(), rtol=1e-9)
    assert float(jaxem.log_likelihood(model, new, data)) >= float(log_lik)  # EM does not decrease it
    _assert_same_step(model, jaxem.models.gmm_hmm(2, 2, covariance_type="tied", reg_covar=0.0), params, complete)


AR_COEFFICIENTS = np.array([[[0.5, 0.1], [0.0, 0.4]], [[-0.3, 0.0], [0.2, 0.6]]])
AR_INTERCEPTS = np.array([[0.0, 1.0], [2.0, -1.0]])
AR_COVARIANCES = np.array([[[0.5, 0.1], [0.1, 0.3]], [[0.8, -0.2], [-0.2, 0.6]]])


def _ar_params():
    return jaxem.models.ar_hmm_params(START, TRANSITIONS, AR_COEFFICIENTS, AR_INTERCEPTS, AR_COVARIANCES)


def test_ar_hmm_steps_with_missing_lags_are_conditioned_on():
    rng = np.random.default_rng(4)
    sequences = [rng.normal(size=(t, 2)) * 1.5 + np.array([1.0, 0.5]) for t in (8, 7)]
    complete = jaxem.Sequences.from_list([s.copy() for s in sequences])
    sequences[0][2, 1] = np.nan  # steps 2 (itself) and 3 (its lag) have no emission
    sequences[0][6] = np.nan
    sequences[1][4, 0] = np.nan
    model = jaxem.models.ar_hmm(2, order=1, reg_covar=0.0, missing="marginalize")
    params = _ar_params()
    new, log_lik = jaxem.em_step(model, params, jaxem.Sequences.from_list(sequences))

    tables, kept = [], []
    for s in sequences:
        emits = np.zeros(len(s), bool)
        emits[1:] = ~np.isnan(s[1:]).any(axis=1) & ~np.isnan(s[:-1]).any(axis=1)
        table = np.zeros((len(s), 2))
        for t in np.flatnonzero(emits):
            for k in range(2):
                mean = AR_INTERCEPTS[k] + AR_COEFFICIENTS[k] @ s[t - 1]
                table[t, k] = stats.multivariate_normal(mean, AR_COVARIANCES[k]).logpdf(s[t])
        tables.append(table)
        kept.append(emits)
    gammas = _assert_chain_step(new, log_lik, tables)
    y = np.concatenate([s[e] for s, e in zip(sequences, kept)])
    r = np.concatenate([np.concatenate([np.ones((e.sum(), 1)), s[np.flatnonzero(e) - 1]], axis=1) for s, e in zip(sequences, kept)])
    g = np.concatenate([gm[e] for gm, e in zip(gammas, kept)])
    for k in range(2):  # weighted least squares over the emitting steps
        w = np.linalg.solve(r.T @ (g[:, k, None] * r), r.T @ (g[:, k, None] * y)).T
        e = y - r @ w.T
        np.testing.assert_allclose(np.asarray(new.intercepts)[k], w[:, 0], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(np.asarray(new.coefficients)[k], w[:, 1:], rtol=1e-8, atol=1e-10)
        covariance = np.linalg.inv(np.asarray(new.precisions_cholesky)[k] @ np.asarray(new.precisions_cholesky)[k].T)
        np.testing.assert_allclose(covariance, (g[:, k, None] * e).T @ e / g[:, k].sum(), rtol=1e-7, atol=1e-10)
    _assert_same_step(model, jaxem.models.ar_hmm(2, order=1, reg_covar=0.0), params, complete)

    nothing = np.ones((5, 2))
    nothing[::2, 0] = np.nan  # every step or its lag has a gap
    with pytest.raises(ValueError, match="lag"):
        jaxem.em_step(model, params, nothing)


@pytest.mark.slow
def test_ar_hmm_mcar_fit_agrees_with_complete_data_fit():
    x, _ = jaxem.sample(jaxem.models.ar_hmm(2), _ar_params(), jax.random.key(0), 1500)
    x = np.asarray(x)
    complete = jaxem.fit(jaxem.models.ar_hmm(2), x, key=0, max_iter=100, tol=1e-6, init_params=_ar_params())
    gappy = x.copy()
    gappy[np.random.default_rng(5).uniform(size=x.shape) < 0.1] = np.nan
    fitted = jaxem.fit(jaxem.models.ar_hmm(2, missing="marginalize"), gappy, key=0, max_iter=100, tol=1e-6, init_params=_ar_params())
    for field in ("coefficients", "intercepts", "transition_matrix"):
        np.testing.assert_allclose(np.asarray(getattr(fitted.params, field)), np.asarray(getattr(complete.params, field)), atol=0.1)


def test_validation():
    for make in (
        lambda **kw: jaxem.models.categorical_hmm(2, 4, **kw),
        lambda **kw: jaxem.models.multinomial_hmm(2, **kw),
        lambda **kw: jaxem.models.ar_hmm(2, **kw),
    ):
        with pytest.raises(ValueError, match="missing"):
            make(missing="impute")
    with pytest.raises(ValueError, match="NaN"):
        jaxem.em_step(jaxem.models.categorical_hmm(2, 4), jaxem.models.categorical_hmm_params(START, TRANSITIONS, EMISSIONS), np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="symbols"):
        jaxem.em_step(
            jaxem.models.categorical_hmm(2, 4, missing="marginalize"),
            jaxem.models.categorical_hmm_params(START, TRANSITIONS, EMISSIONS),
            np.array([0.0, np.nan, 7.0]),
        )
    params = jaxem.models.multinomial_hmm_params(START, TRANSITIONS, EMISSIONS)
    model = jaxem.models.multinomial_hmm(2, n_trials=3, missing="marginalize")
    with pytest.raises(ValueError, match="n_trials"):
        jaxem.em_step(model, params, np.array([[1.0, 1.0, 1.0, 0.0], [2.0, 2.0, np.nan, 0.0]]))  # 4 > 3 observed
    with pytest.raises(ValueError, match="n_trials"):
        jaxem.em_step(model, params, np.array([[1.0, 1.0, 0.0, 0.0], [2.0, 1.0, np.nan, 0.0]]))  # complete step sums to 2
    with pytest.raises(ValueError, match="prior"):
        jaxem.models.multinomial_hmm(2, missing="marginalize", prior=jaxem.priors.HMMPrior(emissions=2.0))
    with pytest.raises(ValueError, match="infinite"):
        jaxem.em_step(jaxem.models.ar_hmm(2, missing="marginalize"), _ar_params(), np.array([[0.0, 1.0], [np.inf, 0.0], [1.0, 1.0]]))


@pytest.mark.slow
def test_multinomial_hmm_float32_matches_float64():
    params = jaxem.models.multinomial_hmm_params(START, TRANSITIONS, EMISSIONS)
    x, _ = jaxem.sample(jaxem.models.multinomial_hmm(2, n_trials=5), params, jax.random.key(0), 300)
    x = np.array(x, dtype=float)
    x[np.random.default_rng(6).uniform(size=x.shape) < 0.2] = np.nan
    model = jaxem.models.multinomial_hmm(2, n_trials=5, missing="marginalize")
    params32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
    params64 = params
    for _ in range(5):
        params64, ll64 = jaxem.em_step(model, params64, x)
        params32, ll32 = jaxem.em_step(model, params32, x.astype(np.float32))
    assert params32.emission_probs.dtype == np.float32
    np.testing.assert_allclose(float(ll32), float(ll64), rtol=1e-5)
    for a, b in zip(params32, params64):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
