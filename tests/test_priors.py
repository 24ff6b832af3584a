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

    def objective(logits):
        log_p = logits - np.logaddexp.reduce(logits)
        return -np.sum((counts + alpha - 1.0) * log_p)

    best = optimize.minimize(objective, np.zeros(4), method="BFGS", options={"gtol": 1e-10})
    theirs = np.exp(best.x - np.logaddexp.reduce(best.x))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)  # SciPy nears a zero, never reaches it


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


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
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
