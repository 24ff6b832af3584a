"""The Gaussian latent structure: one continuous z per item, in information form.

A Gaussian latent's log-potentials are ``GaussianPotentials(h [..., L],
J [..., L, L], c [...])``: ``log p(x, z; θ) = hᵀz − ½ zᵀJz + c`` as a function of
``z ∈ R^L``. Its log-partition is

    log p(x; θ) = ½ hᵀJ⁻¹h − ½ log det J + (L/2) log 2π + c,

computed from a Cholesky factor ``J = UUᵀ`` (``v = U⁻¹h`` by a triangular solve:
``½ |v|² − Σ log diag U``), never an inverse. Its gradient with respect to the
potentials is the posterior's expected sufficient statistics:

* ``h``: ``E[z | x]``;
* ``J``: ``−½ E[zzᵀ | x]`` (symmetric: ``J`` is symmetrized before factoring);
* ``c``: ``1`` (the item's weight, when the E-step is weighted).

So ``jaxem.e_step`` needs nothing new, and ``marginals`` reads the posterior means
and covariances off that gradient (dividing by the ``c`` gradient, so weighted
gradients give the same moments).

``gaussian_mixture_latent`` is a discrete and a continuous latent together
(mixtures of factor analyzers): potentials ``[N, K, ...]``, one Gaussian
log-partition per component, ``logsumexp`` over the ``K`` components; the ``c``
gradient is then the responsibilities.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxem._src.base import Array, Latent


class GaussianPotentials(NamedTuple):
    """Gaussian log-potentials in information form (and, as a gradient, moments).

    Attributes:
      h: ``[..., L]`` linear coefficients.
      J: ``[..., L, L]`` precision (symmetric positive definite).
      c: ``[...]`` constant (the parts of log p(x, z) that do not involve z).
    """

    h: Array
    J: Array
    c: Array


class GaussianPosterior(NamedTuple):
    """What ``jaxem.posterior`` returns for a Gaussian latent.

    Attributes:
      means: ``[N, L]`` (``[N, K, L]`` for a mixture) ``E[z | x]``.
      covariances: ``[N, L, L]`` (``[N, K, L, L]``) ``Cov[z | x]``.
      responsibilities: ``[N, K]`` for a mixture, else ``None``.
    """

    means: Array
    covariances: Array
    responsibilities: Array = None


def symmetric(matrix: Array) -> Array:
    """``(A + Aᵀ) / 2`` over the last two axes."""
    return 0.5 * (matrix + jnp.swapaxes(matrix, -1, -2))


def gaussian_log_partition(potentials: GaussianPotentials) -> Array:
    """``[...]`` log ∫ exp(hᵀz − ½ zᵀJz + c) dz, by a Cholesky factor of ``J``.

    Examples:
      >>> p = GaussianPotentials(jnp.ones((3, 2)), jnp.broadcast_to(2.0 * jnp.eye(2), (3, 2, 2)), jnp.zeros(3))
      >>> gaussian_log_partition(p).shape
      (3,)
    """
    h, precision, c = potentials
    factor = jnp.linalg.cholesky(symmetric(precision))
    whitened = jax.scipy.linalg.solve_triangular(factor, h[..., None], lower=True)[..., 0]
    return c + log_integral(factor, whitened)


def log_integral(factor: Array, whitened: Array) -> Array:
    """``[...]`` log ∫ exp(hᵀz − ½ zᵀJz) dz from ``J``'s lower Cholesky factor
    ``factor [..., L, L]`` and ``whitened = factor⁻¹ h [..., L]``:
    ``½|whitened|² − log|factor| + (L/2) log 2π``."""
    size = factor.shape[-1]
    log_det_half = jnp.sum(jnp.log(jnp.diagonal(factor, axis1=-2, axis2=-1)), axis=-1)
    return 0.5 * jnp.sum(whitened * whitened, axis=-1) - log_det_half + 0.5 * size * math.log(2 * math.pi)


def posterior_mean(potentials: GaussianPotentials) -> Array:
    """``[..., L]`` the mean (= mode) ``J⁻¹h``, by two triangular solves."""
    factor = jnp.linalg.cholesky(symmetric(potentials.J))
    return jax.scipy.linalg.cho_solve((factor, True), potentials.h[..., None])[..., 0]


def moments(gradient: GaussianPotentials) -> tuple[Array, Array, Array]:
    """``(weight [...], E[z] [..., L], E[zzᵀ] [..., L, L])`` from the gradient of a
    (weighted) log-partition; items of zero weight get zero moments."""
    weight = gradient.c
    safe = jnp.where(weight > 0, weight, jnp.ones_like(weight))
    mean = gradient.h / safe[..., None]
    second = -2.0 * symmetric(gradient.J) / safe[..., None, None]
    return weight, mean, second


def _covariances(mean: Array, second: Array) -> Array:
    return symmetric(second - mean[..., :, None] * mean[..., None, :])


def _gaussian_marginals(gradient: GaussianPotentials) -> GaussianPosterior:
    _, mean, second = moments(gradient)
    return GaussianPosterior(mean, _covariances(mean, second))


def _mixture_marginals(gradient: GaussianPotentials) -> GaussianPosterior:
    weight, mean, second = moments(gradient)
    return GaussianPosterior(mean, _covariances(mean, second), weight)


def _ones(potentials, data):
    del data
    return jnp.ones(potentials.c.shape[:1], potentials.c.dtype)


def _log_marginal(potentials, data):
    del data
    return gaussian_log_partition(potentials)


def _decode(potentials, data):
    del data
    return posterior_mean(potentials)


def _mixture_log_marginal(potentials, data):
    del data
    return jax.nn.logsumexp(gaussian_log_partition(potentials), axis=-1)


def _mixture_decode(potentials, data):
    """``(component [N], mean of z in that component [N, L])``."""
    del data
    best = jnp.argmax(gaussian_log_partition(potentials), axis=-1)
    means = posterior_mean(potentials)
    return best, jnp.take_along_axis(means, best[:, None, None], axis=1)[:, 0]


_GAUSSIAN_LATENT = Latent(log_marginal=_log_marginal, decode=_decode, marginals=_gaussian_marginals, sizes=_ones)
_GAUSSIAN_MIXTURE_LATENT = Latent(
    log_marginal=_mixture_log_marginal, decode=_mixture_decode, marginals=_mixture_marginals, sizes=_ones
)


def gaussian_latent() -> Latent:
    """The latent structure of one Gaussian ``z ∈ R^L`` per item.

    ``log_joint`` returns ``GaussianPotentials(h [N, L], J [N, L, L], c [N])``. The
    posterior (the gradient) is a ``GaussianPotentials`` of moments (see the module
    docstring); ``marginals`` returns ``GaussianPosterior(means, covariances)`` and
    ``decode`` the posterior means ``[N, L]``.

    Examples:
      >>> latent = jaxem.gaussian_latent()
      >>> p = jaxem.GaussianPotentials(jnp.ones((3, 2)), jnp.broadcast_to(2.0 * jnp.eye(2), (3, 2, 2)), jnp.zeros(3))
      >>> latent.log_marginal(p, None).shape
      (3,)
    """
    return _GAUSSIAN_LATENT


def gaussian_mixture_latent() -> Latent:
    """A component ``k`` and a Gaussian ``z ∈ R^L`` per item (``z`` given ``k``).

    ``log_joint`` returns ``GaussianPotentials(h [N, K, L], J [N, K, L, L],
    c [N, K])`` (``c`` including ``log π_k``); the log-partition is the ``logsumexp``
    over ``K`` of the Gaussian log-partitions. ``marginals`` returns
    ``GaussianPosterior(means [N, K, L], covariances [N, K, L, L],
    responsibilities [N, K])`` (moments of ``z`` given each component) and
    ``decode`` the pair ``(component [N], mean [N, L])``.

    Examples:
      >>> latent = jaxem.gaussian_mixture_latent()
      >>> j = jnp.broadcast_to(2.0 * jnp.eye(2), (3, 4, 2, 2))               # N = 3, K = 4, L = 2
      >>> p = jaxem.GaussianPotentials(jnp.ones((3, 4, 2)), j, jnp.log(jnp.full((3, 4), 0.25)))
      >>> latent.log_marginal(p, None).shape
      (3,)
    """
    return _GAUSSIAN_MIXTURE_LATENT
