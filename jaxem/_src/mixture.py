"""Finite mixtures of any ``Component``: the generic builder behind the mixture models.

The log-potentials, the M-step and everything chunking, sharding and streaming
need come from the component's ``ExpFamily`` (``exponential_family_mixture``);
this module adds what every such mixture does the same way: seeding and the M-step
of the seeded responsibilities, the checks of data and params,
sampling and the parameter count.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jaxem._src import buckets, seeding, validation
from jaxem._src.base import Array, Model
from jaxem._src.component import MIXTURE_ROLE, Component, check_params_type, is_prepared
from jaxem._src.families import dirichlet
from jaxem._src.expfam import exponential_family_mixture, expected_stats, mixture_m_step, mixture_weights


def component_mixture(
    component: Component,
    n_components: int,
    *,
    params_type: type,
    seed: Callable[..., Array] = seeding.SEEDERS["kmeans++"],
    weights_prior=None,
) -> Model:
    """A mixture of ``n_components`` densities of ``component``.

    Args:
      component: the family (e.g. ``jaxem._src.families.poisson.component("rates")``).
      n_components: K.
      params_type: the params NamedTuple: a ``weights [K]`` field plus the
        component's fields.
      seed: ``(key, points [N, P], K, present [N]) -> responsibilities [N, K]``
        (``present`` is ``False`` on padding rows, which it must not draw), the seeding of
        ``init`` (one of ``seeding.SEEDERS``: one-hot on the nearest k-means++,
        k-means or random-row centre, or random responsibilities).
      weights_prior: optional Dirichlet concentration of the weights (``>= 1``,
        a scalar or ``[K]``, checked by ``dirichlet.check_concentration``). With
        it, or a prior in ``component``'s family, EM is MAP-EM
        (``jaxem/_src/priors.py``).

    Returns:
      A ``Model`` whose ``init`` takes the M-step of the seeded responsibilities.

    Examples:
      >>> from jaxem._src.families import poisson
      >>> model = jaxem.component_mixture(poisson.component("rates"), 2,
      ...                                 params_type=jaxem.models.PoissonMixtureParams)
      >>> counts = np.random.default_rng(0).poisson([[2.0], [9.0]] * 50)
      >>> result = jaxem.fit(model, counts, key=0, n_restarts=2)
      >>> result.params.rates.shape
      (2, 1)
    """
    family = component.family
    n_rows = mixture_m_step(family).n_rows
    role = MIXTURE_ROLE

    @buckets.skips_padding
    def init(key: Array, features) -> object:
        points = component.seed_points(features)
        present = features.stats[:, 0] > 0  # padding rows (buckets.py) have zero statistics
        statistics = expected_stats(seed(key, points, n_components, present), features.stats)
        dtype = features.stats.dtype
        template = params_type(
            weights=jnp.zeros((n_components,), dtype),
            **component.zeros(n_components, component.n_features(features), dtype),
        )
        # a template of ones: the M-step keeps exact zeros of the params it is given
        params = family.maximize(statistics, features, jax.tree_util.tree_map(jnp.ones_like, template))
        return params._replace(weights=mixture_weights(statistics[:, 0]))

    def check(data, params=None):
        if is_prepared(data, component.features_type, role.data):
            features = family.prepare(data)  # checks that they fit this model
            checked, n, d = None, n_rows(features), component.n_features(features)
        else:
            checked, n, d = component.check_data(data, role)
            if validation.is_concrete(checked):
                component.check_values(checked, role.data)
        if params is None:
            validation.check_n_components(n_components, n)
            return
        check_mixture_params(params, d, component, params_type, n_components)
        if checked is not None and validation.is_concrete((checked, params)):
            component.check_evaluable(params, checked)

    def sample(key: Array, params, n: int):
        check_mixture_params(params, None, component, params_type, n_components)
        z_key, x_key = jax.random.split(key)
        z = jax.random.categorical(z_key, jnp.log(params.weights), shape=(n,))
        dtype = params.weights.dtype
        x = jax.tree_util.tree_map(lambda draws: draws.astype(dtype), component.draw(x_key, params, z))
        return x, z

    def n_parameters(params) -> int:
        return component.n_parameters(params) + n_components - 1

    def log_prior(params):
        total = dirichlet.log_density(params.weights, weights_prior)
        if family.log_prior is not None:
            total = total + family.log_prior(params).astype(total.dtype)
        return total

    has_prior = weights_prior is not None or family.log_prior is not None
    return exponential_family_mixture(
        family,
        init=init,
        check=check,
        sample=sample,
        n_parameters=n_parameters,
        weights_prior=weights_prior,
        log_prior=log_prior if has_prior else None,
    )


def check_mixture_params(params, d, component: Component, params_type: type, n_components: int) -> None:
    """Type, component fields (``d`` features, or ``None`` when unknown) and weights of mixture params."""
    check_params_type(params, params_type)
    component.check_params(params, n_components, d, MIXTURE_ROLE)
    check_weights(params.weights, n_components)


def check_weights(weights, k: int) -> None:
    """``params.weights``: shape ``[K]``; when concrete, non-negative and summing to one."""
    if tuple(jnp.shape(weights)) != (k,):
        raise ValueError(f"params.weights must have shape ({k},), got {jnp.shape(weights)}")
    validation.check_param_values(weights, "weights", simplex=True)
