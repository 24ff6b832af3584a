"""Differentiable fits (jaxem.fit_differentiable): the implicit-function-theorem
gradient at the EM fixed point against central finite differences and against
jax.grad through EM unrolled to convergence (lax.scan of em_step), in float64,
for a Gaussian mixture, a Gaussian HMM and factor analysis; float32 against
float64; traced reg_covar; NaN (never a wrong number) when nothing converged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxem

X64 = jnp.float64


def _central(f, x0, direction, h):
    return (f(x0 + h * direction) - f(x0 - h * direction)) / (2.0 * h)


def _unrolled(model_of, start, data_of, steps):
    """``(hyper, data, weights) -> θ`` by ``steps`` EM updates in ``lax.scan``."""

    def run(hyper, data, weights):
        model = model_of(hyper)
        prepared = model.prepare(data_of(data))

        def body(params, _):
            return jaxem.em_step(model, params, prepared, sample_weight=weights)[0], None

        return jax.lax.scan(body, start, None, length=steps)[0]

    return run


def _check_against_references(
    loss_of_params, model_of, data_of, start, hyper, data, weights, *, steps, fd_h, rtol, weight_entries=(2, 11),
    differentiate_hyper=True,
):
    """The IFT gradient of ``loss(θ*(hyper, data, weights))`` equals central finite
    differences of the converged fit and jax.grad through ``steps`` unrolled EM updates."""

    def fitted(hyper, data, weights):
        model = model_of(hyper)
        return model, jaxem.fit_differentiable(model, data_of(data), start, sample_weight=weights, max_iter=5000)

    @jax.jit
    def loss(hyper, data, weights):
        model, fit = fitted(hyper, data, weights)
        return loss_of_params(model, fit.params), fit.converged

    value, converged = loss(hyper, data, weights)
    assert bool(converged)
    grads = jax.jit(jax.grad(lambda *a: loss(*a)[0], argnums=(0, 1, 2)))(hyper, data, weights)
    unrolled = _unrolled(model_of, start, data_of, steps)
    unrolled_grads = jax.jit(jax.grad(lambda *a: loss_of_params(model_of(a[0]), unrolled(*a)), argnums=(0, 1, 2)))(
        hyper, data, weights
    )
    for got, want in zip(grads, unrolled_grads):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(jnp.max(jnp.abs(want))))

    only = lambda f: lambda v: f(v)[0]  # noqa: E731
    if differentiate_hyper:
        fd_hyper = _central(only(lambda r: loss(r, data, weights)), hyper, 1.0, fd_h * abs(hyper))
        np.testing.assert_allclose(grads[0], fd_hyper, rtol=rtol)
    for index in [(0, 0), (5, 1), (17, 0)]:
        e = jnp.zeros_like(data).at[index].set(1.0)
        fd = _central(only(lambda d: loss(hyper, d, weights)), data, e, fd_h)
        np.testing.assert_allclose(grads[1][index], fd, rtol=rtol, atol=rtol * float(jnp.max(jnp.abs(grads[1]))))
    for index in weight_entries:
        e = jnp.zeros_like(weights).at[index].set(1.0)
        fd = _central(only(lambda w: loss(hyper, data, w)), weights, e, fd_h)
        np.testing.assert_allclose(grads[2][index], fd, rtol=rtol, atol=rtol * float(jnp.max(jnp.abs(grads[2]))))
    return value, grads


def test_gaussian_mixture_reg_covar_data_and_weights():
    x, _ = jaxem.load_dataset("faithful", dtype=X64)
    train, test = x[:120], x[200:]
    start = jaxem.fit(jaxem.models.gaussian_mixture(2), train, key=0).params

    def model_of(reg):
        return jaxem.models.gaussian_mixture(2, reg_covar=reg)

    def held_out(model, params):
        return jaxem.log_likelihood(model, params, test) / test.shape[0]

    weights = jnp.linspace(0.5, 1.5, train.shape[0], dtype=X64)
    _check_against_references(
        held_out, model_of, lambda d: d, start, 0.3, train, weights, steps=300, fd_h=1e-5, rtol=1e-6
    )


def test_gaussian_hmm_reg_covar_data_and_weights():
    x, _ = jaxem.load_dataset("geyser", dtype=X64)
    train = x[:120].reshape(4, 30, 2)  # four sequences of 30 steps
    test = x[200:]
    model0 = jaxem.models.gaussian_hmm(2, covariance_type="diag")
    start = jaxem.fit(model0, jaxem.Sequences(train, jnp.full((4,), 30)), key=0).params

    def model_of(reg):
        return jaxem.models.gaussian_hmm(2, covariance_type="diag", reg_covar=reg)

    def held_out(model, params):
        return jaxem.log_likelihood(model, params, test) / test.shape[0]

    def as_sequences(flat):
        return jaxem.Sequences(flat.reshape(4, 30, 2), jnp.full((4,), 30))

    weights = jnp.asarray([0.5, 1.0, 1.5, 2.0], X64)
    _check_against_references(
        held_out, model_of, as_sequences, start, 0.05, train.reshape(120, 2), weights,
        steps=400, fd_h=1e-5, rtol=1e-5, weight_entries=(1, 3),
    )


def test_factor_analysis_data_and_weights():
    rng = np.random.default_rng(0)
    loadings = np.array([[2.0], [1.5], [-1.0], [1.2]])
    x = rng.normal(size=(160, 1)) @ loadings.T + rng.normal(size=(160, 4)) * np.sqrt([0.5, 0.3, 0.8, 0.4])
    train, test = jnp.asarray(x[:120]), jnp.asarray(x[120:])
    model = jaxem.models.factor_analysis(1)
    start = jaxem.fit(model, train, key=0, max_iter=50).params

    def held_out(model, params):  # invariant to the sign of the loadings
        return jaxem.log_likelihood(model, params, test) / test.shape[0]

    weights = jnp.linspace(0.5, 1.5, 120, dtype=X64)
    _, grads = _check_against_references(
        held_out, lambda _: model, lambda d: d, start, 1.0, train, weights,
        steps=600, fd_h=1e-5, rtol=1e-5, differentiate_hyper=False,
    )
    assert float(jnp.max(jnp.abs(grads[1]))) > 1e-3
