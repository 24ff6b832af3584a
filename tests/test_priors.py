"""MAP-EM with conjugate priors (``jaxem.priors``).

* Each family's MAP M-step against SciPy's numerical maximizer of
  Q + log prior (float64), written here independently in NumPy.
* MAP-EM ascends the log posterior: ``history`` is monotone up to rounding, in
  float64 and float32; ``FitResult.log_likelihood``/``log_prior`` are those of
  the returned params.
* Priors are checked at the public boundary, and survive ``save``/``load``.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

import jaxem
from jaxem import priors
from jaxem._src.families import gaussian, poisson
from jaxem._src.families.covariance import covariance_of

RNG_SEED = 0


def _responsibilities(rng, n, k):
    r = rng.random((n, k)) + 0.05
    return r / r.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------------
# The Gaussian MAP M-step against SciPy.


def _covariance_from(theta, covariance_type, k, d):
    """Covariance matrices [K, D, D] from unconstrained parameters."""
    if covariance_type in ("full", "tied"):
        m = 1 if covariance_type == "tied" else k
        size = d * (d + 1) // 2
        i, j = np.tril_indices(d)
        out = []
        for c in range(m):
            lower = np.zeros((d, d))
            lower[i, j] = theta[c * size : (c + 1) * size]
            lower[np.diag_indices(d)] = np.exp(np.diag(lower))
            out.append(lower @ lower.T)
        return np.broadcast_to(np.asarray(out), (k, d, d)), m * size
    if covariance_type == "diag":
        return np.stack([np.diag(np.exp(theta[c * d : (c + 1) * d])) for c in range(k)]), k * d
    return np.stack([np.eye(d) * np.exp(theta[c]) for c in range(k)]), k


def _log_posterior_objective(x, r, prior_full, covariance_type):
    """-(Q + log prior) of unconstrained (means, covariances), the prior given as
    per-component (m [K, D], λ [K], Ψ [K, D, D], ν [K]) in the GaussianPrior's
    density (tied: Ψ and ν counted once)."""
    n, d = x.shape
    k = r.shape[1]
    m0, lam, psi, nu = prior_full

    def objective(theta):
        means = theta[: k * d].reshape(k, d)
        cov, _ = _covariance_from(theta[k * d :], covariance_type, k, d)
        total = 0.0
        components = 1 if covariance_type == "tied" else k
        for c in range(k):
            precision = np.linalg.inv(cov[c])
            _, log_det = np.linalg.slogdet(cov[c])
            diff = x - means[c]
            total += np.sum(r[:, c] * (-0.5 * log_det - 0.5 * np.einsum("ni,ij,nj->n", diff, precision, diff)))
            dm = means[c] - m0[c]
            total += -0.5 * lam[c] * dm @ precision @ dm
            if c < components:
                total += -0.5 * np.trace(psi[c] @ precision) - 0.5 * nu[c] * log_det
        return -total

    return objective


PRIOR_SCALES = {  # Ψ in each covariance type's shape, K = 2, D = 2
    "full": np.array([[[0.6, 0.2], [0.2, 0.4]], [[0.3, -0.1], [-0.1, 0.9]]]),
    "tied": np.array([[0.8, 0.3], [0.3, 0.5]]),
    "diag": np.array([[0.4, 0.7], [0.2, 0.3]]),
    "spherical": np.array([0.5, 0.8]),
}


def _full_psi(psi, covariance_type, k, d):
    if covariance_type == "full":
        return psi
    if covariance_type == "tied":
        return np.broadcast_to(psi, (1, d, d))
    if covariance_type == "diag":
        return np.stack([np.diag(v) for v in psi])
    return np.stack([np.eye(d) * v for v in psi])


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gaussian_map_m_step_maximizes_q_plus_log_prior(covariance_type):
    rng = np.random.default_rng(RNG_SEED)
    k, d, n = 2, 2, 40
    x = rng.normal(size=(n, d)) * np.array([2.0, 0.5]) + np.array([10.0, -3.0])
    r = _responsibilities(rng, n, k)
    psi = PRIOR_SCALES[covariance_type]
    prior = gaussian.GaussianPrior(
        means=np.array([[9.0, -2.0], [11.0, -4.0]]),
        means_weight=np.array([1.5, 0.5]),
        covariances=psi,
        covariances_weight=3.0 if covariance_type == "tied" else np.array([2.0, 4.0]),
    )
    covariance = covariance_of(covariance_type)
    checked = gaussian.check_prior(prior, covariance, k)
    family = gaussian.component(covariance, 0.0, checked).family
    features = family.prepare(jnp.asarray(x))
    template = jaxem.models.GaussianMixtureParams(
        jnp.full((k,), 0.5), jnp.zeros((k, d)), jnp.ones(covariance.factor_shape(k, d))
    )
    statistics = jnp.asarray(r).T @ features.stats
    result = family.maximize(statistics, features, template)
    ours_cov = np.asarray(jaxem.models.covariances(result, covariance_type))
    ours_means = np.asarray(result.means)
    ours_log_prior = float(family.log_prior(result))

    nu = np.broadcast_to(np.asarray(prior.covariances_weight, float), (1 if covariance_type == "tied" else k,))
    prior_full = (prior.means, prior.means_weight, _full_psi(psi, covariance_type, k, d), nu)
    objective = _log_posterior_objective(x, r, prior_full, covariance_type)
    _, n_cov = _covariance_from(np.zeros(100), covariance_type, k, d)
    start = np.concatenate([np.tile(x.mean(axis=0), k), np.zeros(n_cov)])
    best = optimize.minimize(objective, start, method="BFGS", options={"gtol": 1e-9, "maxiter": 2000})
    theirs_means = best.x[: k * d].reshape(k, d)
    theirs_cov, _ = _covariance_from(best.x[k * d :], covariance_type, k, d)
    np.testing.assert_allclose(ours_means, theirs_means, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours_cov, theirs_cov, rtol=1e-4, atol=1e-6)

    # the reported log prior is the density the maximizer used (up to its constant):
    # difference of objective and log prior = Q, the same at both points
    def log_prior_np(means, cov):
        total = 0.0
        for c in range(k):
            precision = np.linalg.inv(cov[c])
            dm = means[c] - prior.means[c]
            total += -0.5 * prior.means_weight[c] * dm @ precision @ dm
        for c in range(1 if covariance_type == "tied" else k):
            precision = np.linalg.inv(cov[c])
            total += -0.5 * np.trace(prior_full[2][c] @ precision) - 0.5 * nu[c] * np.linalg.slogdet(cov[c])[1]
        return total

    np.testing.assert_allclose(ours_log_prior, log_prior_np(ours_means, ours_cov), rtol=1e-9)


# ----------------------------------------------------------------------------------
# Dirichlet and Gamma MAP updates against SciPy.


def test_dirichlet_map_update_maximizes_log_posterior():
    from jaxem._src.families import dirichlet

    counts = np.array([3.2, 0.0, 7.5, 0.4])
    alpha = np.array([2.0, 1.0, 1.5, 3.0])
    ours = np.asarray(dirichlet.map_probabilities(jnp.asarray(counts), alpha))

    weight = counts + alpha - 1.0  # the zero-weight entry's optimum is on the boundary

    def objective(p):
        return -np.sum(weight[weight > 0] * np.log(p[weight > 0]))

    # On the simplex with bounds (SLSQP): BFGS on logits cannot reach the zero and
    # stops with "precision loss" 2e-5 away from the optimum on some CPUs.
    best = optimize.minimize(
        objective, np.full(4, 0.25), method="SLSQP", bounds=[(1e-12, 1.0)] * 4,
        constraints=[{"type": "eq", "fun": lambda p: np.sum(p) - 1.0}], options={"ftol": 1e-15, "maxiter": 1000},
    )  # fmt: skip
    np.testing.assert_allclose(ours, best.x, rtol=1e-6, atol=1e-7)


def test_gamma_map_update_of_poisson_rates():
    rng = np.random.default_rng(1)
    k, n = 3, 30
    x = rng.poisson([1.0, 6.0], size=(n, 2)).astype(float)
    r = _responsibilities(rng, n, k)
    prior = poisson.check_prior(poisson.GammaPrior(shape=np.array([2.5, 1.0]), rate=0.8), k)
    family = poisson.poisson_family("rates", prior)
    features = family.prepare(jnp.asarray(x))
    template = jaxem.models.PoissonMixtureParams(jnp.full((k,), 1.0 / k), jnp.ones((k, 2)))
    ours = np.asarray(family.maximize(jnp.asarray(r).T @ features.stats, features, template).rates)

    def objective(log_rates):
        rates = np.exp(log_rates.reshape(k, 2))
        q = np.sum(r[:, :, None] * (x[:, None, :] * np.log(rates)[None] - rates[None]))
        return -(q + np.sum((prior.shape - 1.0) * np.log(rates) - prior.rate * rates))

    best = optimize.minimize(objective, np.zeros(k * 2), method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(ours, np.exp(best.x).reshape(k, 2), rtol=1e-6)


# ----------------------------------------------------------------------------------
# MAP-EM fits: monotone in the log posterior, what FitResult reports.


def _hmm_data(seed=0):
    rng = np.random.default_rng(seed)
    z = np.repeat(np.arange(4) % 2, 30)
    return (rng.normal(size=(z.size, 2)) * 0.6 + np.where(z[:, None] == 1, 3.0, 0.0)).astype(np.float32)


def _monotone(history, rtol):
    h = np.asarray(history, dtype=np.float64)
    h = h[~np.isnan(h)]
    assert h.size > 3
    np.testing.assert_array_less(-rtol * np.abs(h[1:]), np.diff(h))


@pytest.mark.parametrize("dtype", [pytest.param(np.float64, marks=pytest.mark.slow), np.float32])
def test_map_em_hmm_ascends_the_log_posterior(dtype):
    x = _hmm_data()
    prior = priors.hmmlearn_gaussian(
        2, 2, "full", startprob_prior=2.0, transmat_prior=3.0, means_weight=1.0, covars_prior=0.5, covars_weight=5.0
    )
    model = jaxem.models.gaussian_hmm(2, covariance_type="full", reg_covar=0.0, prior=prior)
    result = jaxem.fit(model, jnp.asarray(x, dtype), key=0, n_restarts=2, max_iter=25, tol=0.0)
    for history in result.history:
        _monotone(history, 1e-12 if dtype == np.float64 else 2e-6)
    log_lik = jaxem.log_likelihood(model, result.params, jnp.asarray(x, dtype))
    np.testing.assert_allclose(float(result.log_likelihood), float(log_lik), rtol=1e-6)
    np.testing.assert_allclose(float(result.log_prior), float(priors.log_prior(model, result.params)), rtol=1e-6)
    # history is the log posterior: the last entry is (close to) that of the final params
    last = np.asarray(result.history[result.best_restart])
    last = last[~np.isnan(last)][-1]
    np.testing.assert_allclose(last, float(result.log_likelihood + result.log_prior), rtol=1e-4)
    assert float(result.log_prior) != 0.0


def test_prior_moves_the_fit_and_a_flat_prior_does_not():
    x = _hmm_data()
    data = jnp.asarray(x, jnp.float64)
    plain = jaxem.models.gaussian_hmm(2, reg_covar=0.0)
    flat = jaxem.models.gaussian_hmm(2, reg_covar=0.0, prior=priors.HMMPrior(1.0, 1.0, priors.GaussianPrior()))
    strong = jaxem.models.gaussian_hmm(2, reg_covar=0.0, prior=priors.HMMPrior(1.0, 50.0, None))
    params = jaxem.init(plain, jax.random.key(0), data)
    a, _ = jaxem.em_step(plain, params, data)
    b, _ = jaxem.em_step(flat, params, data)
    c, _ = jaxem.em_step(strong, params, data)
    for left, right in zip(a, b):
        np.testing.assert_allclose(np.asarray(left), np.asarray(right), rtol=1e-12)
    # 49 pseudo-counts per transition pull every row towards uniform
    assert np.abs(np.asarray(c.transition_matrix) - 0.5).max() < np.abs(np.asarray(a.transition_matrix) - 0.5).max()


# ----------------------------------------------------------------------------------
# Checks at the public boundary; save/load.


def test_priors_are_checked_at_the_boundary():
    with pytest.raises(ValueError, match="prior.transition_matrix"):
        jaxem.models.gaussian_hmm(2, prior=priors.HMMPrior(transition_matrix=0.5))
    with pytest.raises(ValueError, match="prior.initial_probs"):
        jaxem.models.gaussian_hmm(2, prior=priors.HMMPrior(initial_probs=[1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="means_weight"):
        jaxem.models.gaussian_hmm(2, prior=priors.HMMPrior(emissions=priors.GaussianPrior(means_weight=-1.0)))
    with pytest.raises(ValueError, match="positive semi-definite"):
        bad = priors.GaussianPrior(covariances=np.array([[1.0, 2.0], [2.0, 1.0]]))
        jaxem.models.gaussian_hmm(2, covariance_type="full", prior=priors.HMMPrior(emissions=bad))
    with pytest.raises(ValueError, match="prior.covariances has shape"):
        bad = priors.GaussianPrior(covariances=np.ones((3, 2)))
        jaxem.models.gaussian_hmm(2, covariance_type="diag", prior=priors.HMMPrior(emissions=bad))
    with pytest.raises(TypeError, match="GaussianPrior"):
        jaxem.models.gaussian_hmm(2, prior=priors.HMMPrior(emissions=priors.GammaPrior()))
    with pytest.raises(ValueError, match="shape"):
        jaxem.models.poisson_hmm(2, prior=priors.HMMPrior(emissions=priors.GammaPrior(shape=0.5)))
    with pytest.raises(ValueError, match="prior.emissions"):
        jaxem.models.categorical_hmm(2, 3, prior=priors.HMMPrior(emissions=np.ones(4) * 2.0))
    # a prior whose features do not match the data: ValueError naming the field
    model = jaxem.models.gaussian_hmm(
        2, covariance_type="diag", prior=priors.HMMPrior(emissions=priors.GaussianPrior(means=np.zeros(3)))
    )
    with pytest.raises(ValueError, match="prior.means"):
        jaxem.init(model, jax.random.key(0), _hmm_data())


def test_model_with_prior_survives_save_and_load(tmp_path):
    prior = priors.hmmlearn_gaussian(2, 2, "diag", transmat_prior=np.array([[3.0, 1.0], [1.0, 2.0]]), covars_weight=3.0)
    model = jaxem.models.gaussian_hmm(2, covariance_type="diag", prior=prior)
    x = _hmm_data()
    params = jaxem.init(model, jax.random.key(0), x)
    path = os.path.join(tmp_path, "map.npz")
    jaxem.save(path, model, params)
    loaded, loaded_params = jaxem.load(path)
    assert loaded is model  # same options: the same (memoized) model
    np.testing.assert_allclose(float(priors.log_prior(loaded, loaded_params)), float(priors.log_prior(model, params)))


# ----------------------------------------------------------------------------------
# Mixtures: Bernoulli and regression MAP M-steps against SciPy; Gaussian MAP-EM on
# degenerate data, chunked and streamed; the gradient M-step's log_prior.


def test_beta_map_update_of_bernoulli_probs():
    from jaxem._src.families import bernoulli

    rng = np.random.default_rng(2)
    k, n = 2, 25
    x = (rng.random((n, 3)) < [0.1, 0.5, 0.95]).astype(float)
    r = _responsibilities(rng, n, k)
    prior = bernoulli.check_prior(bernoulli.BetaPrior(a=np.array([2.0, 1.0, 3.0]), b=1.5), k)
    family = bernoulli.bernoulli_family("probs", prior)
    features = family.prepare(jnp.asarray(x))
    template = jaxem.models.BernoulliMixtureParams(jnp.full((k,), 0.5), jnp.full((k, 3), 0.5))
    ours = np.asarray(family.maximize(jnp.asarray(r).T @ features.stats, features, template).probs)

    def objective(logits):
        p = 1.0 / (1.0 + np.exp(-logits.reshape(k, 3)))
        q = np.sum(r[:, :, None] * (x[:, None, :] * np.log(p)[None] + (1 - x[:, None, :]) * np.log1p(-p)[None]))
        return -(q + np.sum((prior.a - 1.0) * np.log(p) + (prior.b - 1.0) * np.log1p(-p)))

    best = optimize.minimize(objective, np.zeros(k * 3), method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(ours, 1.0 / (1.0 + np.exp(-best.x.reshape(k, 3))), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fit_intercept", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_regression_map_m_step_maximizes_q_plus_log_prior(fit_intercept):
    from jaxem._src.families import regression

    rng = np.random.default_rng(3)
    k, n, p = 2, 30, 2
    x = rng.normal(size=(n, p)) * np.array([3.0, 0.2]) + 1.0
    y = x @ np.array([0.5, -4.0]) + 2.0 + rng.normal(size=n) * 0.7
    r = _responsibilities(rng, n, k)
    prior = regression.check_prior(
        regression.RegressionPrior(coefs=np.array([1.0, 0.0]), coefs_weight=np.array([3.0, 0.5]), variance=0.8, variance_weight=2.0), k
    )
    family = regression.regression_family(fit_intercept, 0.0, prior)
    features = family.prepare((jnp.asarray(x), jnp.asarray(y)))
    template = jaxem.models.RegressionMixtureParams(jnp.full((k,), 0.5), jnp.zeros((k, p)), jnp.zeros((k,)), jnp.ones((k,)))
    result = family.maximize(jnp.asarray(r).T @ features.stats, features, template)

    def unpack(theta):
        coefs = theta[: k * p].reshape(k, p)
        intercepts = theta[k * p : k * p + k] if fit_intercept else np.zeros(k)
        return coefs, intercepts, np.exp(theta[-k:])

    def objective(theta):
        coefs, intercepts, variances = unpack(theta)
        resid = y[:, None] - intercepts[None, :] - x @ coefs.T
        q = np.sum(r * (-0.5 * np.log(variances) - 0.5 * resid**2 / variances))
        squares = np.sum((coefs - prior.coefs) ** 2, axis=1)
        return -(q + np.sum(-(prior.coefs_weight * squares + prior.variance) / (2 * variances) - 0.5 * prior.variance_weight * np.log(variances)))

    size = k * p + (k if fit_intercept else 0) + k
    best = optimize.minimize(objective, np.zeros(size), method="BFGS", options={"gtol": 1e-10, "maxiter": 5000})
    coefs, intercepts, variances = unpack(best.x)
    np.testing.assert_allclose(np.asarray(result.coefs), coefs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(result.intercepts), intercepts, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(result.variances), variances, rtol=1e-5)
    with pytest.raises(ValueError, match="prior.coefs"):  # a prior for 3 covariates, data with 2
        model = jaxem.models.regression_mixture(2, prior=priors.MixturePrior(components=priors.RegressionPrior(coefs=np.zeros(3))))
        jaxem.init(model, jax.random.key(0), (x, y))


def _degenerate_rows():
    """Three tight groups, one of them exact duplicates: maximum likelihood
    without reg_covar collapses onto the duplicates."""
    rng = np.random.default_rng(4)
    return np.concatenate(
        [rng.normal(0.0, 1.0, (60, 2)), rng.normal(6.0, 0.3, (40, 2)), np.tile([[-5.0, 5.0]], (12, 1))]
    ).astype(np.float32)


def test_weak_gaussian_prior_keeps_degenerate_data_finite_and_monotone():
    x = _degenerate_rows()
    prior = priors.MixturePrior(weights=1.5, components=priors.weak_gaussian(x, "full"))
    model = jaxem.models.gaussian_mixture(3, covariance_type="full", reg_covar=0.0, prior=prior)
    data = jnp.asarray(x)  # float32
    result = jaxem.fit(model, data, key=0, n_restarts=3, max_iter=40, tol=0.0)
    assert np.isfinite(float(result.log_likelihood)) and np.isfinite(float(result.log_prior))
    for history in result.history:
        _monotone(history, 2e-6)
    # the duplicates' component has the floor the prior sets: 0.01 var / (n_k + 1) per feature
    covs = np.asarray(jaxem.models.covariances(result.params, "full"), np.float64)
    floor = 0.01 * np.var(x.astype(np.float64), axis=0) / (x.shape[0] + 1.0)
    assert np.all(np.diagonal(covs, axis1=1, axis2=2) >= 0.999 * floor[None, :])
    # float32 against float64 on the same data and start
    start = jax.tree_util.tree_map(lambda leaf: leaf[result.best_restart], result.all_params)
    start64 = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, jnp.float64), start)
    one32, _ = jaxem.em_step(model, start, data)
    one64, _ = jaxem.em_step(model, start64, jnp.asarray(x, jnp.float64))
    np.testing.assert_allclose(np.asarray(one32.means), np.asarray(one64.means), rtol=1e-4, atol=1e-4)
    # each component's covariance to 1e-3 of its own scale (float32 rounding of the moments)
    cov32 = np.asarray(jaxem.models.covariances(one32, "full"), np.float64)
    cov64 = np.asarray(jaxem.models.covariances(one64, "full"))
    scale = np.trace(cov64, axis1=1, axis2=2)[:, None, None]
    np.testing.assert_array_less(np.abs(cov32 - cov64) / scale, 1e-3)


def test_map_m_step_is_the_same_chunked_and_streamed():
    x = _degenerate_rows().astype(np.float64)
    prior = priors.MixturePrior(weights=2.0, components=priors.weak_gaussian(x, "diag", strength=3.0))
    model = jaxem.models.gaussian_mixture(3, covariance_type="diag", prior=prior)
    params = jaxem.init(model, jax.random.key(0), x)
    whole, log_lik = jaxem.em_step(model, params, x)
    chunked, chunked_log_lik = jaxem.em_step(model, params, x, chunk_size=25)
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10)
    streamed = jaxem.fit_streaming(model, lambda: (x[i : i + 40] for i in range(0, len(x), 40)), key=0, init_params=params, max_iter=1)
    fitted = jaxem.fit(model, x, key=0, init_params=params, max_iter=1)
    for a, b in zip(streamed.params, fitted.params):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9)
    np.testing.assert_allclose(float(streamed.log_prior), float(fitted.log_prior), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(streamed.history[0, :1]), np.asarray(fitted.history[0, :1]), rtol=1e-10)
    np.testing.assert_allclose(float(fitted.history[0, 0]), float(log_lik + priors.log_prior(model, params)), rtol=1e-12)


@pytest.mark.slow
def test_gradient_m_step_with_log_prior_reaches_the_closed_form_map():
    from jaxem import constraints

    x = jnp.asarray(jaxem.load_dataset("faithful")[0])
    prior = priors.MixturePrior(weights=3.0, components=priors.GaussianPrior(means=np.array([3.0, 70.0]), means_weight=5.0, covariances=np.array([0.5, 30.0]), covariances_weight=4.0))
    closed = jaxem.models.gaussian_mixture(2, covariance_type="diag", reg_covar=0.0, prior=prior)
    declared = jaxem.models.GaussianMixtureParams(constraints.simplex(), None, constraints.positive())
    generic = closed._replace(
        m_step=jaxem.gradient_m_step(closed.log_joint, constraints=declared, inner_steps=10, log_prior=closed.log_prior)
    )
    start = jaxem.init(closed, jax.random.key(0), x)
    reference = jaxem.fit(closed, x, key=0, init_params=start, max_iter=300, tol=0.0)
    fitted = jaxem.fit(generic, x, key=0, init_params=start, max_iter=100, tol=1e-12)
    _monotone(fitted.history[0], 1e-9)
    objective = float(fitted.log_likelihood + fitted.log_prior)
    assert abs(objective - float(reference.log_likelihood + reference.log_prior)) / x.shape[0] < 1e-4
    np.testing.assert_allclose(np.asarray(fitted.params.means), np.asarray(reference.params.means), rtol=1e-3)


@pytest.mark.slow
def test_bernoulli_and_multinomial_hmm_emission_priors_are_the_closed_form_map():
    rng = np.random.default_rng(7)
    binary = (rng.random((80, 3)) < 0.3).astype(np.float64)
    counts = rng.multinomial(4, [0.2, 0.5, 0.3], size=80).astype(np.float64)
    cases = [
        (jaxem.models.bernoulli_hmm, priors.BetaPrior(a=np.array([2.0, 1.0, 3.0]), b=1.5), binary, "probs"),
        (jaxem.models.multinomial_hmm, np.array([[2.0, 1.0, 1.5], [1.0, 3.0, 1.0]]), counts, "emission_probs"),
    ]
    for factory, emission_prior, x, field in cases:
        model = factory(2, prior=priors.HMMPrior(initial_probs=2.0, transition_matrix=3.0, emissions=emission_prior))
        params = jaxem.init(model, jax.random.key(0), x)
        new, _ = jaxem.em_step(model, params, x)
        gamma = np.asarray(jaxem.posterior(model, params, x))[0]  # [T, K]
        sums, n = gamma.T @ x, gamma.sum(axis=0)[:, None]
        if field == "probs":
            expected = (sums + emission_prior.a - 1.0) / (n + emission_prior.a + emission_prior.b - 2.0)
        else:
            totals = sums + emission_prior - 1.0
            expected = totals / totals.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(np.asarray(getattr(new, field)), expected, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(new.initial_probs), (gamma[0] + 1.0) / (1.0 + 2.0), rtol=1e-9)
