"""Numerics of the exponential-family fast path.

- float32 on data offset by 1e4 matches float64 (the features are standardized once);
- the fast path (features once, one matmul) equals a generic model written directly
  from Gaussian log densities and textbook M-step formulas, and scipy's densities
  for the Poisson, categorical and Bernoulli families (float64).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import jaxem
from jaxem._src import families
from tests.helpers import blobs


def test_float32_on_offset_data_matches_float64():
    x, *_ = blobs(9, n=2000)
    x32 = (x + 1e4).astype(np.float32)
    x64 = x32.astype(np.float64)  # the same numbers: only the arithmetic differs
    model = jaxem.models.gaussian_mixture(3, covariance_type="full")
    start = jaxem.init(model, 0, x64)
    r64 = jaxem.fit(model, x64, key=0, init_params=start, max_iter=30, tol=0.0)
    r32 = jaxem.fit(model, x32, key=0, init_params=start, max_iter=30, tol=0.0)
    assert r32.log_likelihood.dtype == jnp.float32
    n = x.shape[0]
    per_sample = np.abs(np.asarray(r32.history[0], np.float64) - np.asarray(r64.history[0])) / n
    assert per_sample.max() < 1e-4, per_sample.max()
    assert abs(float(r32.log_likelihood) - float(r64.log_likelihood)) / n < 1e-4
    # (per-sample log densities differ by up to ~5e-4: a float32 mean near 1e4 is
    # itself only stored to ±5e-4, so only the mean over samples is compared)
    np.testing.assert_allclose(np.asarray(r32.params.means, np.float64), np.asarray(r64.params.means), atol=2e-3)


class _Params(NamedTuple):
    weights: jax.Array
    means: jax.Array
    precisions_cholesky: jax.Array


def _direct_gaussian_mixture(k: int, covariance_type: str) -> jaxem.Model:
    """A generic model: log N(x | μ, Σ) from a Cholesky of Σ, and the M-step by the
    textbook weighted means and covariances (no features, no natural parameters)."""

    def covariance(params):
        u = params.precisions_cholesky
        if covariance_type == "diag":
            return jax.vmap(jnp.diag)(1.0 / (u * u))
        precision = jnp.einsum("kij,klj->kil", u, u)
        return jnp.linalg.inv(precision)

    def log_joint(params, x):
        lower = jnp.linalg.cholesky(covariance(params))
        diff = x[None, :, :] - params.means[:, None, :]
        z = jax.vmap(lambda l, r: jax.scipy.linalg.solve_triangular(l, r.T, lower=True).T)(lower, diff)
        log_det = jnp.sum(jnp.log(jnp.diagonal(lower, axis1=1, axis2=2)), axis=1)
        d = x.shape[1]
        log_pdf = -0.5 * jnp.sum(z * z, axis=2) - log_det[:, None] - 0.5 * d * jnp.log(2.0 * jnp.pi)
        return (log_pdf + jnp.log(params.weights)[:, None]).T

    def m_step(x, posterior, params):
        counts = jnp.sum(posterior, axis=0) + 10.0 * jnp.finfo(x.dtype).eps
        means = (posterior.T @ x) / counts[:, None]
        diff = x[None, :, :] - means[:, None, :]
        cov = jnp.einsum("nk,kni,knj->kij", posterior, diff, diff) / counts[:, None, None]
        cov = cov + 1e-6 * jnp.eye(x.shape[1])[None, :, :]
        if covariance_type == "diag":
            factor = 1.0 / jnp.sqrt(jnp.diagonal(cov, axis1=1, axis2=2))
        else:
            factor = jnp.swapaxes(jnp.linalg.inv(jnp.linalg.cholesky(cov)), 1, 2)
        return _Params(counts / jnp.sum(counts), means, factor)

    return jaxem.Model(init=None, log_joint=log_joint, latent=jaxem.mixture_latent(), m_step=m_step)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_fast_path_equals_direct_gaussian_computation(covariance_type):
    x, *_ = blobs(10, n=500)
    fast = jaxem.models.gaussian_mixture(3, covariance_type=covariance_type)
    direct = _direct_gaussian_mixture(3, covariance_type)
    params = jaxem.init(fast, 0, x)
    p_fast = params
    p_direct = _Params(*params)
    for _ in range(10):
        p_fast, ll_fast = jaxem.em_step(fast, p_fast, x)
        p_direct, ll_direct = jaxem.em_step(direct, p_direct, jnp.asarray(x))
        np.testing.assert_allclose(float(ll_fast), float(ll_direct), rtol=1e-10)
    for a, b in zip(p_fast, p_direct):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-9)


class _CountParams(NamedTuple):
    weights: jax.Array
    probs: jax.Array


class _RateParams(NamedTuple):
    weights: jax.Array
    rates: jax.Array


def _mixture(family):
    return jaxem.exponential_family_mixture(family, init=None, check=lambda data, params=None: None)


def test_count_families_equal_scipy_densities():
    rng = np.random.default_rng(0)
    weights = jnp.asarray([0.2, 0.5, 0.3])
    log_w = np.log(np.asarray(weights))

    counts = rng.poisson(3.0, size=(50, 4)).astype(np.float64)
    rates = rng.uniform(0.5, 6.0, size=(3, 4))
    model = _mixture(families.poisson_family())
    ours = model.log_joint(_RateParams(weights, jnp.asarray(rates)), model.prepare(counts))
    ref = np.stack([log_w[k] + scipy.stats.poisson.logpmf(counts, rates[k]).sum(axis=1) for k in range(3)], axis=1)
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-10)

    totals = rng.multinomial(7, [0.1, 0.2, 0.3, 0.4], size=50).astype(np.float64)
    probs = rng.dirichlet(np.ones(4), size=3)
    model = _mixture(families.categorical_family())
    ours = model.log_joint(_CountParams(weights, jnp.asarray(probs)), model.prepare(totals))
    ref = np.stack([log_w[k] + scipy.stats.multinomial.logpmf(totals, 7, probs[k]) for k in range(3)], axis=1)
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-10)

    bits = (rng.uniform(size=(50, 5)) < 0.4).astype(np.float64)
    probs = rng.uniform(0.05, 0.95, size=(3, 5))
    model = _mixture(families.bernoulli_family())
    ours = model.log_joint(_CountParams(weights, jnp.asarray(probs)), model.prepare(bits))
    ref = np.stack([log_w[k] + scipy.stats.bernoulli.logpmf(bits, probs[k]).sum(axis=1) for k in range(3)], axis=1)
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-10)
