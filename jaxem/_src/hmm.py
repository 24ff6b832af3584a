"""Hidden Markov models with the emissions of any ``Component``: the generic builder.

An HMM is a ``jaxem.Model`` whose latent structure is ``chain_latent()``. With
emissions in exponential-family form (a ``Component``'s ``ExpFamily``), the per-step log emission
table ``[B, T, K]`` is one contraction of the prepared features ``[B, T, F]`` with
the ``[K, F]`` natural coefficients, and the emission M-step's expected statistics
are one more, of the smoothed marginals with the same features (padded steps have
zero marginals, so they drop out). Initial and transition probabilities come from
the gradient's expected counts, with the mixtures' tiny pseudo-count, so a state
that is never visited keeps finite parameters. The M-step is an ``AdditiveMStep``
(``chain_m_step``): its statistics are sums over sequences, so every HMM built here
can be chunked, sharded over sequences and streamed like a mixture.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import expfam
from jaxem._src import seeding, sequence_buckets
from jaxem._src import sequences as seqs_lib
from jaxem._src import validation
from jaxem._src.base import AdditiveMStep, Array, Model
from jaxem._src.chain import ChainPotentials, chain_latent
from jaxem._src.chunking import per_row_slicer
from jaxem._src.component import CHAIN_ROLE, Component, check_params_type
from jaxem._src.expfam import ExpFamily, family_log_densities, family_statistics, tiny_count
from jaxem._src.families import dirichlet


class ChainData(NamedTuple):
    """Prepared HMM data (the output of ``prepare``).

    Attributes:
      features: the emission family's prepared features, with ``stats [B, T, F]``
        (padded steps hold finite filler values).
      lengths: ``[B]`` int32 sequence lengths.
    """

    features: Any
    lengths: Array


def normalized_counts(counts: Array, axis: int = -1, mask: Optional[Array] = None) -> Array:
    """Probabilities from expected counts plus the tiny pseudo-count (per ``axis``).

    Entries where ``mask`` is False stay exactly zero.
    """
    counts = counts + tiny_count(counts.dtype)
    if mask is not None:
        counts = jnp.where(mask, counts, jnp.zeros_like(counts))
    return counts / jnp.sum(counts, axis=axis, keepdims=True)


class ChainStatistics(NamedTuple):
    """An HMM's additive expected statistics (summed over sequences).

    Attributes:
      initial: ``[K]`` expected initial-state counts.
      transitions: ``[K, K]`` expected transition counts.
      emissions: ``[K, F]`` the emission family's expected statistics
        ``Σ_bt p(z_bt = k | x_b) T(x_bt)``.
    """

    initial: Array
    transitions: Array
    emissions: Array


def chain_m_step(component: Component, mask: Optional[Array] = None, *, initial_prior=None, transition_prior=None) -> AdditiveMStep:
    """The ``AdditiveMStep`` of an HMM with ``component`` emissions (structural
    zeros of the transitions where ``mask [K, K]`` is False; optional Dirichlet
    priors of the initial and transition probabilities, as in ``component_hmm``).

    The expected statistics are sums over sequences (``ChainStatistics``), so an
    HMM's sequences can be processed in chunks, sharded over devices or streamed
    from disk exactly as a mixture's rows (``chunking.py``, ``sharding.py``,
    ``streaming.py``). A sequence of length 0 contributes nothing (``chain.py``):
    it is the padding of a batch to equal shards.
    """
    family = component.family

    def statistics(data: ChainData, posterior: ChainPotentials, params=None) -> ChainStatistics:
        # The posterior is the gradient of the log-partition with respect to the
        # log-potentials: its log_emission field holds the smoothed marginals
        # p(z_t = k | x) [B, T, K] (zero on padded steps), not log-probabilities.
        emissions = family_statistics(family, data.features, posterior.log_emission, params)
        return ChainStatistics(posterior.log_initial, posterior.log_transition, emissions)

    def maximize(stats: ChainStatistics, data: ChainData, params):
        params = family.maximize(stats.emissions, data.features, params)
        dtype = params.initial_probs.dtype
        initial = dirichlet.map_probabilities(stats.initial, initial_prior, mask=params.initial_probs > 0)
        transition = dirichlet.map_probabilities(stats.transitions, transition_prior, mask=mask)
        return params._replace(initial_probs=initial.astype(dtype), transition_matrix=transition.astype(dtype))

    per_row = ("lengths",) + tuple("features." + name for name in family.per_row)

    def rows(data: ChainData, start, size: int) -> ChainData:
        features = per_row_slicer(family.per_row)(data.features, start, size)
        return ChainData(features, jax.lax.dynamic_slice_in_dim(data.lengths, start, size))

    def prepare_like(raw, reference: ChainData) -> ChainData:
        if isinstance(raw, ChainData):
            return raw
        seqs = seqs_lib.as_sequences(raw, component.event_ndim)
        step_mask = seqs_lib.step_mask(seqs.lengths, seqs.obs.shape[1])
        encoded = component.encode(seqs.obs, step_mask)
        return ChainData(expfam.prepare_like(family, encoded, reference.features), seqs.lengths)

    return AdditiveMStep(
        statistics=statistics, maximize=maximize, rows=rows, per_row=per_row, prepare_like=prepare_like, zero_rows_are_empty=True
    )


def flat_dirichlet(key: Array, shape: tuple, dtype) -> Array:
    """Rows drawn from Dirichlet(1, ..., 1) over the last axis, as normalized
    exponentials (cheaper to compile than ``jax.random.dirichlet``'s gamma sampler)."""
    draws = jax.random.exponential(key, shape, dtype)
    return draws / jnp.sum(draws, axis=-1, keepdims=True)


def sticky_transitions(key: Array, n_states: int, dtype, mask: Optional[Array] = None) -> Array:
    """``[K, K]`` random starting transitions: half self-transition, half Dirichlet(1)."""
    noise = flat_dirichlet(key, (n_states, n_states), dtype)
    matrix = 0.5 * jnp.eye(n_states, dtype=dtype) + 0.5 * noise
    if mask is not None:
        matrix = jnp.where(mask, matrix, jnp.zeros_like(matrix))
        matrix = matrix / jnp.sum(matrix, axis=1, keepdims=True)
    return matrix


def masked_kmeans_plus_plus(key: Array, x: Array, mask: Array, n_centres: int) -> Array:
    """k-means++ seeding among the rows of ``x [N, D]`` where ``mask [N]`` is True.

    Returns ``[K, D]`` centres: the first drawn uniformly among valid rows, each next
    one with probability proportional to its squared distance to the nearest centre.
    Each draw inverts the cumulative distribution at one uniform number
    (``draw_index``), so rows of probability zero (padding, anywhere) do not change
    which valid row is drawn: padded and unpadded data seed the same centres.
    """
    valid = mask.astype(x.dtype)

    def squared_distance(centre):
        diff = x - centre[None, :]
        return jnp.sum(diff * diff, axis=1)

    key, sub = jax.random.split(key)
    first = x[draw_index(sub, valid)]
    centres = jnp.zeros((n_centres, x.shape[1]), x.dtype).at[0].set(first)

    def add_centre(i, carry):
        centres, nearest, key = carry
        key, sub = jax.random.split(key)
        weights = nearest * valid
        spread = jnp.any(weights > 0)
        centre = x[draw_index(sub, jnp.where(spread, weights, valid))]
        return centres.at[i].set(centre), jnp.minimum(nearest, squared_distance(centre)), key

    carry = (centres, squared_distance(first), key)
    return jax.lax.fori_loop(1, n_centres, add_centre, carry)[0]


def draw_index(key: Array, weights: Array) -> Array:
    """An index drawn with probability proportional to ``weights [N]`` (``>= 0``,
    not all 0) by inverting their cumulative sum at one uniform number: entries
    of weight 0 are never drawn and do not change the draw among the others."""
    return seeding.draw_weighted(weights, jax.random.uniform(key, (), weights.dtype))


def kmeans_init_states(key: Array, features, lengths: Array, template, family: ExpFamily, n_states: int):
    """Emission init: k-means (masked k-means++ seeding, then Lloyd's iterations:
    ``masked_kmeans``) on the pooled steps of ``features.x [B, T, D]``,
    nearest-centre hard assignment, then the family's M-step of that assignment."""
    x = features.x
    b, t, d = x.shape
    flat = x.reshape(b * t, d)
    mask = seqs_lib.step_mask(lengths, t).reshape(b * t)
    centres = masked_kmeans(key, flat, mask, n_states)
    distances = jnp.sum((flat[:, None, :] - centres[None, :, :]) ** 2, axis=2)
    labels = jnp.argmin(distances, axis=1)
    stats_flat = features.stats.reshape(b * t, -1)
    one_hot = jax.nn.one_hot(labels, n_states, dtype=flat.dtype) * mask[:, None].astype(flat.dtype)
    # a template of ones: the M-step keeps exact zeros of the params it is given
    return family.maximize(one_hot.T @ stats_flat, features, jax.tree_util.tree_map(jnp.ones_like, template))


def component_hmm(
    component: Component,
    n_states: int,
    *,
    params_type: type,
    transition_mask: Optional[Array] = None,
    parallel: bool = False,
    initial_prior=None,
    transition_prior=None,
) -> Model:
    """An HMM whose emissions are densities of ``component`` (the builder behind the HMM models).

    Args:
      component: the emission family (e.g. ``jaxem._src.families.poisson.component("rates")``).
      n_states: K.
      params_type: the params NamedTuple: ``initial_probs [K]`` and
        ``transition_matrix [K, K]`` plus the component's fields.
      transition_mask: optional ``[K, K]`` bool; False entries are structural zeros
        of the transition matrix (e.g. left-to-right), kept zero by the M-step.
      parallel: use the parallel-in-time log-partition (``chain_latent(parallel=True)``).
      initial_prior: optional Dirichlet concentration (``>= 1``, a scalar or
        ``[K]``, checked by ``dirichlet.check_concentration``) of the initial
        probabilities: MAP update ``∝ counts + α − 1`` (``jaxem/_src/families/dirichlet.py``).
      transition_prior: the same for every transition row (a scalar, ``[K]`` or ``[K, K]``).

    Returns:
      A ``Model`` on ``ChainData``: one contraction ``[B, T, F] x [K, F]`` gives the
      log emission table, the emission M-step is the family's maximizer of the
      smoothed marginals' expected statistics.

    Examples:
      >>> from jaxem._src.families import poisson
      >>> model = jaxem.component_hmm(poisson.component("rates"), 2,
      ...                             params_type=jaxem.models.PoissonHMMParams)
      >>> table, _ = jaxem.load_dataset("discoveries")
      >>> result = jaxem.fit(model, table[:, 1:], key=0, n_restarts=2)
      >>> result.params.transition_matrix.shape
      (2, 2)
    """
    family = component.family
    mask = None if transition_mask is None else jnp.asarray(check_transition_mask(transition_mask, n_states))

    def prepare(data) -> ChainData:
        if isinstance(data, ChainData):
            family.prepare(data.features)  # refuses another family's features
            return data
        seqs = seqs_lib.as_sequences(data, component.event_ndim)
        step_mask = seqs_lib.step_mask(seqs.lengths, seqs.obs.shape[1])
        return ChainData(family.prepare(component.encode(seqs.obs, step_mask)), seqs.lengths)

    def prepare_for(params, data) -> ChainData:
        if isinstance(data, ChainData) or family.prepare_for is None:
            return prepare(data)
        seqs = seqs_lib.as_sequences(data, component.event_ndim)
        step_mask = seqs_lib.step_mask(seqs.lengths, seqs.obs.shape[1])
        return ChainData(family.prepare_for(params, component.encode(seqs.obs, step_mask)), seqs.lengths)

    def log_joint(params, data: ChainData) -> ChainPotentials:
        stats = data.features.stats
        return ChainPotentials(
            log_initial=jnp.log(params.initial_probs.astype(stats.dtype)),
            log_transition=jnp.log(params.transition_matrix.astype(stats.dtype)),
            log_emission=family_log_densities(family, params, data.features),
        )

    m_step = chain_m_step(component, mask, initial_prior=initial_prior, transition_prior=transition_prior)

    def log_prior(params):
        total = dirichlet.log_density(params.initial_probs, initial_prior)
        total = total + dirichlet.log_density(params.transition_matrix, transition_prior)
        if family.log_prior is not None:
            total = total + family.log_prior(params).astype(total.dtype)
        return total

    has_prior = initial_prior is not None or transition_prior is not None or family.log_prior is not None

    def init(key: Array, data: ChainData):
        emission_key, transition_key = jax.random.split(key)
        dtype = data.features.x.dtype
        params = params_type(
            initial_probs=jnp.zeros((n_states,), dtype),
            transition_matrix=jnp.zeros((n_states, n_states), dtype),
            **component.zeros(n_states, component.n_features(data.features), dtype),
        )
        if component.init_states is None:
            params = kmeans_init_states(emission_key, data.features, data.lengths, params, family, n_states)
        else:
            params = component.init_states(emission_key, data.features, data.lengths, params)
        initial, transition = random_chain(transition_key, n_states, dtype, mask)
        return params._replace(initial_probs=initial, transition_matrix=transition)

    if component.init_states is None:  # the k-means start follows the lengths: padding may be added
        init = sequence_buckets.skips_empty_sequences(init)

    def check(data, params=None):
        if isinstance(data, ChainData):
            d = component.n_features(family.prepare(data.features))
        else:
            seqs = seqs_lib.check_sequences(data, component.event_ndim)
            if validation.is_concrete(seqs):
                component.check_values(seqs_lib.valid_values(seqs), CHAIN_ROLE.data)
            d = seqs.obs.shape[-1] if component.event_ndim else None
        if params is not None:
            check_params_type(params, params_type)
            check_chain_params(params, n_states)
            component.check_params(params, n_states, d, CHAIN_ROLE)

    def sample(key: Array, params, n: int):
        state_key, emission_key = jax.random.split(key)
        keys = jax.random.split(state_key, n)
        log_initial = jnp.log(params.initial_probs)
        log_transition = jnp.log(params.transition_matrix)
        first = jax.random.categorical(keys[0], log_initial)

        def step(state, step_key):
            new = jax.random.categorical(step_key, log_transition[state])
            return new, new

        _, rest = jax.lax.scan(step, first, keys[1:])
        z = jnp.concatenate([first[None], rest])
        return component.draw(emission_key, params, z), z

    compiled_sample = jax.jit(sample, static_argnums=2)

    def checked_sample(key: Array, params, n: int):
        check_params_type(params, params_type)
        check_chain_params(params, n_states)
        component.check_params(params, n_states, None, CHAIN_ROLE)
        return compiled_sample(key, params, n)

    def n_parameters(params) -> int:
        k = n_states
        free_transitions = k * (k - 1) if mask is None else int(np.sum(np.maximum(np.asarray(mask).sum(axis=1) - 1, 0)))
        return (k - 1) + free_transitions + component.n_parameters(params)

    return Model(
        init=init,
        log_joint=log_joint,
        latent=chain_latent(parallel=bool(parallel)),
        m_step=m_step,
        prepare=prepare,
        prepare_for=None if family.prepare_for is None else prepare_for,
        check=check,
        sample=checked_sample,
        n_parameters=n_parameters,
        log_prior=log_prior if has_prior else None,
    )


def _start_states(mask: Array) -> Array:
    # A left-to-right (upper-triangular) chain starts in state 0; others anywhere.
    upper = bool(np.all(np.triu(np.asarray(mask)) == np.asarray(mask)))
    k = mask.shape[0]
    return jnp.arange(k) == 0 if upper else jnp.ones((k,), bool)


def check_transition_mask(transition_mask, n_states: int) -> np.ndarray:
    """A ``[K, K]`` bool mask with at least one allowed transition out of every state."""
    mask = np.asarray(transition_mask)
    if mask.shape != (n_states, n_states) or mask.dtype != bool:
        raise ValueError(f"transition_mask must be a bool array of shape ({n_states}, {n_states}), got {mask.dtype} {mask.shape}")
    if not np.all(mask.any(axis=1)):
        raise ValueError("transition_mask must allow at least one transition out of every state")
    return mask


def check_chain_params(params, n_states: int) -> None:
    """Shapes (and, when concrete, values) of ``initial_probs`` and ``transition_matrix``."""
    if tuple(jnp.shape(params.initial_probs)) != (n_states,):
        raise ValueError(f"params.initial_probs must have shape ({n_states},) for n_states={n_states}, got {jnp.shape(params.initial_probs)}")
    if tuple(jnp.shape(params.transition_matrix)) != (n_states, n_states):
        raise ValueError(
            f"params.transition_matrix must have shape ({n_states}, {n_states}) for n_states={n_states}, "
            f"got {jnp.shape(params.transition_matrix)}"
        )
    validation.check_param_values(params.initial_probs, "initial_probs", simplex=True)
    validation.check_param_values(params.transition_matrix, "transition_matrix", simplex=True)


# Starts (``docs/starts.md``): hmmlearn's draws of the chain, k-means for the emissions.


def sparse_dirichlet(key: Array, shape: tuple, dtype) -> Array:
    """Rows drawn from Dirichlet(1/K, ..., 1/K) over the last axis (K = its length;
    hmmlearn's draw of initial probabilities and transition rows), through log-gamma
    draws, floored at ``sqrt(tiny)`` so that no entry is an exact zero (a zero would
    be taken for a structural one) and renormalized."""
    k = shape[-1]
    log_draws = jax.random.loggamma(key, jnp.asarray(1.0 / k, dtype), shape, dtype)
    probs = jax.nn.softmax(log_draws, axis=-1)
    probs = jnp.maximum(probs, jnp.sqrt(jnp.finfo(dtype).tiny))
    return probs / jnp.sum(probs, axis=-1, keepdims=True)


def random_chain(key: Array, n_states: int, dtype, mask: Optional[Array] = None):
    """``(initial [K], transition [K, K])`` as hmmlearn draws them: Dirichlet(1/K)
    rows; with a ``mask``, disallowed transitions are zero (rows renormalized) and
    a left-to-right chain starts in state 0."""
    initial_key, transition_key = jax.random.split(key)
    initial = sparse_dirichlet(initial_key, (n_states,), dtype)
    transition = sparse_dirichlet(transition_key, (n_states, n_states), dtype)
    if mask is not None:
        initial = normalized_counts(initial, mask=_start_states(mask))
        transition = jnp.where(mask, transition, jnp.zeros_like(transition))
        transition = transition / jnp.sum(transition, axis=1, keepdims=True)
    return initial, transition


def masked_kmeans(key: Array, x: Array, mask: Array, n_centres: int, max_iter: int = 100) -> Array:
    """k-means (Lloyd's iterations from masked k-means++ seeding) on the rows of
    ``x [N, D]`` where ``mask [N]`` is True; ``[K, D]`` centres (a centre that loses
    all its rows keeps its place). Stops when no valid row changes its centre."""
    centres = masked_kmeans_plus_plus(key, x, mask, n_centres)
    weights = mask.astype(x.dtype)

    def nearest(centres):
        distances = jnp.sum(x * x, axis=1, keepdims=True) - 2.0 * x @ centres.T + jnp.sum(centres * centres, axis=1)[None, :]
        return jnp.where(mask, jnp.argmin(distances, axis=1), -1)

    def step(carry):
        i, centres, labels, _ = carry
        one_hot = jax.nn.one_hot(labels, n_centres, dtype=x.dtype) * weights[:, None]
        counts = jnp.sum(one_hot, axis=0)
        sums = one_hot.T @ x
        centres = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], centres)
        return i + 1, centres, nearest(centres), labels

    def not_done(carry):
        i, _, labels, previous = carry
        return (i < max_iter) & jnp.any(labels != previous)

    labels = nearest(centres)
    start = (jnp.zeros((), jnp.int32), centres, labels, jnp.full_like(labels, -2))
    return jax.lax.while_loop(not_done, step, start)[1]
