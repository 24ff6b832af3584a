"""The Q-function and the ELBO: Jensen's bound, its tightness, monotone Q."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxem
from jaxem import models


def _faithful():
    return jnp.asarray(jaxem.load_dataset("faithful")[0])


MODEL = models.gaussian_mixture(3, covariance_type="full")
X = _faithful()
PARAMS = jaxem.init(MODEL, jax.random.key(0), X)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), concentration=st.floats(0.05, 20.0))
def test_elbo_is_below_log_likelihood_for_random_q(seed, concentration):
    rng = np.random.default_rng(seed)
    q = rng.dirichlet(np.full(3, concentration), size=X.shape[0])
    q = q / q.sum(axis=1, keepdims=True)
    bound = float(jaxem.elbo(MODEL, PARAMS, q, X))
    log_lik = float(jaxem.log_likelihood(MODEL, PARAMS, X))
    assert np.isfinite(bound)
    assert bound <= log_lik + 1e-9 * abs(log_lik)


def test_elbo_is_tight_at_the_posterior():
    for model, x in [
        (MODEL, X),
        (models.poisson_mixture(2), np.random.default_rng(0).poisson(4.0, size=(50, 3))),
        (models.bernoulli_mixture(2), np.random.default_rng(1).integers(0, 2, size=(50, 4))),
    ]:
        params = jaxem.init(model, jax.random.key(1), x)
        q = jaxem.posterior(model, params, x)
        log_lik = float(jaxem.log_likelihood(model, params, x))
        assert abs(float(jaxem.elbo(model, params, q, x)) - log_lik) < 1e-6


def test_elbo_equals_q_plus_entropy_and_handles_hard_q():
    q = jaxem.posterior(MODEL, PARAMS, X)
    entropy = -float(jnp.sum(q * jnp.log(q)))
    q_value = float(jaxem.q_function(MODEL, PARAMS, PARAMS, X))
    np.testing.assert_allclose(float(jaxem.elbo(MODEL, PARAMS, q, X)), q_value + entropy, rtol=1e-12)
    # A one-hot q (zero entropy, 0 log 0 = 0) gives the complete-data log-likelihood
    # of those labels: Σ_n log p(x_n, z_n).
    labels = jaxem.predict(MODEL, PARAMS, X)
    hard = jax.nn.one_hot(labels, 3, dtype=X.dtype)
    log_joint = MODEL.log_joint(PARAMS, MODEL.prepare(X))
    expected = float(jnp.sum(jnp.take_along_axis(log_joint, labels[:, None], axis=1)))
    np.testing.assert_allclose(float(jaxem.elbo(MODEL, PARAMS, hard, X)), expected, rtol=1e-12)
    # Lists and float32 q are accepted (q is cast to the model's dtype).
    as_list = np.asarray(hard).tolist()
    np.testing.assert_allclose(float(jaxem.elbo(MODEL, PARAMS, as_list, X)), expected, rtol=1e-12)
    np.testing.assert_allclose(float(jaxem.elbo(MODEL, PARAMS, hard.astype(jnp.float32), X)), expected, rtol=1e-12)


MODELS = {t: models.gaussian_mixture(2, covariance_type=t) for t in ["full", "spherical"]}


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), covariance_type=st.sampled_from(["full", "spherical"]))
def test_each_m_step_raises_q(seed, covariance_type):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) * 0.5 + 3.0])
    model = MODELS[covariance_type]  # built once: a new Model would recompile
    params = jaxem.init(model, jax.random.key(seed), x)
    for _ in range(3):
        new, _ = jaxem.em_step(model, params, x)
        q_old = float(jaxem.q_function(model, params, params, x))
        q_new = float(jaxem.q_function(model, params, new, x))
        assert q_new >= q_old - 1e-9 * abs(q_old)
        # The closed form is the maximizer: perturbing it lowers Q.
        bumped = new._replace(means=new.means + 0.01)
        assert float(jaxem.q_function(model, params, bumped, x)) <= q_new
        params = new


def test_em_step_with_info_matches_em_step():
    new, log_lik, info = jaxem.em_step_with_info(MODEL, PARAMS, X)
    plain, plain_ll = jaxem.em_step(MODEL, PARAMS, X)
    np.testing.assert_array_equal(np.asarray(new.means), np.asarray(plain.means))
    assert float(log_lik) == float(plain_ll)
    np.testing.assert_allclose(float(info.q_before), float(jaxem.q_function(MODEL, PARAMS, PARAMS, X)), rtol=1e-12)
    np.testing.assert_allclose(float(info.q_after), float(jaxem.q_function(MODEL, PARAMS, new, X)), rtol=1e-12)
    assert bool(info.accepted) and float(info.q_after) > float(info.q_before)


@pytest.mark.parametrize(
    "q, match",
    [
        (np.full((272, 2), 0.5), "shape"),
        (np.full((272, 3), 0.5), "sum to one"),
        (np.tile([1.5, -0.5, 0.0], (272, 1)), "non-negative"),
    ],
)
def test_bad_q_raises(q, match):
    with pytest.raises(ValueError, match=match):
        jaxem.elbo(MODEL, PARAMS, q, X)
