"""The Gaussian latent structure: log-partition and its gradient (the posterior
moments) against closed forms computed with explicit NumPy inverses in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxem
from jaxem._src.gaussian_latent import (
    GaussianPotentials,
    gaussian_latent,
    gaussian_log_partition,
    gaussian_mixture_latent,
)


def random_potentials(seed, batch, size):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=batch + (size, size))
    j = a @ np.swapaxes(a, -1, -2) + size * np.eye(size)
    h = rng.normal(size=batch + (size,))
    c = rng.normal(size=batch)
    return GaussianPotentials(h, j, c)


def reference(p):
    """Closed form with NumPy inverses: (log-partition, mean, E[zzᵀ], covariance)."""
    cov = np.linalg.inv(p.J)
    mean = np.einsum("...ij,...j->...i", cov, p.h)
    size = p.h.shape[-1]
    log_z = p.c + 0.5 * np.einsum("...i,...i->...", p.h, mean) - 0.5 * np.linalg.slogdet(p.J)[1] + 0.5 * size * np.log(2 * np.pi)
    second = cov + mean[..., :, None] * mean[..., None, :]
    return log_z, mean, second, cov


def test_log_partition_matches_closed_form_and_1d_quadrature():
    p = random_potentials(0, (5,), 3)
    np.testing.assert_allclose(gaussian_log_partition(p), reference(p)[0], rtol=1e-12)
    # L = 1: against numerical integration of exp(hz - Jz²/2 + c).
    grid = np.linspace(-30, 30, 200001)
    one = GaussianPotentials(np.array([0.7]), np.array([[1.9]]), np.array(-0.3))
    integral = np.trapezoid(np.exp(0.7 * grid - 0.5 * 1.9 * grid**2 - 0.3), grid)
    np.testing.assert_allclose(gaussian_log_partition(one), np.log(integral), rtol=1e-10)


def test_gradient_is_posterior_moments():
    p = random_potentials(1, (4,), 3)
    _, mean, second, cov = reference(p)
    grad = jax.grad(lambda q: jnp.sum(gaussian_latent().log_marginal(q, None)))(jax.tree_util.tree_map(jnp.asarray, p))
    np.testing.assert_allclose(grad.h, mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(-2.0 * grad.J, second, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad.c, np.ones(4), rtol=1e-12)
    posterior = gaussian_latent().marginals(grad)
    np.testing.assert_allclose(posterior.means, mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(posterior.covariances, cov, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gaussian_latent().decode(p, None), mean, rtol=1e-10, atol=1e-12)


def test_mixture_gradient_is_responsibilities_and_component_moments():
    p = random_potentials(2, (6, 3), 2)
    log_z, mean, _, cov = reference(p)
    latent = gaussian_mixture_latent()
    expected = np.logaddexp.reduce(log_z, axis=1)
    np.testing.assert_allclose(latent.log_marginal(p, None), expected, rtol=1e-12)
    grad = jax.grad(lambda q: jnp.sum(latent.log_marginal(q, None)))(jax.tree_util.tree_map(jnp.asarray, p))
    posterior = latent.marginals(grad)
    resp = np.exp(log_z - expected[:, None])
    np.testing.assert_allclose(posterior.responsibilities, resp, rtol=1e-10)
    np.testing.assert_allclose(posterior.means, mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(posterior.covariances, cov, rtol=1e-8, atol=1e-12)
    best, z_mean = latent.decode(p, None)
    np.testing.assert_array_equal(best, np.argmax(log_z, axis=1))
    np.testing.assert_allclose(z_mean, mean[np.arange(6), np.argmax(log_z, axis=1)], rtol=1e-10)


def test_float32_agrees_with_float64():
    p = random_potentials(3, (50,), 4)
    p32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), p)
    out = gaussian_log_partition(p32)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, reference(p)[0], rtol=2e-5, atol=2e-5)


def test_exported():
    assert jaxem.gaussian_latent is gaussian_latent
    assert jaxem.GaussianPotentials is GaussianPotentials
    with pytest.raises(TypeError):
        jaxem.gaussian_latent(3)
