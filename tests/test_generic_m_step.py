"""The gradient M-step: same fixed point as the closed form, never lowers Q,
constraints round-trip."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxem
from jaxem import constraints
from jaxem import models

X = jnp.asarray(jaxem.load_dataset("faithful")[0])
CLOSED = models.gaussian_mixture(2, covariance_type="diag", reg_covar=0.0)
DECLARED = models.GaussianMixtureParams(weights=constraints.simplex(), means=None, precisions_cholesky=constraints.positive())


def _generic(**kwargs):
    return CLOSED._replace(m_step=jaxem.gradient_m_step(CLOSED.log_joint, constraints=DECLARED, **kwargs))


@functools.lru_cache(maxsize=None)
def _closed_form_fit():
    start = jaxem.init(CLOSED, jax.random.key(0), X)
    return start, jaxem.fit(CLOSED, X, key=0, init_params=start, max_iter=500, tol=0.0)


def test_generic_m_step_reaches_the_closed_form_fixed_point():
    generic = _generic(inner_steps=10)
    start, closed = _closed_form_fit()
    fitted = jaxem.fit(generic, X, key=0, init_params=start, max_iter=200, tol=1e-12)
    n = X.shape[0]
    assert abs(float(closed.log_likelihood) - float(fitted.log_likelihood)) / n < 1e-4
    np.testing.assert_allclose(np.asarray(fitted.params.means), np.asarray(closed.params.means), rtol=1e-3)
    history = np.asarray(fitted.history[0])
    history = history[np.isfinite(history)]
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
    # From the closed-form fixed point, the gradient M-step stays there.
    again, _ = jaxem.em_step(generic, closed.params, X)
    assert float(jaxem.log_likelihood(generic, again, X)) >= float(closed.log_likelihood) - 1e-9 * n


@pytest.mark.parametrize("optimizer", [None, optax.adam(0.05), pytest.param(optax.sgd(1e-3), marks=pytest.mark.slow)])
def test_generic_m_step_never_lowers_q(optimizer):
    generic = _generic(optimizer=optimizer, inner_steps=15)
    params = jaxem.init(CLOSED, jax.random.key(1), X)
    for _ in range(8):
        new, _, info = jaxem.em_step_with_info(generic, params, X)
        assert float(info.q_after) >= float(info.q_before)
        np.testing.assert_allclose(float(info.q_after), float(jaxem.q_function(generic, params, new, X)), rtol=1e-12)
        params = new


def test_divergent_optimizer_keeps_params_bit_identical():
    generic = _generic(optimizer=optax.sgd(1e6), inner_steps=3)
    params = jaxem.init(CLOSED, jax.random.key(2), X)
    new, _, info = jaxem.em_step_with_info(generic, params, X)
    assert not bool(info.accepted)
    assert float(info.q_after) == float(info.q_before)
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow  # vmapped restarts of a gradient M-step are also covered by test_user_models
def test_generic_m_step_under_vmapped_restarts_and_float32():
    generic = _generic(inner_steps=8)
    x32 = X.astype(jnp.float32)
    result = jaxem.fit(generic, x32, key=jax.random.key(3), n_restarts=4, max_iter=60)
    assert result.log_likelihood.dtype == jnp.float32
    _, reference = _closed_form_fit()  # the global maximum on these data
    assert abs(float(result.log_likelihood) - float(reference.log_likelihood)) / X.shape[0] < 1e-3


@pytest.mark.parametrize(
    "constraint, value",
    [
        (constraints.positive(), jnp.array([1e-3, 0.5, 40.0])),
        (constraints.positive(0.1), jnp.array([0.2, 3.0])),
        (constraints.unit_interval(), jnp.array([1e-4, 0.3, 0.999])),
        (constraints.simplex(), jnp.array([[0.2, 0.3, 0.5], [0.9, 0.05, 0.05]])),
        (constraints.cholesky(), jnp.array([[[2.0, 0.0], [0.3, 0.5]]])),
        (constraints.cholesky(lower=False), jnp.array([[1.0, -0.4], [0.0, 0.7]])),
        (constraints.identity(), jnp.array([-3.0, 2.0])),
    ],
)
def test_constraints_round_trip_and_land_in_their_set(constraint, value):
    u = constraint.unconstrain(value)
    assert np.all(np.isfinite(np.asarray(u)))
    np.testing.assert_allclose(np.asarray(constraint.constrain(u)), np.asarray(value), rtol=1e-10, atol=1e-12)
    anywhere = jax.random.normal(jax.random.key(0), value.shape, value.dtype) * 5.0
    image = np.asarray(constraint.constrain(anywhere))
    assert np.all(np.isfinite(image))
    if constraint is not None and value.ndim == 1 and np.all(np.asarray(value) > 0):
        assert np.all(image > 0)


def test_n_free_parameters():
    params = models.GaussianMixtureParams(jnp.ones(3) / 3, jnp.zeros((3, 2)), jnp.ones((3, 2, 2)))
    declared = params._replace(weights=constraints.simplex(), means=None, precisions_cholesky=constraints.cholesky())
    assert constraints.n_free_parameters(declared, params) == 2 + 6 + 3 * 3


def test_inner_steps_validated():
    with pytest.raises(ValueError, match="inner_steps"):
        jaxem.gradient_m_step(CLOSED.log_joint, inner_steps=0)
