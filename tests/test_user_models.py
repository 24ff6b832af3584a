"""User-written models: a Student-t mixture written here, a full user log_joint,
and freezing parameters (closed-form and gradient M-steps)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import jaxem
from jaxem import constraints, models

# ---- A user's Student-t mixture, written in plain JAX ------------------------------


def t_log_prob(c, x):
    """log p(x | component) for ONE component and ONE sample x [D]."""
    return jnp.sum(jax.scipy.stats.t.logpdf(x, c["df"], c["loc"], c["scale"]))


def t_init(key, x):
    row = x[jax.random.randint(key, (), 0, x.shape[0])]
    return {"loc": row, "scale": jnp.std(x, axis=0) / 2.0, "df": jnp.asarray(5.0, x.dtype)}


T_CONSTRAINTS = {"loc": None, "scale": constraints.positive(), "df": constraints.positive(0.5)}


def t_sample(key, c):
    return c["loc"] + c["scale"] * jax.random.t(key, c["df"], c["loc"].shape, c["loc"].dtype)


def _t_data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.35
    x = np.where(
        labels[:, None],
        scipy.stats.t.rvs(4.0, loc=[-4.0, 1.0], scale=[1.0, 0.5], size=(n, 2), random_state=rng),
        scipy.stats.t.rvs(4.0, loc=[3.0, -2.0], scale=[0.7, 1.2], size=(n, 2), random_state=rng),
    )
    return x


@pytest.mark.slow
def test_user_student_t_mixture_recovers_parameters_with_vmapped_restarts():
    x = _t_data()
    model = models.mixture(
        t_log_prob, t_init, n_components=2, constraints=T_CONSTRAINTS, inner_steps=10, sample_component=t_sample
    )
    result = jaxem.fit(model, x, key=jax.random.key(0), n_restarts=8, max_iter=100, tol=1e-6)
    c = result.params.components
    order = np.argsort(np.asarray(c["loc"])[:, 0])  # the component at x0 = -4 first
    loc = np.asarray(c["loc"])[order]
    scale = np.asarray(c["scale"])[order]
    np.testing.assert_allclose(loc, [[-4.0, 1.0], [3.0, -2.0]], atol=0.1)
    np.testing.assert_allclose(scale, [[1.0, 0.5], [0.7, 1.2]], atol=0.1)
    np.testing.assert_allclose(np.asarray(result.params.weights)[order], [0.35, 0.65], atol=0.04)
    np.testing.assert_allclose(np.asarray(c["df"])[order], [4.0, 4.0], atol=1.5)
    assert jax.tree_util.tree_leaves(result.all_params)[0].shape[0] == 8
    for trace in np.asarray(result.history):
        trace = trace[np.isfinite(trace)]
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    # The model's log-potentials are the user's density: check one against SciPy.
    log_joint = model.log_joint(result.params, x)
    k = 1
    expected = np.log(float(result.params.weights[k])) + scipy.stats.t.logpdf(
        x, float(c["df"][k]), np.asarray(c["loc"][k]), np.asarray(c["scale"][k])
    ).sum(axis=1)
    np.testing.assert_allclose(np.asarray(log_joint[:, k]), expected, rtol=1e-10)
    assert jaxem.n_parameters(model, result.params) == 1 + 2 * (2 + 2 + 1)
    # Sampling, labels and the ELBO work on the user's model like on any other.
    x_new, z_new = jaxem.sample(model, result.params, jax.random.key(1), 400)
    assert x_new.shape == (400, 2) and z_new.shape == (400,)
    assert np.mean(np.asarray(jaxem.predict(model, result.params, x_new)) == np.asarray(z_new)) > 0.95
    q = jaxem.posterior(model, result.params, x)
    assert abs(float(jaxem.elbo(model, result.params, q, x)) - float(result.log_likelihood)) < 1e-6


def test_latent_model_with_shared_scale_matches_tied_gaussian_mixture():
    x = np.asarray(jaxem.load_dataset("faithful")[0])[:, :1]

    def log_joint(p, x):
        return jnp.log(p["w"])[None, :] + jax.scipy.stats.norm.logpdf(x, p["mu"][None, :], p["s"])

    def init(key, x):
        mu = jax.random.choice(key, x[:, 0], (2,), replace=False)
        return {"w": jnp.full((2,), 0.5, x.dtype), "mu": mu, "s": jnp.std(x)}

    declared = {"w": constraints.simplex(), "mu": None, "s": constraints.positive()}
    model = models.latent_model(log_joint, init, constraints=declared, inner_steps=10)
    result = jaxem.fit(model, x, key=jax.random.key(0), n_restarts=2, max_iter=200, tol=1e-10)
    # Reference: the closed-form EM of a shared-variance two-Gaussian mixture, in NumPy.
    w, mu, var = np.array([0.5, 0.5]), np.array([2.0, 4.5]), 1.0
    for _ in range(500):
        log_p = np.log(w) + scipy.stats.norm.logpdf(x, mu[None, :], np.sqrt(var))
        r = np.exp(log_p - np.logaddexp(log_p[:, :1], log_p[:, 1:]))
        w, mu = r.mean(axis=0), (r * x).sum(axis=0) / r.sum(axis=0)
        var = float(np.sum(r * (x - mu[None, :]) ** 2) / len(x))
    reference = np.logaddexp(*(np.log(w) + scipy.stats.norm.logpdf(x, mu[None, :], np.sqrt(var))).T).sum()
    assert abs(float(result.log_likelihood) - reference) / len(x) < 1e-4
    np.testing.assert_allclose(np.sort(np.asarray(result.params["mu"])), np.sort(mu), rtol=1e-3)
    assert jaxem.n_parameters(model, result.params) == 4


# ---- Freezing ------------------------------------------------------------------------


def _assert_identical(a, b):
    for left, right in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(left), np.asarray(right))


def test_freeze_weights_of_a_closed_form_mixture_is_exact():
    x = np.random.default_rng(0).poisson([[2.0, 9.0]], size=(200, 2)).astype(np.float64)
    x[:80] = np.random.default_rng(1).poisson([[10.0, 1.0]], size=(80, 2))
    model = models.poisson_mixture(2)
    start = models.poisson_mixture_params([0.3, 0.7], [[5.0, 5.0], [3.0, 6.0]])
    frozen = jaxem.freeze(model, "weights")
    result = jaxem.fit(frozen, x, key=0, init_params=start, max_iter=50)
    _assert_identical(result.params.weights, start.weights)
    assert not np.allclose(np.asarray(result.params.rates), np.asarray(start.rates))
    # With the weights fixed, the rates' update is the usual one (they do not couple).
    one, _ = jaxem.em_step(frozen, start, x)
    plain, _ = jaxem.em_step(model, start, x)
    np.testing.assert_array_equal(np.asarray(one.rates), np.asarray(plain.rates))


def test_freeze_single_entries_with_an_array_mask():
    x = np.random.default_rng(0).poisson([[2.0, 9.0]], size=(100, 2)).astype(np.float64)
    model = models.poisson_mixture(2)
    start = models.poisson_mixture_params([0.5, 0.5], [[5.0, 5.0], [3.0, 6.0]])
    mask = models.PoissonMixtureParams(weights=False, rates=np.array([[True, True], [False, False]]))
    frozen = jaxem.freeze(model, mask)
    params = start
    for _ in range(10):
        params, _ = jaxem.em_step(frozen, params, x)
    _assert_identical(params.rates[0], start.rates[0])
    assert not np.allclose(np.asarray(params.rates[1]), np.asarray(start.rates[1]))


def test_freeze_coupled_closed_form_leaves_stays_monotone():
    x = np.asarray(jaxem.load_dataset("faithful")[0])
    model = models.gaussian_mixture(2, covariance_type="full")
    start = jaxem.init(model, jax.random.key(0), x)
    start = start._replace(means=start.means + 0.5)  # frozen at slightly wrong means
    result = jaxem.fit(jaxem.freeze(model, ["means"]), x, key=0, init_params=start, max_iter=30, tol=0.0)
    _assert_identical(result.params.means, start.means)
    trace = np.asarray(result.history[0])
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))


def test_freeze_in_the_gradient_m_step_gives_zero_updates():
    x = _t_data(n=600, seed=3)
    model = models.mixture(t_log_prob, t_init, n_components=2, constraints=T_CONSTRAINTS, inner_steps=8)
    start = jaxem.init(model, jax.random.key(1), x)
    mask = models.MixtureParams(weights=True, components={"loc": False, "scale": False, "df": True})
    frozen = jaxem.freeze(model, mask)
    result = jaxem.fit(frozen, x, key=0, init_params=start, max_iter=15)
    _assert_identical(result.params.components["df"], start.components["df"])
    _assert_identical(result.params.weights, start.weights)
    assert not np.allclose(np.asarray(result.params.components["loc"]), np.asarray(start.components["loc"]))
    for trace in np.asarray(result.history):
        trace = trace[np.isfinite(trace)]
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))


def test_freeze_validates():
    with pytest.raises(ValueError, match="not fields"):
        jaxem.em_step(jaxem.freeze(models.poisson_mixture(1), "banana"), models.poisson_mixture_params([1.0], [[1.0]]), np.ones((3, 1)))
    with pytest.raises(TypeError, match="model"):
        jaxem.freeze("model", "weights")
    with pytest.raises(ValueError, match="inner_steps"):
        models.mixture(t_log_prob, t_init, n_components=2, inner_steps=0)
    with pytest.raises(ValueError, match="x contains NaN"):
        jaxem.fit(models.mixture(t_log_prob, t_init, n_components=2), np.array([[1.0], [np.nan]]), key=0)


# ---- Data pytrees and the Cholesky constraint -----------------------------------------


def _regression_component(c, sample):
    x, y = sample  # one row of x [P] and one y []
    return jax.scipy.stats.norm.logpdf(y, c["intercept"] + jnp.dot(x, c["coef"]), c["sd"])


def _regression_init(key, data):
    x, y = data
    return {"coef": jax.random.normal(key, x.shape[1:], x.dtype), "intercept": jnp.mean(y), "sd": jnp.std(y)}


REGRESSION_CONSTRAINTS = {"coef": None, "intercept": None, "sd": constraints.positive()}


def test_mixture_over_a_data_pytree_matches_the_regression_mixture():
    true = models.regression_mixture_params([0.4, 0.6], [[2.0, -1.0], [-1.5, 0.5]], [1.0, -2.0], [0.25, 0.5])
    closed = models.regression_mixture(2, reg_variance=0.0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 2)), rng.normal(size=50) * 3.0
    user = models.mixture(_regression_component, _regression_init, n_components=2, constraints=REGRESSION_CONSTRAINTS)
    as_user = models.MixtureParams(
        true.weights, {"coef": true.coefs, "intercept": true.intercepts, "sd": jnp.sqrt(true.variances)}
    )
    np.testing.assert_allclose(
        np.asarray(user.log_joint(as_user, (x, y))), np.asarray(closed.log_joint(true, closed.prepare((x, y)))), rtol=1e-10
    )


@pytest.mark.slow
def test_mixture_over_a_data_pytree_reaches_the_closed_form_fixed_point():
    true = models.regression_mixture_params([0.4, 0.6], [[2.0, -1.0], [-1.5, 0.5]], [1.0, -2.0], [0.25, 0.5])
    closed = models.regression_mixture(2, reg_variance=0.0)
    (x, y), _ = jaxem.sample(closed, true, jax.random.key(0), 500)
    reference = jaxem.fit(closed, (x, y), key=0, init_params=true, max_iter=500, tol=1e-12)
    user = models.mixture(_regression_component, _regression_init, n_components=2, constraints=REGRESSION_CONSTRAINTS)
    start = models.MixtureParams(
        true.weights, {"coef": true.coefs, "intercept": true.intercepts, "sd": jnp.sqrt(true.variances)}
    )
    fitted = jaxem.fit(user, (x, y), key=0, init_params=start, max_iter=300, tol=1e-12)
    assert abs(float(fitted.log_likelihood) - float(reference.log_likelihood)) / 500 < 1e-4
    np.testing.assert_allclose(np.asarray(fitted.params.components["coef"]), np.asarray(reference.params.coefs), atol=1e-3)


@pytest.mark.slow
def test_full_covariance_gaussian_via_the_cholesky_constraint():
    x = jnp.asarray(jaxem.load_dataset("faithful")[0])

    def log_prob(c, row):
        return jax.scipy.stats.multivariate_normal.logpdf(row, c["mean"], c["chol"] @ c["chol"].T)

    def init(key, x):
        return {"mean": x[jax.random.randint(key, (), 0, x.shape[0])], "chol": jnp.linalg.cholesky(jnp.cov(x.T))}

    model = models.mixture(log_prob, init, n_components=2, constraints={"mean": None, "chol": constraints.cholesky()})
    fitted = jaxem.fit(model, x, key=0, n_restarts=4, max_iter=200, tol=1e-9)
    closed = models.gaussian_mixture(2, reg_covar=0.0)
    reference = jaxem.fit(closed, x, key=0, n_restarts=4, max_iter=500, tol=1e-12)
    assert abs(float(fitted.log_likelihood) - float(reference.log_likelihood)) / x.shape[0] < 1e-4
    assert jaxem.n_parameters(model, fitted.params) == jaxem.n_parameters(closed, reference.params)
