"""Poisson, Bernoulli and categorical mixtures with ``missing="marginalize"``:
one em_step against a row-by-row SciPy float64 reference (with a row that has
nothing observed); no-NaN data give exactly the complete-data step; under 20%
MCAR the fit agrees with the complete-data fit; the categorical rule's EM fixed
point is the maximizer of its likelihood (SciPy optimizer); float32 against
float64; validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp, softmax

import jaxem

WEIGHTS = np.array([0.4, 0.6])
RATES = np.array([[1.0, 4.0, 0.5], [5.0, 1.0, 2.0]])
PROBS = np.array([[0.2, 0.7, 0.4], [0.8, 0.3, 0.6]])
CATEGORIES = np.array([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4]])


def _with_gaps(x, seed, rate=0.3):
    x = np.array(x, dtype=float)
    x[np.random.default_rng(seed).uniform(size=x.shape) < rate] = np.nan
    x[2] = np.nan  # a row with nothing observed
    return x


def _log_table(family, x):
    """``[N, K]`` log w_k + log p(x_O | k), row by row with SciPy."""
    table = np.zeros((len(x), 2))
    for i, row in enumerate(x):
        o = ~np.isnan(row)
        for k in range(2):
            if family == "poisson":
                value = stats.poisson(RATES[k][o]).logpmf(row[o]).sum()
            elif family == "bernoulli":
                value = stats.bernoulli(PROBS[k][o]).logpmf(row[o]).sum()
            else:  # the observed cells given their total
                p = CATEGORIES[k][o] / CATEGORIES[k][o].sum() if o.any() else np.ones(0)
                value = stats.multinomial(int(row[o].sum()), p).logpmf(row[o]) if o.any() else 0.0
            table[i, k] = np.log(WEIGHTS[k]) + value
    return table


def _reference_step(family, x):
    table = _log_table(family, x)
    resp = np.exp(table - logsumexp(table, axis=1, keepdims=True))
    o = ~np.isnan(x)
    filled = np.where(o, x, 0.0)
    if family == "categorical":  # a missing cell's expected count: N_O p_j / P_O
        totals = resp.T @ filled
        for i, row in enumerate(x):
            for k in range(2):
                if o[i].any() and not o[i].all():
                    share = filled[i].sum() * CATEGORIES[k] / CATEGORIES[k][o[i]].sum()
                    totals[k] += resp[i, k] * np.where(o[i], 0.0, share)
        theta = totals / totals.sum(axis=1, keepdims=True)
    else:
        theta = (resp.T @ filled) / (resp.T @ o)
    return logsumexp(table, axis=1).sum(), resp.mean(axis=0), theta


def _setup(family, n=40, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.choice(2, size=n, p=WEIGHTS)
    if family == "poisson":
        x = rng.poisson(RATES[z])
        return jaxem.models.poisson_mixture, jaxem.models.PoissonMixtureParams(WEIGHTS, RATES), x, "rates"
    if family == "bernoulli":
        x = rng.uniform(size=(n, 3)) < PROBS[z]
        return jaxem.models.bernoulli_mixture, jaxem.models.BernoulliMixtureParams(WEIGHTS, PROBS), x, "probs"
    x = np.stack([rng.multinomial(8, CATEGORIES[k]) for k in z])
    return jaxem.models.categorical_mixture, jaxem.models.CategoricalMixtureParams(WEIGHTS, CATEGORIES), x, "probs"


@pytest.mark.parametrize("family", ["poisson", "bernoulli", "categorical"])
def test_em_step_matches_row_by_row_reference_and_complete_data(family):
    make, params, x, field = _setup(family)
    model = make(2, missing="marginalize")
    gappy = _with_gaps(x, 1)
    new, log_lik = jaxem.em_step(model, params, gappy)
    total, weights, theta = _reference_step(family, gappy)
    np.testing.assert_allclose(float(log_lik), total, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(new.weights), weights, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(getattr(new, field)), theta, rtol=1e-8)
    posterior = np.asarray(jaxem.posterior(model, params, gappy))
    np.testing.assert_allclose(posterior[2], WEIGHTS, rtol=1e-12)  # nothing observed: the weights
    assert float(jaxem.log_likelihood(model, new, gappy)) >= float(log_lik)  # EM does not decrease it

    # no NaN: exactly the complete-data model's step
    ours, ll = jaxem.em_step(model, params, x.astype(float))
    reference, ll_ref = jaxem.em_step(make(2), params, x.astype(float))
    np.testing.assert_allclose(float(ll), float(ll_ref), rtol=1e-13)
    for a, b in zip(ours, reference):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-15)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["poisson", "bernoulli", "categorical"])
def test_mcar_fit_agrees_with_complete_data_fit(family):
    make, params, x, field = _setup(family, n=1000, seed=2)
    # both fits start from the true params (one restart), so no label switching
    complete = jaxem.fit(make(2), x.astype(float), key=0, max_iter=100, tol=1e-5, init_params=params)
    gappy = np.array(x, dtype=float)
    gappy[np.random.default_rng(3).uniform(size=x.shape) < 0.2] = np.nan
    fitted = jaxem.fit(make(2, missing="marginalize"), gappy, key=0, max_iter=100, tol=1e-5, init_params=params)
    # sampling error of 1000 rows with 20% of the entries removed: a few hundredths on
    # probabilities, a few tenths on rates up to 5
    tolerance = 0.3 if family == "poisson" else 0.06
    np.testing.assert_allclose(np.asarray(getattr(fitted.params, field)), np.asarray(getattr(complete.params, field)), atol=tolerance)
    np.testing.assert_allclose(np.asarray(getattr(fitted.params, field)), np.asarray(getattr(params, field)), atol=2 * tolerance)
    np.testing.assert_allclose(np.asarray(fitted.params.weights), np.asarray(complete.params.weights), atol=0.05)
    for trace in np.asarray(fitted.history):
        trace = trace[~np.isnan(trace)]
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))


def test_categorical_fixed_point_maximizes_the_observed_cells_likelihood():
    """One component: EM's fixed point is the maximizer of Σ log Mult(x_O; N_O, p_O / P_O),
    found independently by SciPy over softmax logits, so the expected counts of the
    missing cells are the right ones."""
    rng = np.random.default_rng(5)
    x = rng.multinomial(6, [0.4, 0.3, 0.2, 0.1], size=60).astype(float)
    x[rng.uniform(size=x.shape) < 0.3] = np.nan
    model = jaxem.models.categorical_mixture(1, missing="marginalize")
    start = jaxem.models.CategoricalMixtureParams(np.ones(1), np.full((1, 4), 0.25))
    params = jaxem.fit(model, x, key=0, max_iter=500, tol=1e-14, init_params=start).params
    o = ~np.isnan(x)

    def negative(logits):
        p = softmax(np.concatenate([[0.0], logits]))
        return -sum(stats.multinomial(int(r[m].sum()), p[m] / p[m].sum()).logpmf(r[m]) for r, m in zip(x, o) if m.any())

    best = optimize.minimize(negative, np.zeros(3), method="BFGS", options={"gtol": 1e-9})
    np.testing.assert_allclose(np.asarray(params.probs)[0], softmax(np.concatenate([[0.0], best.x])), atol=1e-5)


@pytest.mark.parametrize("family", ["poisson", pytest.param("categorical", marks=pytest.mark.slow)])
def test_float32_matches_float64(family):
    make, params, x, _ = _setup(family, n=300, seed=6)
    gappy = _with_gaps(x, 7, rate=0.2)
    model = make(2, missing="marginalize")
    params64 = params
    params32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
    for _ in range(5):
        params64, ll64 = jaxem.em_step(model, params64, gappy)
        params32, ll32 = jaxem.em_step(model, params32, gappy.astype(np.float32))
    assert params32.weights.dtype == np.float32
    np.testing.assert_allclose(float(ll32), float(ll64), rtol=1e-5)
    for a, b in zip(params32, params64):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_validation():
    x = np.ones((10, 3))
    x[3, 1] = np.nan
    for make in (jaxem.models.poisson_mixture, jaxem.models.bernoulli_mixture, jaxem.models.categorical_mixture):
        with pytest.raises(ValueError, match="NaN"):
            jaxem.fit(make(2), x, key=0, max_iter=2)
        with pytest.raises(ValueError, match="missing"):
            make(2, missing="impute")
        with pytest.raises(ValueError, match="prior"):
            make(2, missing="marginalize", prior=jaxem.priors.MixturePrior(weights=2.0))
        bad = x.copy()
        bad[4, 0] = np.inf
        with pytest.raises(ValueError, match="infinite"):
            jaxem.fit(make(2, missing="marginalize"), bad, key=0, max_iter=2)
    bad = x.copy()
    bad[4, 0] = 0.5  # observed entries are checked as complete data are
    with pytest.raises(ValueError, match="integer"):
        jaxem.fit(jaxem.models.poisson_mixture(2, missing="marginalize"), bad, key=0, max_iter=2)
    with pytest.raises(ValueError, match="binary|0 or 1|0/1"):
        jaxem.fit(jaxem.models.bernoulli_mixture(2, missing="marginalize"), bad, key=0, max_iter=2)
    assert jaxem.models.poisson_mixture(2, missing="marginalize") is jaxem.models.poisson_mixture(2, missing="marginalize")
