"""Multivariate Student-t mixtures (``jaxem.models.student_t_mixture``): densities against
SciPy's ``multivariate_t``; one em_step against a float64 NumPy/SciPy reference EM
(responsibilities, E[u] and E[log u] of the posterior Gamma, weighted means and
scatter, each ν by ``scipy.optimize.brentq``); monotone log-likelihood; recovery of
sampled params; float32 against float64; held-out log-likelihood above a Gaussian
mixture's on heavy-tailed data; the special functions; validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, special, stats

import jaxem
from jaxem._src.families import student_t

WEIGHTS = np.array([0.4, 0.6])
LOCATIONS = np.array([[0.0, 0.0], [6.0, 4.0]])
SCALES = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.8, -0.2], [-0.2, 1.2]]])
DOFS = np.array([3.0, 8.0])


def _truth(covariance_type="full", dofs=DOFS):
    scales = SCALES if covariance_type == "full" else np.stack([np.diag(s) for s in SCALES])
    return jaxem.models.student_t_mixture_params(WEIGHTS, LOCATIONS, scales, dofs, covariance_type)


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.choice(2, size=n, p=WEIGHTS)
    u = rng.gamma(DOFS[z] / 2.0, 2.0 / DOFS[z])
    noise = np.stack([rng.multivariate_normal(np.zeros(2), SCALES[k]) for k in z])
    return LOCATIONS[z] + noise / np.sqrt(u)[:, None]


def _scales(params):
    return np.asarray(jaxem.models.student_t_scales(params))


def _reference_log_potentials(x, weights, locations, scales, dofs):
    return np.stack(
        [np.log(weights[k]) + stats.multivariate_t(locations[k], scales[k], df=dofs[k]).logpdf(x) for k in range(len(weights))],
        axis=1,
    )


def _reference_em_step(x, weights, locations, scales, dofs, learn_dofs, diag):
    """One EM step in float64 NumPy/SciPy (McLachlan & Peel 2000, ch. 7)."""
    n, d = x.shape
    table = _reference_log_potentials(x, weights, locations, scales, dofs)
    log_lik = special.logsumexp(table, axis=1)
    r = np.exp(table - log_lik[:, None])
    new = {"weights": r.mean(axis=0), "locations": [], "scales": [], "dofs": []}
    for k in range(len(weights)):
        centred = x - locations[k]
        delta = np.einsum("ni,ni->n", centred, np.linalg.solve(scales[k], centred.T).T)
        a, b = (dofs[k] + d) / 2.0, (dofs[k] + delta) / 2.0
        eu, elogu = a / b, special.digamma(a) - np.log(b)
        w = r[:, k] * eu
        mu = w @ x / w.sum()
        c = x - mu
        scatter = (w[:, None] * c).T @ c / r[:, k].sum()
        new["locations"].append(mu)
        new["scales"].append(np.diag(np.diag(scatter)) if diag else scatter)
        gap = np.sum(r[:, k] * (elogu - eu)) / r[:, k].sum()
        equation = lambda v: np.log(v / 2.0) - special.digamma(v / 2.0) + 1.0 + gap  # noqa: E731
        new["dofs"].append(optimize.brentq(equation, 0.1, 1000.0, xtol=1e-14) if learn_dofs else dofs[k])
    return {key: np.asarray(v) for key, v in new.items()}, log_lik.sum()


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_log_likelihood_matches_scipy_multivariate_t(covariance_type):
    x = _data(100)
    dofs = np.array([1.5, 600.0])  # a large ν takes the asymptotic branch of lgamma_difference
    params = _truth(covariance_type, dofs)
    model = jaxem.models.student_t_mixture(2, covariance_type=covariance_type)
    reference = special.logsumexp(_reference_log_potentials(x, WEIGHTS, LOCATIONS, _scales(params), dofs), axis=1)
    np.testing.assert_allclose(np.asarray(jaxem.score_samples(model, params, x)), reference, rtol=1e-12)
    # float32: per-row log-densities to float32 rounding, also at ν = 600
    params32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params)
    scores32 = np.asarray(jaxem.score_samples(model, params32, x.astype(np.float32)))
    np.testing.assert_allclose(scores32, reference, rtol=2e-6, atol=2e-5)


@pytest.mark.parametrize("covariance_type, dof", [("full", None), ("diag", None), ("full", 4.0)])
def test_em_step_matches_a_float64_reference(covariance_type, dof):
    x = _data(300, seed=1)
    start = jaxem.models.student_t_mixture_params(
        [0.5, 0.5], [[0.5, -0.5], [5.0, 5.0]], [np.eye(2), 2.0 * np.eye(2)] if covariance_type == "full" else [[1.0, 1.0], [2.0, 2.0]],
        [5.0, 5.0] if dof is None else [dof, dof], covariance_type,
    )
    model = jaxem.models.student_t_mixture(2, covariance_type=covariance_type, dof=dof, reg_covar=0.0)
    new, log_lik = jaxem.em_step(model, start, x)
    ref, ref_log_lik = _reference_em_step(
        x, np.asarray(start.weights), np.asarray(start.locations), _scales(start), np.asarray(start.dofs),
        learn_dofs=dof is None, diag=covariance_type == "diag",
    )
    np.testing.assert_allclose(float(log_lik), ref_log_lik, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(new.weights), ref["weights"], rtol=1e-10)
    np.testing.assert_allclose(np.asarray(new.locations), ref["locations"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_scales(new), ref["scales"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(new.dofs), ref["dofs"], rtol=1e-9)


FIT_OPTIONS = {"n_restarts": 2, "max_iter": 300, "tol": 1e-6, "algorithm": "squarem"}  # EM alone creeps along ν


@pytest.mark.slow
def test_fit_is_monotone_and_recovers_sampled_params():
    model = jaxem.models.student_t_mixture(2)
    truth = _truth()
    x, z = jaxem.sample(model, truth, jax.random.key(0), 3000)
    assert np.mean(np.asarray(z) == 1) == pytest.approx(WEIGHTS[1], abs=0.03)
    result = jaxem.fit(model, x, key=1, **FIT_OPTIONS)
    order = np.argsort(np.asarray(result.params.locations)[:, 0])
    p = jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[order], result.params)
    np.testing.assert_allclose(p.weights, WEIGHTS, atol=0.03)
    np.testing.assert_allclose(p.locations, LOCATIONS, atol=0.1)
    # ν and the scale trade off: this sample's ν̂ = 2.6 (true 3) with a scale 0.79 (true 1.0)
    np.testing.assert_allclose(_scales(result.params)[order], SCALES, atol=0.25)
    np.testing.assert_allclose(p.dofs, DOFS, rtol=0.35)
    assert float(result.log_likelihood) >= float(jaxem.log_likelihood(model, truth, x))
    for trace in np.asarray(result.history):
        trace = trace[np.isfinite(trace)]
        assert len(trace) > 5 and np.all(np.diff(trace) >= -1e-10 * np.abs(trace[1:]))


def test_float32_matches_float64_and_em_steps_are_monotone():
    x64 = _data(300, seed=2)
    model = jaxem.models.student_t_mixture(2, reg_covar=0.0)  # the float64 step compiled above
    params64 = jaxem.init(model, jax.random.key(3), x64)
    params32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params64)
    lls32, lls64 = [], []
    for _ in range(10):
        params64, ll64 = jaxem.em_step(model, params64, x64)
        params32, ll32 = jaxem.em_step(model, params32, x64.astype(np.float32))
        lls32.append(float(ll32))
        lls64.append(float(ll64))
    assert params32.locations.dtype == np.float32 and params32.dofs.dtype == np.float32
    np.testing.assert_allclose(float(ll32), float(ll64), rtol=2e-6)
    assert np.all(np.diff(lls64) >= -1e-12 * np.abs(lls64[1:]))
    assert np.all(np.diff(lls32) >= -1e-6 * np.abs(lls32[1:]))
    np.testing.assert_allclose(np.asarray(params32.locations), np.asarray(params64.locations), atol=1e-3)
    np.testing.assert_allclose(np.asarray(params32.dofs), np.asarray(params64.dofs), rtol=1e-3)
    np.testing.assert_allclose(_scales(params32), _scales(params64), atol=1e-3)


def test_beats_a_gaussian_mixture_on_held_out_heavy_tailed_data():
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.standard_t(2.0, (2000, 2)), np.array([6.0, -3.0]) + rng.standard_t(2.0, (2000, 2))])
    rng.shuffle(x)
    train, test = x[:3000], x[3000:]
    t_model, g_model = jaxem.models.student_t_mixture(2), jaxem.models.gaussian_mixture(2)
    t_fit = jaxem.fit(t_model, train, key=0, **FIT_OPTIONS)
    g_fit = jaxem.fit(g_model, train, key=0, **FIT_OPTIONS)
    t_score = np.mean(np.asarray(jaxem.score_samples(t_model, t_fit.params, test)))
    g_score = np.mean(np.asarray(jaxem.score_samples(g_model, g_fit.params, test)))
    # Measured: -4.59 (Student-t) against -4.93 (Gaussian) nats per held-out row.
    assert t_score > g_score + 0.2
    assert np.all(np.asarray(t_fit.params.dofs) < 4.0)  # the data's ν is 2


def test_special_functions_against_scipy():
    x = np.geomspace(0.05, 2000.0, 200)
    np.testing.assert_allclose(np.asarray(student_t._log_minus_digamma(jnp.asarray(x))), np.log(x) - special.digamma(x), rtol=1e-10)
    for h in (0.5, 1.0, 5.0):
        expected = special.gammaln(x + h) - special.gammaln(x)
        np.testing.assert_allclose(np.asarray(student_t.lgamma_difference(jnp.asarray(x), h)), expected, rtol=1e-10, atol=1e-13)
        # float32 keeps its relative precision where the two lgammas are ~1e4 and cancel
        got32 = np.asarray(student_t.lgamma_difference(jnp.asarray(x, jnp.float32), h))
        np.testing.assert_allclose(got32, expected, rtol=3e-6, atol=5e-6)  # lgamma itself at x ~ 0.05
    # the Gamma log-partition's gradient is (E[log u], E[u])
    a, b = 3.5, 2.0
    grad = jax.grad(lambda eta: student_t.gamma_log_partition(*eta))((jnp.asarray(a - 1.0), jnp.asarray(-b)))
    np.testing.assert_allclose([float(g) for g in grad], [special.digamma(a) - np.log(b), a / b], rtol=1e-12)


def test_dof_solve_against_brentq_and_its_bounds():
    gaps = np.array([-1.0 - 1e-5, -1.001, -1.05, -1.5, -3.0, -40.0])
    got = np.asarray(student_t.solve_dofs(jnp.asarray(gaps)))
    for gap, value in zip(gaps, got):
        f = lambda v: np.log(v / 2.0) - special.digamma(v / 2.0) + 1.0 + gap  # noqa: E731
        if f(1000.0) > 0:
            assert value == pytest.approx(1000.0)
        elif f(0.1) < 0:
            assert value == pytest.approx(0.1)
        else:
            assert value == pytest.approx(optimize.brentq(f, 0.1, 1000.0, xtol=1e-14), rel=1e-10)


def test_validation():
    with pytest.raises(ValueError, match="covariance_type"):
        jaxem.models.student_t_mixture(2, covariance_type="tied")
    for bad in (0.0, -1.0, float("inf"), True, "3"):
        with pytest.raises(ValueError, match="dof"):
            jaxem.models.student_t_mixture(2, dof=bad)
    with pytest.raises(TypeError, match="prior"):
        jaxem.models.student_t_mixture(2, prior=jaxem.priors.MixturePrior())
    with pytest.raises(ValueError, match="init"):
        jaxem.models.student_t_mixture(2, init="nope")
    assert jaxem.models.student_t_mixture(2, dof=3.0) is jaxem.models.student_t_mixture(2, dof=3.0)
    # K - 1 weights, K D locations, K D(D+1)/2 scales, and K dofs when learned
    assert jaxem.models.student_t_mixture(2).n_parameters(_truth()) == 1 + 4 + 6 + 2
    assert jaxem.models.student_t_mixture(2, dof=3.0, covariance_type="diag").n_parameters(_truth("diag")) == 1 + 4 + 4
    model = jaxem.models.student_t_mixture(2)
    with pytest.raises(ValueError, match="n_components"):
        jaxem.fit(model, np.zeros((1, 2)), key=0)
    with pytest.raises(ValueError, match="x contains NaN"):
        jaxem.fit(model, np.full((10, 2), np.nan), key=0)
    with pytest.raises(ValueError, match="precisions_cholesky"):
        jaxem.log_likelihood(model, _truth("diag"), _data(20))
    with pytest.raises(ValueError, match="locations"):
        jaxem.log_likelihood(model, _truth(), _data(20)[:, :1])
    with pytest.raises(ValueError, match="dofs"):
        jaxem.models.student_t_mixture_params(WEIGHTS, LOCATIONS, SCALES, [3.0, -1.0])
    with pytest.raises(ValueError, match="positive definite"):
        jaxem.models.student_t_mixture_params(WEIGHTS, LOCATIONS, -SCALES, DOFS)
    with pytest.raises(ValueError, match="weights"):
        jaxem.models.student_t_mixture_params([0.5, 0.6], LOCATIONS, SCALES, DOFS)
