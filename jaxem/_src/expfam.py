"""Exponential-family components: the fast path.

When every component density has the form

    log p(x | z=k) = T(x) · η_k − A(η_k) + h(x),

the data's sufficient-statistic features ``T(x)`` are computed once per fit
(``prepare``). With a leading column of ones in ``T(x)`` that carries
``log π_k − A(η_k)``, a mixture's ``[N, K]`` log-potentials are *one* matrix product
``T(x) @ coefficients.T``, and the expected sufficient statistics the M-step needs
are *one* more, ``posterior.T @ T(x)`` (whose first column is the expected counts).
Those statistics are additive over rows, so the M-step is an ``AdditiveMStep``:
chunking, sharding and streaming apply to every such mixture.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxem._src.base import AdditiveMStep, Array, Model, mixture_latent
from jaxem._src.chunking import per_row_slicer


class ExpFamily(NamedTuple):
    """A family of component densities in exponential-family form.

    Attributes:
      prepare: ``x -> features``, a NamedTuple with at least ``stats: [..., F]``,
        whose column 0 is all ones. Returns its own features unchanged and
        refuses another family's (``ValueError``).
      coefficients: ``(params, features) -> [K, F]``, the natural parameters of each
        component against ``stats``, with column 0 holding ``h - A(η_k)``
        (everything that does not multiply a statistic).
      maximize: ``(expected_stats [K, F], features, params) -> params``, the
        closed-form M-step for the component fields of ``params`` given expected
        sufficient statistics (column 0: expected counts).
      prepare_like: ``(x, reference) -> features`` in the coordinates of
        ``reference`` (for families whose ``prepare`` standardizes), or ``None``
        when ``prepare`` does not depend on the rest of the data.
      per_row: the fields of the features with one entry per row (axis 0); the
        others (a standardization) are shared by all rows.
      log_prior: ``params -> scalar``, the log density of the family's conjugate
        prior at the component fields (up to a constant), or ``None`` without a
        prior; ``maximize`` is then the MAP M-step (``jaxem/_src/priors.py``).
      log_densities: ``(params, features, offsets=None) -> [..., K]`` component
        log-densities plus ``offsets [K]`` (a mixture's log weights) when given, or
        ``None`` for ``stats @ coefficients(params, features).T``.
      statistics: ``(features, posterior [..., K], params) -> statistics``, the
        expected statistics ``maximize`` takes, or ``None`` for ``posteriorᵀ @
        stats``. ``params`` (the params of the E-step) may be ``None``: then the
        plain ``[K, F]``, which ``maximize`` must also accept (e.g. for seeding).
      prepare_for: ``(params, x) -> features`` standardized as ``params`` say
        (each row independently of the others: for scoring), or ``None`` when
        ``prepare`` does not standardize.
    """

    prepare: Callable[[Any], Any]
    coefficients: Callable[[Any, Any], Array]
    maximize: Callable[[Array, Any, Any], Any]
    prepare_like: Optional[Callable[[Any, Any], Any]] = None
    per_row: tuple = ("stats", "x")
    log_prior: Optional[Callable[[Any], Array]] = None
    log_densities: Optional[Callable[[Any, Any], Array]] = None
    statistics: Optional[Callable[[Any, Array, Any], Array]] = None
    prepare_for: Optional[Callable[[Any, Any], Any]] = None


def family_log_densities(family: ExpFamily, params, features) -> Array:
    """``[..., K]`` component log-densities (``family.log_densities`` or the product)."""
    if family.log_densities is not None:
        return family.log_densities(params, features)
    coefficients = family.coefficients(params, features)
    return features.stats @ coefficients.T.astype(features.stats.dtype)


def family_statistics(family: ExpFamily, features, posterior: Array, params=None) -> Array:
    """Expected statistics for ``family.maximize`` (``family.statistics`` or
    ``posteriorᵀ @ stats`` over all leading axes)."""
    if family.statistics is not None:
        return family.statistics(features, posterior, params)
    stats = features.stats.reshape(-1, features.stats.shape[-1])
    return expected_stats(posterior.reshape(-1, posterior.shape[-1]).astype(stats.dtype), stats)


def prepare_like(family: ExpFamily, x, reference):
    """Features of ``x`` in the same coordinates as ``reference`` (prepared features).

    Families whose ``prepare`` standardizes the data (the Gaussian) give
    ``prepare_like``, so that statistics of several chunks of data can be added;
    for the others ``prepare`` does not depend on the rest of the data.
    """
    if family.prepare_like is None:
        return family.prepare(x)
    return family.prepare_like(x, reference)


def expected_stats(posterior: Array, stats: Array) -> Array:
    """``[K, F]`` expected sufficient statistics ``posteriorᵀ @ T(x)``.

    Args:
      posterior: ``[N, K]`` (weighted) responsibilities.
      stats: ``[N, F]`` sufficient-statistic features.

    Examples:
      >>> posterior = jnp.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])   # [N, K]
      >>> stats = jnp.array([[1.0, 2.0], [1.0, 4.0], [1.0, 6.0]])       # [N, F]: [1, x]
      >>> np.asarray(jaxem.expected_stats(posterior, stats)).tolist()   # [K, F]: counts, sums
      [[1.5, 4.0], [1.5, 8.0]]
    """
    return posterior.T @ stats


def ones_column(x: Array) -> Array:
    """``[..., 1]`` ones in ``x``'s dtype: column 0 of every family's features."""
    return jnp.ones(x.shape[:-1] + (1,), x.dtype)


def tiny_count(dtype) -> float:
    """The pseudo-count added to every component's expected count (10 eps)."""
    return 10.0 * float(jnp.finfo(dtype).eps)


def mixture_weights(counts: Array, previous: Optional[Array] = None) -> Array:
    """``[K]`` mixing weights from expected counts, with a tiny pseudo-count.

    Where ``previous`` (the weights before the step) is exactly zero the weight
    stays zero: a structural zero, like a ``transition_mask`` zero.
    """
    counts = counts + tiny_count(counts.dtype)
    if previous is not None:
        counts = jnp.where(previous > 0, counts, jnp.zeros_like(counts))
    return counts / jnp.sum(counts)


def impossible_log(dtype) -> float:
    """A finite stand-in for ``log 0`` in natural coefficients, ``-sqrt(max)`` of
    ``dtype``: a structural zero probability multiplies a zero feature (``0 · -inf``
    would be NaN), and one observed count of it puts the row ~``-1.8e19`` (float32)
    below every possible explanation, so its posterior weight is exactly 0."""
    return -math.sqrt(float(jnp.finfo(dtype).max))


def log_probabilities(probs: Array) -> Array:
    """``log probs`` elementwise, with exact zeros mapped to ``impossible_log``."""
    positive = probs > 0
    safe = jnp.where(positive, probs, jnp.ones_like(probs))
    return jnp.where(positive, jnp.log(safe), jnp.full_like(probs, impossible_log(probs.dtype)))


def mixture_m_step(family: ExpFamily, weights_prior=None) -> AdditiveMStep:
    """The ``AdditiveMStep`` of a mixture of ``family``: statistics
    ``posteriorᵀ @ T(x)``, the family's maximizer for the components and the
    expected counts (column 0) for the weights, plus ``α − 1`` pseudo-counts for
    a Dirichlet ``weights_prior`` (concentration ``α >= 1``, checked; MAP)."""

    def statistics(features, posterior, params=None):
        return family_statistics(family, features, posterior, params)

    def maximize(stats, features, params):
        params = family.maximize(stats, features, params)
        counts = stats[:, 0]
        if weights_prior is not None:
            counts = counts + jnp.broadcast_to(jnp.asarray(weights_prior, counts.dtype) - 1.0, counts.shape)
        return params._replace(weights=mixture_weights(counts, params.weights))

    def prepare_chunk(x, reference):
        return prepare_like(family, x, reference)

    return AdditiveMStep(
        statistics=statistics,
        maximize=maximize,
        rows=per_row_slicer(family.per_row),
        per_row=family.per_row,
        prepare_like=prepare_chunk,
    )


def exponential_family_mixture(
    family: ExpFamily,
    *,
    init: Callable,
    check: Callable,
    sample: Callable | None = None,
    n_parameters: Callable | None = None,
    weights_prior=None,
    log_prior: Callable | None = None,
) -> Model:
    """A finite mixture whose components are in ``family``.

    ``params`` must be a NamedTuple with a ``weights [K]`` field plus the
    component fields ``family`` reads and writes. With a prior (MAP-EM),
    ``weights_prior`` is the weights' Dirichlet concentration (or ``None``) and
    ``log_prior`` the whole params' log prior density (``jaxem.component_mixture``
    builds both).

    Examples:
      >>> model = jaxem.models.poisson_mixture(2)                 # built this way
      >>> model.m_step is not None
      True
    """

    def log_joint(params, features) -> Array:
        if family.log_densities is not None:
            return family.log_densities(params, features, jnp.log(params.weights))
        coefficients = family.coefficients(params, features)
        log_weights = jnp.log(params.weights).astype(coefficients.dtype)
        coefficients = coefficients.at[:, 0].add(log_weights)
        return features.stats @ coefficients.T.astype(features.stats.dtype)

    return Model(
        init=init,
        log_joint=log_joint,
        latent=mixture_latent(),
        m_step=mixture_m_step(family, weights_prior),
        prepare=family.prepare,
        prepare_for=family.prepare_for,
        check=check,
        sample=sample,
        n_parameters=n_parameters,
        log_prior=log_prior,
    )


def hard_assignment_stats(stats: Array, labels: Array, n_components: int) -> Array:
    """Expected statistics for a hard assignment of each row to ``labels [N]``."""
    one_hot = jax.nn.one_hot(labels, n_components, dtype=stats.dtype)
    return expected_stats(one_hot, stats)
