"""Mixtures of experts (``jaxem.models.mixture_of_experts``): one em_step against a
float64 NumPy/SciPy reference (responsibilities from the densities, each expert by
weighted least squares with ``np.linalg.lstsq``, the gating by SciPy's BFGS on the
concave gating Q); monotone log-likelihood; recovery of a two-expert piecewise-linear
function; float32 against float64; validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, special, stats

import jaxem


def _soft_data(n=300, seed=0):
    """Two covariates, two targets, overlapping experts (a soft gate)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)) + np.array([3.0, -1.0])
    logits = np.stack([0.8 * (x[:, 0] - 3.0), np.zeros(n)], axis=1)
    z = (rng.random(n) < special.softmax(logits, axis=1)[:, 1]).astype(int)
    coefs = np.array([[[1.0, -0.5], [0.3, 0.2]], [[-1.0, 0.7], [0.0, 1.5]]])
    y = np.einsum("nd,npd->np", x, coefs[z]) + np.array([[0.5, -1.0], [2.0, 0.0]])[z] + 0.3 * rng.normal(size=(n, 2))
    return x, y


def _reference_em_step(x, y, params):
    w, b, coefs, intercepts, variances = (np.asarray(a) for a in params)
    k = len(b)
    log_gate = special.log_softmax(x @ w.T + b, axis=1)
    table = log_gate + np.stack(
        [stats.norm(x @ coefs[j].T + intercepts[j], np.sqrt(variances[j])).logpdf(y).sum(axis=1) for j in range(k)], axis=1
    )
    log_lik = special.logsumexp(table, axis=1)
    r = np.exp(table - log_lik[:, None])
    design = np.concatenate([np.ones((len(x), 1)), x], axis=1)
    new_coefs, new_intercepts, new_variances = [], [], []
    for j in range(k):
        root = np.sqrt(r[:, j])[:, None]
        beta = np.linalg.lstsq(root * design, root * y, rcond=None)[0]  # [1 + D, P]
        residual = y - design @ beta
        new_intercepts.append(beta[0])
        new_coefs.append(beta[1:].T)
        new_variances.append(r[:, j] @ (residual**2) / r[:, j].sum())
    d = x.shape[1]

    def negative_q(flat):
        gw, gb = flat[: k * d].reshape(k, d), flat[k * d :]
        return -np.sum(r * special.log_softmax(x @ gw.T + gb, axis=1))

    best = optimize.minimize(negative_q, np.concatenate([w.ravel(), b]), method="BFGS", options={"gtol": 1e-10}).x
    return (best[: k * d].reshape(k, d), best[k * d :], np.array(new_coefs), np.array(new_intercepts), np.array(new_variances)), log_lik.sum()


def _start(p=2, d=2):
    return jaxem.models.mixture_of_experts_params(
        np.array([[0.5, 0.0], [-0.5, 0.1]])[:, :d], [0.2, -0.2], np.full((2, p, d), 0.1) * np.array([1.0, -1.0])[:, None, None],
        np.zeros((2, p)), np.ones((2, p)),
    )


def test_em_step_matches_a_float64_reference():
    x, y = _soft_data()
    model = jaxem.models.mixture_of_experts(2, reg_variance=0.0, inner_steps=60)
    start = _start()
    new, log_lik = jaxem.em_step(model, start, (x, y))
    (gw, gb, coefs, intercepts, variances), ref_log_lik = _reference_em_step(x, y, start)
    np.testing.assert_allclose(float(log_lik), ref_log_lik, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(new.coefs), coefs, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np.asarray(new.intercepts), intercepts, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np.asarray(new.variances), variances, rtol=1e-9)
    # the gate is identified up to a common shift of every row: compare differences
    np.testing.assert_allclose(np.asarray(new.gate_weights[1] - new.gate_weights[0]), gw[1] - gw[0], atol=1e-6)
    np.testing.assert_allclose(float(new.gate_biases[1] - new.gate_biases[0]), gb[1] - gb[0], atol=1e-6)


@pytest.mark.slow
def test_recovers_a_two_expert_piecewise_linear_function_monotonically():
    rng = np.random.default_rng(1)
    x = rng.uniform(-2.0, 2.0, (600, 1))
    kink = 0.5
    y = np.where(x[:, 0] < kink, 1.0 + 2.0 * x[:, 0], 2.0 - 1.0 * (x[:, 0] - kink)) + 0.2 * rng.normal(size=600)
    model = jaxem.models.mixture_of_experts(2)
    result = jaxem.fit(model, (x, y), key=0, n_restarts=3, max_iter=200)
    p = result.params
    order = np.argsort(-np.asarray(p.coefs)[:, 0, 0])  # the expert of slope 2 first
    np.testing.assert_allclose(np.asarray(p.coefs)[order, 0, 0], [2.0, -1.0], atol=0.08)
    np.testing.assert_allclose(np.asarray(p.intercepts)[order, 0], [1.0, 2.5], atol=0.12)
    np.testing.assert_allclose(np.asarray(p.variances)[order, 0], [0.04, 0.04], rtol=0.25)
    # the gate switches at the kink: W_1 x + b_1 = W_0 x + b_0 there
    w, b = np.asarray(p.gate_weights)[:, 0], np.asarray(p.gate_biases)
    assert -(b[1] - b[0]) / (w[1] - w[0]) == pytest.approx(kink, abs=0.1)
    for trace in np.asarray(result.history):
        trace = trace[np.isfinite(trace)]
        assert len(trace) > 2 and np.all(np.diff(trace) >= -1e-10 * np.abs(trace[1:]))


def test_float32_matches_float64():
    x, y = _soft_data(seed=2)
    model = jaxem.models.mixture_of_experts(2, reg_variance=0.0, inner_steps=60)  # the float64 step compiled above
    params64 = _start()
    params32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params64)
    lls64, lls32 = [], []
    for _ in range(6):
        params64, ll64 = jaxem.em_step(model, params64, (x, y))
        params32, ll32 = jaxem.em_step(model, params32, (x.astype(np.float32), y.astype(np.float32)))
        lls64.append(float(ll64))
        lls32.append(float(ll32))
    assert params32.coefs.dtype == np.float32
    assert np.all(np.diff(lls64) >= -1e-12 * np.abs(lls64[1:]))
    # the gate's L-BFGS steps round differently in float32: measured 1.04e-5 at step 5
    np.testing.assert_allclose(lls32, lls64, rtol=3e-5)
    np.testing.assert_allclose(np.asarray(params32.coefs), np.asarray(params64.coefs), atol=2e-3)
    np.testing.assert_allclose(np.asarray(params32.variances), np.asarray(params64.variances), rtol=2e-3)


def test_one_target_as_a_vector_and_sampling():
    model = jaxem.models.mixture_of_experts(2)
    truth = jaxem.models.mixture_of_experts_params([[-3.0], [3.0]], [0.0, 0.0], [[1.0], [-1.0]], [0.0, 0.0], [0.01, 0.01])
    (x, y), z = jaxem.sample(model, truth, jax.random.key(0), 200)
    assert x.shape == (200, 1) and y.shape == (200, 1) and z.shape == (200,)
    # the gate sends negative x to expert 0 (W_0 = -3)
    assert np.mean(np.asarray(z)[np.asarray(x)[:, 0] < -1.0] == 0) > 0.95
    a = jaxem.log_likelihood(model, truth, (x, y))
    b = jaxem.log_likelihood(model, truth, (x, y[:, 0]))
    assert float(a) == float(b)
    assert model.n_parameters(truth) == 2 + 2 * 3


def test_validation():
    x, y = _soft_data(40)
    model = jaxem.models.mixture_of_experts(2)
    with pytest.raises(TypeError, match="pair"):
        jaxem.fit(model, x, key=0)
    with pytest.raises(ValueError, match="one row per row of x"):
        jaxem.fit(model, (x, y[:10]), key=0)
    with pytest.raises(ValueError, match="y contains NaN"):
        jaxem.fit(model, (x, np.full_like(y, np.nan)), key=0)
    with pytest.raises(ValueError, match="n_components"):
        jaxem.models.mixture_of_experts(0)
    with pytest.raises(ValueError, match="inner_steps"):
        jaxem.models.mixture_of_experts(2, inner_steps=0)
    with pytest.raises(ValueError, match="init"):
        jaxem.models.mixture_of_experts(2, init="nope")
    with pytest.raises(ValueError, match="coefs"):
        jaxem.log_likelihood(model, _start(p=1), (x, y))
    with pytest.raises(ValueError, match="variances"):
        jaxem.models.mixture_of_experts_params([[1.0], [2.0]], [0.0, 0.0], [[1.0], [-1.0]], [0.0, 0.0], [1.0, -1.0])
    with pytest.raises(ValueError, match="gate_biases"):
        jaxem.models.mixture_of_experts_params([[1.0], [2.0]], [0.0], [[1.0], [-1.0]], [0.0, 0.0], [1.0, 1.0])
    assert jaxem.models.mixture_of_experts(2) is model
