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
    def value_and_grads(hyper, data, weights):  # one program: the loss (for finite differences) and its IFT gradient
        def loss(hyper, data, weights):
            model, fit = fitted(hyper, data, weights)
            return loss_of_params(model, fit.params), fit.converged

        (value, converged), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(hyper, data, weights)
        return value, converged, grads

    value, converged, grads = value_and_grads(hyper, data, weights)
    assert bool(converged)

    def loss(hyper, data, weights):
        return value_and_grads(hyper, data, weights)[:2]

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
    start = jaxem.models.gaussian_mixture_params(
        [0.35, 0.65], [[2.0, 54.0], [4.3, 80.0]], [[0.07, 34.0], [0.17, 34.0]], covariance_type="diag"
    )

    def model_of(reg):
        return jaxem.models.gaussian_mixture(2, covariance_type="diag", reg_covar=reg)

    def held_out(model, params):
        return jaxem.log_likelihood(model, params, test) / test.shape[0]

    weights = jnp.linspace(0.5, 1.5, train.shape[0], dtype=X64)
    _check_against_references(
        held_out, model_of, lambda d: d, start, 0.3, train, weights, steps=300, fd_h=1e-5, rtol=1e-6
    )


@pytest.mark.slow
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
    start = jaxem.models.FactorAnalysisParams(train.mean(0), jnp.asarray([[1.5], [1.0], [-0.5], [1.0]]), jnp.ones(4))

    def held_out(model, params):  # invariant to the sign of the loadings
        return jaxem.log_likelihood(model, params, test) / test.shape[0]

    weights = jnp.linspace(0.5, 1.5, 120, dtype=X64)
    _, grads = _check_against_references(
        held_out, lambda _: model, lambda d: d, start, 1.0, train, weights,
        steps=600, fd_h=1e-5, rtol=1e-5, differentiate_hyper=False,
    )
    assert float(jnp.max(jnp.abs(grads[1]))) > 1e-3


def _tiny_mixture(dtype):
    """``(train, test, start)``: eruption durations (one feature), and starting params."""
    x, _ = jaxem.load_dataset("faithful", dtype=dtype)
    start = jaxem.models.gaussian_mixture_params([0.4, 0.6], [[2.0], [4.3]], [0.1, 0.2], covariance_type="spherical")
    start = jax.tree_util.tree_map(lambda leaf: leaf.astype(dtype), start)
    return x[:100, :1], x[100:, :1], start


def _held_out_of_reg_covar(train, test, start, **options):
    def loss(reg):
        model = jaxem.models.gaussian_mixture(2, covariance_type="spherical", reg_covar=reg)
        fit = jaxem.fit_differentiable(model, train, start, **options)
        return jaxem.log_likelihood(model, fit.params, test) / test.shape[0]

    return jax.jit(jax.grad(loss))


def test_float32_gradient_equals_float64_and_gmres_squarem_agree():
    grads = {}
    for dtype in (jnp.float32, jnp.float64):
        train, test, start = _tiny_mixture(dtype)
        grads[dtype] = _held_out_of_reg_covar(train, test, start)(jnp.asarray(0.05, dtype))
    assert grads[jnp.float32].dtype == jnp.float32
    np.testing.assert_allclose(grads[jnp.float32], grads[jnp.float64], rtol=2e-3)
    assert abs(float(grads[jnp.float64])) > 1e-3
    train, test, start = _tiny_mixture(X64)
    by_gmres = _held_out_of_reg_covar(train, test, start, backward="gmres", algorithm="squarem")(0.05)
    np.testing.assert_allclose(by_gmres, grads[jnp.float64], rtol=1e-7)


def test_not_converged_gives_nan_gradient_not_a_wrong_number():
    train, test, start = _tiny_mixture(X64)
    grad = _held_out_of_reg_covar(train, test, start, max_iter=2, tol=1e-14)(0.05)
    assert bool(jnp.isnan(grad))
    grad = _held_out_of_reg_covar(train, test, start, backward_max_iter=1, tol=1e-12)(0.05)
    assert bool(jnp.isnan(grad))


def test_reg_covar_can_be_traced_through_em_step():
    # Before: ValueError: reg_covar must be a non-negative number, got JVPTracer
    train, _, start = _tiny_mixture(X64)

    def one_step(reg):
        model = jaxem.models.gaussian_mixture(2, covariance_type="spherical", reg_covar=reg)
        return jaxem.em_step(model, start, train)[0].precisions_cholesky.sum()

    h = 1e-6
    np.testing.assert_allclose(jax.grad(one_step)(0.05), (one_step(0.05 + h) - one_step(0.05 - h)) / (2 * h), rtol=1e-6)
    with pytest.raises(ValueError, match="reg_covar"):
        jaxem.models.gaussian_mixture(2, reg_covar=-1.0)


def test_boundary_checks():
    train, _, start = _tiny_mixture(X64)
    model = jaxem.models.gaussian_mixture(2, covariance_type="spherical")
    with pytest.raises(ValueError, match="backward"):
        jaxem.fit_differentiable(model, train, start, backward="cg")
    with pytest.raises(ValueError, match="algorithm"):
        jaxem.fit_differentiable(model, train, start, algorithm="newton")
    with pytest.raises(TypeError, match="init_params"):
        jaxem.fit_differentiable(model, train, None)
    with pytest.raises(ValueError, match="max_iter"):
        jaxem.fit_differentiable(model, train, start, max_iter=0)
    with pytest.raises(ValueError, match="tol"):
        jaxem.fit_differentiable(model, train, start, tol=-1.0)


def test_dirichlet_prior_strength_against_finite_differences():
    train, test, start = _tiny_mixture(X64)

    @jax.jit
    def value_and_grad(alpha):
        def loss(alpha):
            prior = jaxem.priors.MixturePrior(weights=alpha)
            model = jaxem.models.gaussian_mixture(2, covariance_type="spherical", prior=prior)
            return jaxem.log_likelihood(model, jaxem.fit_differentiable(model, train, start).params, test)

        return jax.value_and_grad(loss)(alpha)

    h = 1e-4
    fd = (value_and_grad(5.0 + h)[0] - value_and_grad(5.0 - h)[0]) / (2 * h)
    np.testing.assert_allclose(value_and_grad(5.0)[1], fd, rtol=1e-5)  # finite differences of a 1e-10 fit
