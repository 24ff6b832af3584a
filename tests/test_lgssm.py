"""The LGSSM: the Kalman log-partition and its gradient (the RTS smoother by
autodiff) against dense Gaussian conditioning of all states at once (float64,
1e-10) and a NumPy covariance-form Kalman filter + RTS smoother; EM monotone and
beating the true parameters; float32 on a long sequence against float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

import jaxem
from jaxem.models import LGSSMParams


def random_params(seed, l=2, d=2, u=0):
    rng = np.random.default_rng(seed)

    def spd(n, s):
        a = rng.normal(size=(n, n)) * 0.3
        return s * (a @ a.T + np.eye(n))

    f = rng.normal(size=(l, l))
    f = 0.9 * f / np.max(np.abs(np.linalg.eigvals(f)))
    return LGSSMParams(
        rng.normal(size=l), spd(l, 1.0), f, rng.normal(size=(l, u)), spd(l, 0.3),
        rng.normal(size=(d, l)), rng.normal(size=(d, u)), spd(d, 0.5),
    )  # fmt: skip


def dense_reference(params, x, inputs=None):
    """log p(x_obs), E[z], Cov[z_t], Cov[z_{t-1}, z_t] by conditioning the joint Gaussian."""
    p = params
    t, d = x.shape
    l = p.dynamics.shape[0]
    u = np.zeros((t, p.dynamics_input.shape[1])) if inputs is None else inputs
    mean = [p.initial_mean]
    for s in range(1, t):
        mean.append(p.dynamics @ mean[-1] + p.dynamics_input @ u[s])
    mean = np.concatenate(mean)
    # z = T (noise): z_t = F z_{t-1} + w_t, so Cov is built from the transfer blocks.
    transfer = np.zeros((t * l, t * l))
    noise = np.zeros((t * l, t * l))
    for s in range(t):
        noise[s * l:(s + 1) * l, s * l:(s + 1) * l] = p.initial_covariance if s == 0 else p.dynamics_covariance
        for r in range(s, t):
            transfer[r * l:(r + 1) * l, s * l:(s + 1) * l] = np.linalg.matrix_power(p.dynamics, r - s)
    cov = transfer @ noise @ transfer.T
    rows = np.flatnonzero(~np.isnan(x).reshape(-1))  # the observed entries, partly observed steps too
    h_big = np.kron(np.eye(t), p.emission)[rows]
    r_big = np.kron(np.eye(t), p.emission_covariance)[np.ix_(rows, rows)]
    x_mean = h_big @ mean + (u @ p.emission_input.T).reshape(-1)[rows]
    s_cov = h_big @ cov @ h_big.T + r_big
    obs = x.reshape(-1)[rows]
    log_lik = multivariate_normal(x_mean, s_cov).logpdf(obs)
    gain = cov @ h_big.T @ np.linalg.inv(s_cov)
    post_mean = (mean + gain @ (obs - x_mean)).reshape(t, l)
    post_cov = cov - gain @ h_big @ cov
    blocks = np.stack([post_cov[s * l:(s + 1) * l, s * l:(s + 1) * l] for s in range(t)])
    cross = np.stack([np.zeros((l, l))] + [post_cov[(s - 1) * l:s * l, s * l:(s + 1) * l] for s in range(1, t)])
    return log_lik, post_mean, blocks, cross


def test_against_dense_conditioning_with_inputs_missing_steps_and_sequences():
    params = random_params(0, l=2, d=2, u=1)
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=(5, 2)), rng.normal(size=(3, 2))
    x1[2] = np.nan  # a missing step
    u1, u2 = rng.normal(size=(5, 1)), rng.normal(size=(3, 1))
    seqs = jaxem.Sequences.from_list([x1, x2])
    inputs = np.zeros((2, 5, 1))
    inputs[0], inputs[1, :3] = u1, u2
    model = jaxem.models.lgssm(2, n_inputs=1)
    data = (seqs, inputs)
    per_sequence = jaxem.score_samples(model, params, data)
    post = jaxem.posterior(model, params, data)
    for b, (x, u) in enumerate([(x1, u1), (x2, u2)]):
        log_lik, mean, cov, cross = dense_reference(params, x, u)
        t = len(x)
        np.testing.assert_allclose(per_sequence[b], log_lik, rtol=1e-10)
        np.testing.assert_allclose(post.means[b, :t], mean, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(post.covariances[b, :t], cov, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(post.cross_covariances[b, :t], cross, rtol=1e-9, atol=1e-10)
    np.testing.assert_array_equal(post.means[1, 3:], 0.0)  # padding
    np.testing.assert_allclose(jaxem.predict(model, params, data), post.means, atol=1e-12)


def numpy_rts(params, x):
    """Covariance-form Kalman filter and RTS smoother (no inputs; NaN rows missing)."""
    p = params
    t = len(x)
    means_f, covs_f, means_p, covs_p = [], [], [], []
    log_lik = 0.0
    m, c = p.initial_mean, p.initial_covariance
    for s in range(t):
        if s > 0:
            m, c = p.dynamics @ m, p.dynamics @ c @ p.dynamics.T + p.dynamics_covariance
        means_p.append(m)
        covs_p.append(c)
        if not np.isnan(x[s]).any():
            s_cov = p.emission @ c @ p.emission.T + p.emission_covariance
            log_lik += multivariate_normal(p.emission @ m, s_cov).logpdf(x[s])
            k = c @ p.emission.T @ np.linalg.inv(s_cov)
            m, c = m + k @ (x[s] - p.emission @ m), c - k @ p.emission @ c
        means_f.append(m)
        covs_f.append(c)
    means_s, covs_s = [means_f[-1]], [covs_f[-1]]
    for s in range(t - 2, -1, -1):
        g = covs_f[s] @ p.dynamics.T @ np.linalg.inv(covs_p[s + 1])
        means_s.insert(0, means_f[s] + g @ (means_s[0] - means_p[s + 1]))
        covs_s.insert(0, covs_f[s] + g @ (covs_s[0] - covs_p[s + 1]) @ g.T)
    return log_lik, np.stack(means_s), np.stack(covs_s)


def test_against_numpy_rts_smoother():
    params = random_params(2, l=3, d=2)
    model = jaxem.models.lgssm(3)
    x, _ = jaxem.sample(model, params, jax.random.key(0), 80)
    x = np.array(x)
    x[10:14] = np.nan
    log_lik, means, covs = numpy_rts(params, x)
    np.testing.assert_allclose(jaxem.log_likelihood(model, params, x), log_lik, rtol=1e-10)
    post = jaxem.posterior(model, params, x)
    np.testing.assert_allclose(post.means[0], means, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(post.covariances[0], covs, rtol=1e-8, atol=1e-9)


def test_em_is_monotone_and_beats_the_true_parameters():
    truth = random_params(3, l=2, d=3)
    model = jaxem.models.lgssm(2)
    xs = [np.asarray(jaxem.sample(model, truth, jax.random.key(k), n)[0]) for k, n in enumerate([80, 50, 60])]
    data = jaxem.Sequences.from_list(xs)
    params = jaxem.init(model, 0, data)
    lls = []
    for _ in range(15):
        params, ll = jaxem.em_step(model, params, data)
        lls.append(float(ll))
    assert np.all(np.diff(lls) >= -1e-9 * abs(lls[-1]))
    result = jaxem.fit(model, data, key=1, max_iter=150, tol=1e-6)
    assert float(result.log_likelihood) > float(jaxem.log_likelihood(model, truth, data))
    assert jaxem.n_parameters(model, truth) == 2 + 3 + 4 + 3 + 6 + 6 - 4


def test_checks():
    model = jaxem.models.lgssm(1)
    x = np.ones((5, 2))
    x[:, 0] = np.nan
    with pytest.raises(ValueError, match="never observed"):
        jaxem.init(model, 0, x)
    with pytest.raises(TypeError, match="parallel"):
        jaxem.models.lgssm(1, parallel=1)
    with pytest.raises(ValueError, match="positive definite"):
        params = random_params(0, l=1, d=2)
        jaxem.log_likelihood(model, params._replace(dynamics_covariance=-np.eye(1)), np.ones((5, 2)))
    with pytest.raises(ValueError, match="shape"):
        jaxem.log_likelihood(model, random_params(0, l=2, d=2), np.ones((5, 2)))
    with pytest.raises(TypeError, match="pair"):
        jaxem.init(jaxem.models.lgssm(1, n_inputs=1), 0, np.ones((5, 2)))
    with pytest.raises(ValueError, match="n_inputs"):
        jaxem.models.lgssm(1, n_inputs=-1)


def assert_float32_agrees_with_float64(model, params, key, n_steps):
    """A sampled sequence scored in float32 and in float64 on the same numbers
    (float32 values, and those widened): log-likelihood within 5e-5 per step,
    smoothed means within 1e-3 of their largest magnitude."""
    x, _ = jaxem.sample(model, params, jax.random.key(key), n_steps)
    x32 = np.asarray(x, np.float32)
    p32 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), params)
    x64, p64 = x32.astype(np.float64), jax.tree_util.tree_map(lambda a: a.astype(np.float64), p32)
    ll64 = float(jaxem.log_likelihood(model, p64, x64))
    ll32 = jaxem.log_likelihood(model, p32, x32)
    assert ll32.dtype == jnp.float32
    assert abs(float(ll32) - ll64) / len(x) < 5e-5
    m64 = jaxem.posterior(model, p64, x64).means
    m32 = jaxem.posterior(model, p32, x32).means
    assert float(jnp.max(jnp.abs(m32.astype(m64.dtype) - m64))) < 1e-3 * float(jnp.max(jnp.abs(m64)))


@pytest.mark.slow
def test_float32_long_sequence_agrees_with_float64():
    # Measured: 1.5e-5 per step on about -4.7 per step (3e-6 relative).
    assert_float32_agrees_with_float64(jaxem.models.lgssm(2), random_params(4, l=2, d=2), 0, 100_000)


def partly_observed_data(seed):
    """Two sequences (lengths 6 and 4, D = 3, one input) with partly observed steps,
    a whole missing step, and a full (correlated) emission covariance."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=(6, 3)), rng.normal(size=(4, 3))
    x1[1, 0] = np.nan
    x1[2] = np.nan
    x1[4, 1:] = np.nan
    x2[0, 2] = np.nan
    x2[3, :2] = np.nan
    u1, u2 = rng.normal(size=(6, 1)), rng.normal(size=(4, 1))
    inputs = np.zeros((2, 6, 1))
    inputs[0], inputs[1, :4] = u1, u2
    return [(x1, u1), (x2, u2)], (jaxem.Sequences.from_list([x1, x2]), inputs)


@pytest.mark.parametrize("parallel", [False, True])
def test_partly_observed_steps_against_dense_conditioning(parallel):
    # A strongly correlated R: R_oo⁻¹ is not the observed block of R⁻¹.
    correlated = 0.5 * np.array([[1.0, 0.6, 0.3], [0.6, 1.0, -0.5], [0.3, -0.5, 1.0]])
    params = random_params(5, l=2, d=3, u=1)._replace(emission_covariance=correlated)
    pairs, data = partly_observed_data(6)
    model = jaxem.models.lgssm(2, n_inputs=1, parallel=parallel)
    per_sequence = jaxem.score_samples(model, params, data)
    post = jaxem.posterior(model, params, data)
    for b, (x, u) in enumerate(pairs):
        log_lik, mean, cov, cross = dense_reference(params, x, u)
        t = len(x)
        np.testing.assert_allclose(per_sequence[b], log_lik, rtol=1e-10)
        np.testing.assert_allclose(post.means[b, :t], mean, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(post.covariances[b, :t], cov, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(post.cross_covariances[b, :t], cross, rtol=1e-9, atol=1e-10)


def test_partly_observed_em_is_monotone_and_its_m_step_is_the_complete_data_one():
    truth = random_params(7, l=2, d=3)._replace(
        emission_covariance=0.5 * np.array([[1.0, 0.6, 0.3], [0.6, 1.0, -0.5], [0.3, -0.5, 1.0]])
    )
    model = jaxem.models.lgssm(2)
    rng = np.random.default_rng(8)
    xs = []
    for k, n in enumerate([70, 40]):
        x = np.array(jaxem.sample(model, truth, jax.random.key(k), n)[0])
        x[rng.random(x.shape) < 0.3] = np.nan  # about 30% of the entries, many steps partly observed
        xs.append(x)
    data = jaxem.Sequences.from_list(xs)
    params = jaxem.init(model, 0, data)
    lls = []
    for _ in range(25):
        params, ll = jaxem.em_step(model, params, data)
        lls.append(float(ll))
    assert np.all(np.diff(lls) >= -1e-9 * abs(lls[-1]))
    assert lls[-1] > lls[0] + 1.0
    # The M-step maximizes the expected complete-data log-likelihood (missing
    # coordinates latent): one step's R and H beat nearby ones in that function.
    x = np.asarray(xs[0])
    one = jaxem.models.lgssm(2)
    new, _ = jaxem.em_step(one, params, x)
    post = jaxem.posterior(one, params, x)

    def expected_emission_log_lik(emission, noise):
        total = 0.0
        for t in range(len(x)):
            o = ~np.isnan(x[t])
            if not o.any():
                continue
            m = ~o
            mean_z, cov_z = np.asarray(post.means[0, t]), np.asarray(post.covariances[0, t])
            r = np.asarray(params.emission_covariance)
            h = np.asarray(params.emission)
            # x_t's moments given x_o under the current parameters (the E-step).
            gain = r[np.ix_(m, o)] @ np.linalg.inv(r[np.ix_(o, o)])
            a = np.zeros(3)
            c = np.zeros((3, 2))
            a[o] = x[t, o]
            a[m] = gain @ x[t, o]
            c[m] = h[m] - gain @ h[o]
            s = np.zeros((3, 3))
            s[np.ix_(m, m)] = r[np.ix_(m, m)] - gain @ r[np.ix_(o, m)]
            ex = a + c @ mean_z
            exx = np.outer(ex, ex) + c @ cov_z @ c.T + s
            exz = np.outer(ex, mean_z) + c @ cov_z
            ezz = cov_z + np.outer(mean_z, mean_z)
            inv = np.linalg.inv(noise)
            resid = exx - exz @ emission.T - emission @ exz.T + emission @ ezz @ emission.T
            total += -0.5 * (np.trace(inv @ resid) + np.linalg.slogdet(noise)[1])
        return total

    best = expected_emission_log_lik(np.asarray(new.emission), np.asarray(new.emission_covariance))
    step_rng = np.random.default_rng(9)
    for _ in range(5):
        bumped_h = np.asarray(new.emission) + 1e-3 * step_rng.normal(size=(3, 2))
        bump = 1e-3 * step_rng.normal(size=(3, 3))
        bumped_r = np.asarray(new.emission_covariance) + bump @ bump.T
        assert best > expected_emission_log_lik(bumped_h, np.asarray(new.emission_covariance))
        assert best > expected_emission_log_lik(np.asarray(new.emission), bumped_r)


@pytest.mark.slow
def test_parallel_equals_sequential_on_sequences_of_different_lengths():
    params = random_params(10, l=3, d=2, u=1)
    rng = np.random.default_rng(11)
    lengths = [37, 1, 16, 9]
    xs = [rng.normal(size=(n, 2)) for n in lengths]
    xs[0][5] = np.nan
    xs[2][3, 1] = np.nan
    inputs = np.zeros((4, 37, 1))
    for b, n in enumerate(lengths):
        inputs[b, :n] = rng.normal(size=(n, 1))
    data = (jaxem.Sequences.from_list(xs), inputs)
    sequential = jaxem.models.lgssm(3, n_inputs=1)
    parallel = jaxem.models.lgssm(3, n_inputs=1, parallel=True)
    np.testing.assert_allclose(
        jaxem.score_samples(parallel, params, data), jaxem.score_samples(sequential, params, data), rtol=1e-10
    )
    post_s, post_p = jaxem.posterior(sequential, params, data), jaxem.posterior(parallel, params, data)
    for got, want in zip(post_p, post_s):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    step_s, ll_s = jaxem.em_step(sequential, params, data)
    step_p, ll_p = jaxem.em_step(parallel, params, data)
    np.testing.assert_allclose(ll_p, ll_s, rtol=1e-10)
    for got, want in zip(step_p, step_s):
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


@pytest.mark.slow
def test_parallel_float32_agrees_with_float64():
    assert_float32_agrees_with_float64(jaxem.models.lgssm(2, parallel=True), random_params(12, l=2, d=2), 1, 5000)


def test_whole_step_mask_equals_the_per_entry_mask():
    """Data with only whole missing steps is prepared with a [B, T, 1] mask (one
    factor of R for all steps); the per-entry [B, T, D] path gives the same
    log-likelihood, moments and EM step (float64, 1e-12)."""
    params = random_params(11, l=2, d=3, u=1)
    model = jaxem.models.lgssm(2, n_inputs=1)
    rng = np.random.default_rng(12)
    x = rng.normal(size=(60, 3))
    x[rng.random(60) < 0.25] = np.nan  # whole steps
    data = model.prepare((x, rng.normal(size=(60, 1))))
    assert data.observed.shape == (1, 60, 1)
    per_entry = data._replace(observed=jnp.broadcast_to(data.observed, data.obs.shape))
    for a, b in [
        (jaxem.log_likelihood(model, params, data), jaxem.log_likelihood(model, params, per_entry)),
        (jaxem.posterior(model, params, data).covariances, jaxem.posterior(model, params, per_entry).covariances),
        (jaxem.em_step(model, params, data)[0], jaxem.em_step(model, params, per_entry)[0]),
    ]:
        for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
            np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-12, atol=1e-12)
