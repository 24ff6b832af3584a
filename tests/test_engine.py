"""Engine invariants: autodiff E-step, monotone EM, restarts, composition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxem
from tests.helpers import blobs


def _faithful():
    return jnp.asarray(jaxem.load_dataset("faithful")[0])


def test_autodiff_posterior_equals_softmax_formula():
    x = _faithful()
    model = jaxem.models.gaussian_mixture(3, covariance_type="diag")
    params = jaxem.init(model, jax.random.key(0), x)
    log_potentials = model.log_joint(params, model.prepare(x))
    explicit = np.exp(log_potentials - jax.scipy.special.logsumexp(log_potentials, axis=1, keepdims=True))
    np.testing.assert_allclose(np.asarray(jaxem.posterior(model, params, x)), explicit, atol=1e-12)
    log_lik, grad = jaxem.e_step(model, params, model.prepare(x))
    np.testing.assert_allclose(float(log_lik), float(jnp.sum(jax.scipy.special.logsumexp(log_potentials, axis=1))), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grad).sum(axis=1), 1.0, atol=1e-12)


def test_log_potentials_are_gaussian_log_densities():
    x, *_ = blobs(0, n=50)
    for covariance_type in ["full", "tied", "diag", "spherical"]:
        model = jaxem.models.gaussian_mixture(3, covariance_type=covariance_type)
        params = jaxem.init(model, jax.random.key(1), x)
        covs = jaxem.models.covariances(params, covariance_type)
        expected = np.stack(
            [
                np.log(float(params.weights[k]))
                + scipy.stats.multivariate_normal.logpdf(x, np.asarray(params.means[k]), np.asarray(covs[k]))
                for k in range(3)
            ],
            axis=1,
        )
        np.testing.assert_allclose(np.asarray(model.log_joint(params, model.prepare(x))), expected, rtol=1e-10)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    k=st.integers(1, 4),
    d=st.integers(1, 3),
    covariance_type=st.sampled_from(["full", "tied", "diag", "spherical"]),
)
@pytest.mark.slow
def test_log_likelihood_never_decreases(seed, k, d, covariance_type):
    rng = np.random.default_rng(seed)
    n = 40
    x = rng.normal(size=(n, d)) * rng.uniform(0.1, 5.0, size=d) + rng.normal(size=d) * 3
    x[: n // 2] += rng.normal(size=d) * 4
    model = jaxem.models.gaussian_mixture(k, covariance_type=covariance_type)
    result = jaxem.fit(model, x, key=jax.random.key(seed), n_restarts=2, max_iter=60, tol=0.0)
    history = np.asarray(result.history)
    for trace in history:
        trace = trace[np.isfinite(trace)]
        drops = trace[:-1] - trace[1:]
        assert np.all(drops <= 1e-6 * np.abs(trace[1:]) + 1e-9), drops.max()
    assert np.isfinite(float(result.log_likelihood))


def test_fit_result_contract():
    x = _faithful()
    model = jaxem.models.gaussian_mixture(2)
    result = jaxem.fit(model, x, key=jax.random.key(0), n_restarts=5, max_iter=50)
    assert result.history.shape == (5, 50)
    assert result.n_iter.shape == result.converged.shape == (5,)
    assert jax.tree_util.tree_leaves(result.all_params)[0].shape[0] == 5
    # The reported log-likelihood is that of exactly the returned params.
    np.testing.assert_allclose(float(jaxem.log_likelihood(model, result.params, x)), float(result.log_likelihood), rtol=1e-12)
    best = int(result.best_restart)
    assert float(result.log_likelihood) == float(jnp.max(result.all_log_likelihoods))
    for r in range(5):
        n_iter = int(result.n_iter[r])
        assert np.all(np.isfinite(result.history[r, :n_iter]))
        assert np.all(np.isnan(result.history[r, n_iter:]))
    np.testing.assert_array_equal(np.asarray(result.params.means), np.asarray(result.all_params.means[best]))


def test_vmapped_restarts_equal_each_key_alone():
    x = _faithful()
    model = jaxem.models.gaussian_mixture(3, covariance_type="full")
    key = jax.random.key(42)
    together = jaxem.fit(model, x, key=key, n_restarts=4, max_iter=40)
    keys = jax.random.split(key, 4)
    for r in range(4):
        start = jax.jit(model.init)(keys[r], model.prepare(x))
        alone = jaxem.fit(model, x, key=key, init_params=start, max_iter=40)
        assert int(alone.n_iter[0]) == int(together.n_iter[r])
        np.testing.assert_allclose(np.asarray(alone.history[0]), np.asarray(together.history[r]), rtol=1e-10)
        np.testing.assert_allclose(np.asarray(alone.params.means), np.asarray(together.all_params.means[r]), rtol=1e-9)


def test_em_step_under_user_jit_vmap_and_scan():
    x = _faithful()
    model = jaxem.models.gaussian_mixture(2)
    params = jaxem.init(model, jax.random.key(0), x)
    eager = [params]
    for _ in range(3):
        eager.append(jaxem.em_step(model, eager[-1], x)[0])

    jitted = jax.jit(lambda p, d: jaxem.em_step(model, p, d))(params, x)[0]
    np.testing.assert_allclose(np.asarray(jitted.means), np.asarray(eager[1].means), rtol=1e-12)

    prepared = model.prepare(x)

    def body(p, _):
        new, log_lik = jaxem.em_step(model, p, prepared)
        return new, log_lik

    final, log_liks = jax.lax.scan(body, params, None, length=3)
    np.testing.assert_allclose(np.asarray(final.means), np.asarray(eager[3].means), rtol=1e-10)
    assert np.all(np.diff(np.asarray(log_liks)) >= 0)

    # vmap over a batch of datasets (bootstrap resamples) and of params.
    rng = np.random.default_rng(0)
    index = rng.integers(0, x.shape[0], size=(3, x.shape[0]))
    datasets = x[index]
    batch_params = jax.tree_util.tree_map(lambda leaf: jnp.stack([leaf] * 3), params)
    new, log_lik = jax.vmap(lambda p, d: jaxem.em_step(model, p, d))(batch_params, datasets)
    for b in range(3):
        one, one_ll = jaxem.em_step(model, params, datasets[b])
        np.testing.assert_allclose(np.asarray(new.means[b]), np.asarray(one.means), rtol=1e-10)
        np.testing.assert_allclose(float(log_lik[b]), float(one_ll), rtol=1e-12)


def test_grad_through_log_likelihood():
    x = _faithful()
    model = jaxem.models.gaussian_mixture(2)
    params = jaxem.init(model, jax.random.key(0), x)
    grad = jax.grad(lambda p: jaxem.log_likelihood(model, p, x))(params)
    assert np.all(np.isfinite(np.asarray(grad.means)))
    eps = 1e-6
    bumped = params._replace(means=params.means.at[0, 1].add(eps))
    numeric = (float(jaxem.log_likelihood(model, bumped, x)) - float(jaxem.log_likelihood(model, params, x))) / eps
    np.testing.assert_allclose(float(grad.means[0, 1]), numeric, rtol=1e-4)


def test_integer_sample_weights_equal_repeated_rows():
    x = np.asarray(_faithful())
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 4, size=x.shape[0])
    counts[0] = 1
    repeated = np.repeat(x, counts, axis=0)
    model = jaxem.models.gaussian_mixture(2, covariance_type="diag")
    params = jaxem.init(model, jax.random.key(0), x)
    weighted, weighted_ll = jaxem.em_step(model, params, x, sample_weight=counts.astype(np.float64))
    plain, plain_ll = jaxem.em_step(model, params, repeated)
    np.testing.assert_allclose(float(weighted_ll), float(plain_ll), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(weighted.means), np.asarray(plain.means), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(weighted.precisions_cholesky), np.asarray(plain.precisions_cholesky), rtol=1e-8)
    result = jaxem.fit(model, x, key=jax.random.key(0), sample_weight=counts.astype(np.float64), max_iter=20)
    assert np.isfinite(float(result.log_likelihood))


def test_batched_init_params():
    x = _faithful()
    model = jaxem.models.gaussian_mixture(2)
    keys = jax.random.split(jax.random.key(7), 3)
    starts = jax.vmap(model.init, in_axes=(0, None))(keys, model.prepare(x))
    result = jaxem.fit(model, x, key=jax.random.key(0), n_restarts=3, init_params=starts, max_iter=30)
    assert result.history.shape == (3, 30)
    with pytest.raises(ValueError, match="n_restarts"):
        jaxem.fit(model, x, key=jax.random.key(0), n_restarts=2, init_params=jaxem.init(model, 0, x))
