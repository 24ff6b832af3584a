"""Bernoulli, categorical and Poisson mixtures: SciPy references, hand-derived
M-steps, recovery from sampled data, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

import jaxem
from jaxem import models


def _bernoulli_logpmf(x, probs):
    return np.stack([scipy.stats.bernoulli.logpmf(x, p).sum(axis=1) for p in probs], axis=1)


def _poisson_logpmf(x, rates):
    return np.stack([scipy.stats.poisson.logpmf(x, r).sum(axis=1) for r in rates], axis=1)


def _multinomial_logpmf(x, probs):
    totals = x.sum(axis=1)
    return np.stack([scipy.stats.multinomial.logpmf(x, totals, p) for p in probs], axis=1)


def _small(kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "bernoulli":
        x = rng.integers(0, 2, size=(40, 5)).astype(np.float64)
        params = models.bernoulli_mixture_params([0.3, 0.7], rng.uniform(0.1, 0.9, size=(2, 5)))
        return models.bernoulli_mixture(2), x, params, _bernoulli_logpmf, "probs"
    if kind == "poisson":
        x = rng.poisson(3.0, size=(40, 3)).astype(np.float64)
        params = models.poisson_mixture_params([0.4, 0.6], rng.uniform(1.0, 6.0, size=(2, 3)))
        return models.poisson_mixture(2), x, params, _poisson_logpmf, "rates"
    x = rng.multinomial(rng.integers(1, 8), [0.2, 0.3, 0.5], size=40).astype(np.float64)
    x[::5] = rng.multinomial(3, [0.6, 0.3, 0.1], size=8)
    probs = rng.dirichlet(np.ones(3), size=2)
    params = models.categorical_mixture_params([0.5, 0.5], probs)
    return models.categorical_mixture(2), x, params, _multinomial_logpmf, "probs"


KINDS = ["bernoulli", "poisson", "categorical"]


@pytest.mark.parametrize("kind", KINDS)
def test_one_step_equals_scipy_and_hand_derived_m_step(kind):
    model, x, params, logpmf, field = _small(kind)
    log_joint = logpmf(x, np.asarray(getattr(params, field))) + np.log(np.asarray(params.weights))[None, :]
    np.testing.assert_allclose(np.asarray(model.log_joint(params, model.prepare(x))), log_joint, rtol=1e-12)
    r = np.exp(log_joint - scipy.special.logsumexp(log_joint, axis=1, keepdims=True))
    new, log_lik = jaxem.em_step(model, params, x)
    np.testing.assert_allclose(float(log_lik), scipy.special.logsumexp(log_joint, axis=1).sum(), rtol=1e-12)
    counts = r.sum(axis=0)
    np.testing.assert_allclose(np.asarray(new.weights), counts / len(x), rtol=1e-10)
    weighted = r.T @ x
    if kind == "categorical":
        expected = weighted / weighted.sum(axis=1, keepdims=True)
    else:
        expected = weighted / counts[:, None]
    np.testing.assert_allclose(np.asarray(getattr(new, field)), expected, rtol=1e-10)


def _sampled(kind, n=4000):
    if kind == "bernoulli":
        probs = np.array([[0.9, 0.8, 0.1, 0.1, 0.5, 0.2], [0.1, 0.2, 0.9, 0.8, 0.5, 0.3], [0.5, 0.9, 0.5, 0.1, 0.05, 0.9]])
        true = models.bernoulli_mixture_params([0.2, 0.3, 0.5], probs)
        return models.bernoulli_mixture(3), true, "probs", 0.05
    if kind == "poisson":
        rates = np.array([[1.0, 10.0], [8.0, 2.0], [15.0, 15.0]])
        true = models.poisson_mixture_params([0.3, 0.3, 0.4], rates)
        return models.poisson_mixture(3), true, "rates", 0.5
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7], [0.05, 0.45, 0.45, 0.05]])
    true = models.categorical_mixture_params([0.3, 0.3, 0.4], probs)
    return models.categorical_mixture(3, n_trials=20), true, "probs", 0.03


@pytest.mark.parametrize("kind", KINDS)
def test_recovers_parameters_from_sampled_data(kind):
    model, true, field, atol = _sampled(kind)
    x, z = jaxem.sample(model, true, jax.random.key(0), 4000)
    result = jaxem.fit(model, x, key=jax.random.key(1), n_restarts=4, max_iter=300, tol=1e-7)
    estimated = np.asarray(getattr(result.params, field))
    truth = np.asarray(getattr(true, field))
    order = np.argmin(np.abs(estimated[None, :, :] - truth[:, None, :]).sum(axis=2), axis=1)
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(estimated[order], truth, atol=atol)
    np.testing.assert_allclose(np.asarray(result.params.weights)[order], np.asarray(true.weights), atol=0.04)
    # The fit is at least as likely as the truth (EM finds a maximum).
    assert float(result.log_likelihood) >= float(jaxem.log_likelihood(model, true, x)) - 1e-6
    history = np.asarray(result.history)
    for trace in history:
        trace = trace[np.isfinite(trace)]
        assert np.all(np.diff(trace) >= -1e-8 * np.abs(trace[1:]))


@pytest.mark.parametrize("kind", ["bernoulli", pytest.param("poisson", marks=pytest.mark.slow), pytest.param("categorical", marks=pytest.mark.slow)])
def test_float32_fit_is_finite_and_close_to_float64(kind):
    model, true, field, _ = _sampled(kind)
    x, _ = jaxem.sample(model, true, jax.random.key(2), 500)
    x = np.asarray(x)
    start = jaxem.init(model, jax.random.key(3), x)
    # Keep the start representable in float32 (a probability of 1 - 1e-15 rounds to 1).
    start = start._replace(**{field: jnp.clip(getattr(start, field), 1e-4, None if field == "rates" else 1 - 1e-4)})
    r64 = jaxem.fit(model, x, key=0, init_params=start, max_iter=50, tol=0.0)
    start32 = jax.tree_util.tree_map(lambda leaf: leaf.astype(jnp.float32), start)
    r32 = jaxem.fit(model, np.asarray(x, np.float32), key=0, init_params=start32, max_iter=50, tol=0.0)
    assert r32.log_likelihood.dtype == jnp.float32
    assert abs(float(r32.log_likelihood) - float(r64.log_likelihood)) / len(x) < 1e-4


def test_empty_component_stays_finite_with_pseudo_counts():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    model = models.bernoulli_mixture(2)
    params = models.bernoulli_mixture_params([0.5, 0.5], [[0.5, 0.5], [0.5, 0.5]])
    for _ in range(30):
        params, _ = jaxem.em_step(model, params, x)
    probs = np.asarray(params.probs)
    assert np.all(np.isfinite(probs)) and np.all(probs > 0) and np.all(probs < 1)
    assert np.isfinite(float(jaxem.log_likelihood(model, params, x)))
    rates = jaxem.em_step(models.poisson_mixture(1), models.poisson_mixture_params([1.0], [[2.0, 2.0]]), x)[0].rates
    assert np.all(np.asarray(rates) > 0)


def test_n_parameters_and_sample_shapes():
    _, true, _, _ = _sampled("categorical")
    model = models.categorical_mixture(3, n_trials=5)
    x, z = jaxem.sample(model, true, jax.random.key(0), 7)
    assert x.shape == (7, 4) and z.shape == (7,)
    np.testing.assert_array_equal(np.asarray(x).sum(axis=1), 5.0)
    assert jaxem.n_parameters(model, true) == 3 * 3 + 2
    assert jaxem.n_parameters(models.poisson_mixture(2), models.poisson_mixture_params([0.5, 0.5], np.ones((2, 4)))) == 9


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: jaxem.fit(models.bernoulli_mixture(2), np.array([[0.0, 2.0], [1.0, 0.0]]), key=0), "x must be binary"),
        (lambda: jaxem.fit(models.poisson_mixture(2), np.array([[0.0, -1.0], [1.0, 0.0]]), key=0), "x must hold non-negative"),
        (lambda: jaxem.fit(models.categorical_mixture(2), np.array([[0.0, 1.5], [1.0, 0.0]]), key=0), "x must hold integer"),
        (lambda: jaxem.fit(models.poisson_mixture(2), np.array([[0.0, np.nan], [1.0, 0.0]]), key=0), "x contains NaN"),
        (lambda: jaxem.fit(models.poisson_mixture(2), np.array([1.0, 2.0]), key=0), "x must have 2 dimensions"),
        (lambda: jaxem.fit(models.poisson_mixture(3), np.ones((2, 2)), key=0), "n_components=3"),
        (lambda: jaxem.em_step(models.poisson_mixture(2), models.poisson_mixture_params([0.5, 0.5], np.ones((2, 3))), np.ones((4, 2))), "rates has shape"),
        (lambda: jaxem.em_step(models.poisson_mixture(2), models.bernoulli_mixture_params([0.5, 0.5], np.full((2, 2), 0.5)), np.ones((4, 2))), "PoissonMixtureParams"),
        (lambda: models.bernoulli_mixture_params([0.5, 0.5], [[0.0, 0.5], [0.5, 0.5]]), "probs must lie strictly"),
        (lambda: models.categorical_mixture_params([0.5, 0.5], [[0.2, 0.5], [0.5, 0.5]]), "sum to one"),
        (lambda: models.poisson_mixture_params([0.5, 0.6], [[1.0], [2.0]]), "weights"),
        (lambda: models.poisson_mixture_params([0.5, 0.5], [[1.0], [-2.0]]), "rates must be positive"),
        (lambda: models.poisson_mixture(0), "n_components"),
        (lambda: models.categorical_mixture(2, n_trials=0), "n_trials"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_bernoulli_probs_at_the_float64_clip_stay_finite_in_float32():
    # 1 - 1e-15 is representable in float64 but rounds to 1 in float32: the
    # log-potentials clip in the compute dtype, so the float32 fit stays finite.
    x = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]], np.float32)
    model = models.bernoulli_mixture(2)
    start = models.bernoulli_mixture_params([0.5, 0.5], [[1 - 1e-15, 1e-15], [0.5, 0.5]])
    result = jaxem.fit(model, x, key=0, init_params=start, max_iter=5)
    assert result.log_likelihood.dtype == jnp.float32
    assert np.isfinite(float(result.log_likelihood))
    assert np.all(np.isfinite(np.asarray(result.history[0, : int(result.n_iter[0])])))
