"""The categorical (multinomial) family: counts over ``S`` categories, ``probs [K, S]``.

Data are counts ``x [..., S]`` (a one-hot row is a single categorical draw; rows
may have different totals). Features ``[1, log multinomial coefficient, x]``,
coefficients ``[0, 1, log p_k]``; M-step ``p_k ∝ Σ_n r_nk x_n + ε`` with the
``tiny_count`` pseudo-count ε, so no probability reaches 0. Exact zeros of the
params are structural zeros: their coefficient is ``impossible_log`` (finite, so
no ``0 · log 0``) and the M-step keeps them zero. Two components share
the family: ``counts_component`` (``categorical_mixture``, rows of counts) and
``symbols_component`` (``categorical_hmm``, one symbol per step, one-hot encoded).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import sequences, validation
from jaxem._src.base import Array
from jaxem._src.display import params_repr
from jaxem._src.component import Component, is_prepared, matrix_field
from jaxem._src.expfam import ExpFamily, log_probabilities, ones_column, tiny_count
from jaxem._src.families import dirichlet
from jaxem._src.families.poisson import check_counts
from jaxem._src.hmm import flat_dirichlet


class CategoricalFeatures(NamedTuple):
    """Prepared category counts.

    Attributes:
      stats: ``[..., 2 + S]`` features ``[1, log multinomial coefficient, x]``.
      x: ``[..., S]`` the counts as floats.
    """

    stats: Array
    x: Array


class CategoricalMixtureParams(NamedTuple):
    """Parameters of a categorical (multinomial) mixture.

    Attributes:
      weights: ``[K]`` mixing weights.
      probs: ``[K, S]`` category probabilities of each component (rows sum to 1).
    """

    weights: Array
    probs: Array

    __repr__ = params_repr


class CategoricalHMMParams(NamedTuple):
    """Parameters of a categorical HMM.

    Attributes:
      initial_probs: ``[K]`` initial state probabilities.
      transition_matrix: ``[K, K]``, row ``i`` is p(z_t = · | z_t-1 = i).
      emission_probs: ``[K, S]``, row ``k`` is p(x_t = · | z_t = k).
    """

    initial_probs: Array
    transition_matrix: Array
    emission_probs: Array

    __repr__ = params_repr


def categorical_family(field: str = "probs", prior=None) -> ExpFamily:
    """The categorical ``ExpFamily``, reading and writing ``params.<field> [K, S]``.

    ``prior``: an optional Dirichlet concentration (``>= 1``; a scalar, ``[S]`` or
    ``[K, S]``, checked by ``check_prior``) of every row: the MAP M-step is
    ``p_k ∝ Σ_n r_nk x_n + α_k − 1 + ε`` (hmmlearn's ``emissionprob_prior``).
    """

    def prepare(x):
        if is_prepared(x, CategoricalFeatures):
            return x
        x = validation.to_float(x)
        gammaln = jax.scipy.special.gammaln
        log_base = gammaln(jnp.sum(x, axis=-1, keepdims=True) + 1.0) - jnp.sum(
            gammaln(x + 1.0), axis=-1, keepdims=True
        )
        return CategoricalFeatures(jnp.concatenate([ones_column(x), log_base, x], axis=-1), x)

    def coefficients(params, features):
        probs = getattr(params, field).astype(features.stats.dtype)
        k = probs.shape[0]
        return jnp.concatenate([jnp.zeros((k, 1), probs.dtype), jnp.ones((k, 1), probs.dtype), log_probabilities(probs)], axis=1)

    def maximize(statistics, features, params):
        totals = statistics[:, 2:] + dirichlet.pseudo_counts(prior, statistics[:, 2:]) + tiny_count(statistics.dtype)
        # exact zeros of the current probs are structural: they stay zero
        totals = jnp.where(getattr(params, field) > 0, totals, jnp.zeros_like(totals))
        probs = totals / jnp.sum(totals, axis=1, keepdims=True)
        return params._replace(**{field: probs.astype(getattr(params, field).dtype)})

    def log_prior(params):
        return dirichlet.log_density(getattr(params, field), prior)

    return ExpFamily(
        prepare=prepare, coefficients=coefficients, maximize=maximize, log_prior=None if prior is None else log_prior
    )


def check_prior(prior, k: int, n_symbols=None, name: str = "prior"):
    """A categorical prior (Dirichlet concentration, broadcastable to ``[K, S]``)
    checked (``ValueError`` naming ``name``), or ``None``."""
    if prior is None:
        return None
    value = dirichlet.check_concentration(prior, name)
    if value.ndim > 2 or (value.ndim == 2 and value.shape[0] not in (1, k)) or (
        n_symbols is not None and value.ndim >= 1 and value.shape[-1] not in (1, n_symbols)
    ):
        expected = f"({k}, {'S' if n_symbols is None else n_symbols})"
        raise ValueError(f"{name} has shape {value.shape}, which does not broadcast to {expected}")
    return value


def counts_component(field: str = "probs", *, n_trials: int = 1, prior=None) -> Component:
    """The categorical ``Component`` on rows of counts ``[N, S]`` (``n_trials``
    draws per sampled row), with an optional checked Dirichlet ``prior``."""

    def draw(key, params, labels):
        probs = getattr(params, field)[labels]
        trials = jnp.full(probs.shape[:-1], n_trials, probs.dtype)
        return jax.random.multinomial(key, trials, probs, dtype=probs.dtype)

    def n_parameters(params) -> int:
        k, s = jnp.shape(getattr(params, field))
        return k * (s - 1)

    return Component(
        family=categorical_family(field, prior),
        features_type=CategoricalFeatures,
        **matrix_field(field, simplex=True),
        check_values=check_counts,
        draw=draw,
        n_parameters=n_parameters,
    )


def symbols_component(n_symbols: int, field: str = "emission_probs", prior=None) -> Component:
    """The categorical ``Component`` on symbols in ``[0, n_symbols)``, one per step
    (HMM observations ``[T]``), encoded one-hot. ``init_states`` draws every
    emission row from Dirichlet(1) (as hmmlearn's uniform rows normalized).
    ``prior``: an optional checked Dirichlet concentration of the emission rows."""

    def encode(obs, mask):
        # JAX's default float, read when traced: float64 inside an enable_x64 scope
        symbols = jnp.where(mask, obs, jnp.zeros_like(obs)).astype(jnp.int32)
        return jax.nn.one_hot(symbols, n_symbols, dtype=jnp.asarray(0.0).dtype)

    def check_values(values, name):
        values = np.asarray(values)
        if values.size and (np.any(values != np.round(values)) or values.min() < 0 or values.max() >= n_symbols):
            raise ValueError(f"{name} must hold integer symbols in [0, n_symbols={n_symbols})")

    def check_params(params, k, d, role):
        del d  # the data's last axis is time: the symbols fix the width
        if tuple(jnp.shape(getattr(params, field))) != (k, n_symbols):
            raise ValueError(
                f"params.{field} must have shape ({k}, {n_symbols}) for n_{role.latent}={k}, "
                f"n_symbols={n_symbols}, got {jnp.shape(getattr(params, field))}"
            )
        validation.check_param_values(getattr(params, field), field, simplex=True)

    def init_states(key, features, lengths, params):
        del lengths
        k = jnp.shape(getattr(params, field))[0]
        return params._replace(**{field: flat_dirichlet(key, (k, n_symbols), features.x.dtype)})

    def draw(key, params, labels):
        return jax.random.categorical(key, jnp.log(getattr(params, field)[labels]), axis=-1).astype(jnp.int32)

    def n_parameters(params) -> int:
        k = jnp.shape(getattr(params, field))[0]
        return k * (n_symbols - 1)

    return Component(
        family=categorical_family(field, prior),
        features_type=CategoricalFeatures,
        zeros=matrix_field(field)["zeros"],
        check_values=check_values,
        check_params=check_params,
        draw=draw,
        n_parameters=n_parameters,
        event_ndim=0,
        encode=encode,
        init_states=init_states,
    )


def categorical_mixture_params(weights, probs) -> CategoricalMixtureParams:
    """``CategoricalMixtureParams`` from ``weights [K]`` and ``probs [K, S]`` (positive rows summing to 1).

    Examples:
      >>> params = jaxem.models.categorical_mixture_params([0.5, 0.5], [[0.2, 0.8], [0.6, 0.4]])
      >>> params.probs.shape
      (2, 2)
    """
    weights, probs = validation.weights_and(weights, probs, "probs")
    if bool(jnp.any(probs <= 0)) or not np.allclose(np.asarray(jnp.sum(probs, axis=1)), 1.0, atol=1e-4):
        raise ValueError("each row of probs must be positive and sum to one")
    return CategoricalMixtureParams(weights, probs)


def categorical_hmm_params(initial_probs, transition_matrix, emission_probs) -> CategoricalHMMParams:
    """Builds categorical HMM params from a user's arrays.

    Args:
      initial_probs: ``[K]`` non-negative, summing to one.
      transition_matrix: ``[K, K]`` non-negative, rows summing to one.
      emission_probs: ``[K, S]`` non-negative, rows summing to one.

    Examples:
      >>> params = jaxem.models.categorical_hmm_params(
      ...     [1.0, 0.0], [[0.9, 0.1], [0.1, 0.9]], [[0.5, 0.5, 0.0], [0.1, 0.1, 0.8]])
      >>> params.emission_probs.shape
      (2, 3)
    """
    emission_probs = validation.as_float_array(emission_probs, "emission_probs", ndim=2)
    k = emission_probs.shape[0]
    emission_probs = validation.check_probabilities(emission_probs, "emission_probs", emission_probs.shape)
    initial_probs = validation.check_probabilities(initial_probs, "initial_probs", (k,))
    transition_matrix = validation.check_probabilities(transition_matrix, "transition_matrix", (k, k))
    dtype = jnp.result_type(initial_probs.dtype, transition_matrix.dtype, emission_probs.dtype)
    return CategoricalHMMParams(initial_probs.astype(dtype), transition_matrix.astype(dtype), emission_probs.astype(dtype))
