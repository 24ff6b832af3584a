"""Seeding of component centres and starting responsibilities, in JAX so that it
runs inside vmapped restarts.

Every seeder takes an optional ``present [N]`` mask: rows where it is ``False``
are padding (``jaxem/_src/buckets.py``) and are never drawn as a centre nor
counted. The padding rows are appended after the real ones, and JAX's
(partitionable) threefry gives the first ``N`` of ``N + P`` draws the values of
the ``N`` draws, so a seeding of padded rows equals the seeding of the real rows
alone.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jaxem._src.base import Array


def _squared_distances(x: Array, centre: Array) -> Array:
    diff = x - centre[None, :]
    return jnp.sum(diff * diff, axis=1)


def draw_weighted(weights: Array, u: Array) -> Array:
    """The index of a row drawn with probability proportional to ``weights [N]``
    (non-negative, not all zero) by inverting their cumulative sum at ``u`` in
    [0, 1): the first row whose cumulative weight exceeds ``u`` times the total.
    A row of weight 0 is never drawn (its cumulative weight equals the one
    before it); rounding past the total gives the last row of positive weight."""
    cumulative = jnp.cumsum(weights)
    index = jnp.sum((cumulative <= u * cumulative[-1]).astype(jnp.int32))
    last = weights.shape[0] - 1 - jnp.argmax((weights > 0)[::-1])
    return jnp.minimum(index, last)


def _present(x: Array, present) -> Array:
    return jnp.ones(x.shape[:1], bool) if present is None else present


def kmeans_plus_plus(key: Array, x: Array, n_components: int, present=None) -> Array:
    """k-means++ seeding (Arthur & Vassilvitskii 2007).

    Args:
      key: PRNG key.
      x: ``[N, D]`` data.
      n_components: number of centres K.
      present: optional ``[N]`` bool, ``False`` for padding rows (after the real ones).

    Returns:
      ``[K, D]`` centres: the first drawn uniformly, each next one with probability
      proportional to its squared distance to the nearest centre chosen so far
      (uniformly among the present rows when every row coincides with a centre).

    One uniform number per centre is drawn up front (``u [K]``) and each centre is
    the inverse of the cumulative weights at its ``u``: a small program (no random
    bits per row), and, the draws of ``K`` being the first ``K`` of ``K + 1``
    (partitionable threefry), the centres for ``K`` are the first ``K`` of those
    for ``K + 1``.

    Examples:
      >>> x = jnp.array([[0.0], [0.1], [5.0], [5.1]])
      >>> centres = kmeans_plus_plus(jax.random.key(0), x, 2)
      >>> centres.shape, bool(jnp.all(jnp.isin(centres, x)))
      ((2, 1), True)
    """
    present = _present(x, present)
    uniforms = jax.random.uniform(key, (n_components,), x.dtype)
    some = present.astype(x.dtype)
    first = x[draw_weighted(some, uniforms[0])]
    centres = jnp.zeros((n_components, x.shape[1]), x.dtype).at[0].set(first)
    nearest = _squared_distances(x, first)

    def add_centre(i, carry):
        centres, nearest = carry
        weights = jnp.where(present, nearest, jnp.zeros_like(nearest))
        weights = jnp.where(jnp.any(weights > 0), weights, some)  # all rows on centres: uniform
        centre = x[draw_weighted(weights, uniforms[i])]
        return centres.at[i].set(centre), jnp.minimum(nearest, _squared_distances(x, centre))

    centres, _ = jax.lax.fori_loop(1, n_components, add_centre, (centres, nearest))
    return centres


def random_from_data(key: Array, x: Array, n_components: int, present=None) -> Array:
    """``[K, D]`` centres: K distinct (present) rows of ``x`` drawn uniformly (the
    K largest of i.i.d. Gumbel draws, one per row)."""
    scores = jax.random.gumbel(key, x.shape[:1], x.dtype)
    scores = jnp.where(_present(x, present), scores, jnp.full_like(scores, -jnp.inf))
    return x[jax.lax.top_k(scores, n_components)[1]]


def nearest_centre(x: Array, centres: Array) -> Array:
    """``[N]`` index of the nearest centre (squared Euclidean) for each row of ``x``."""
    distances = (
        jnp.sum(x * x, axis=1, keepdims=True)
        - 2.0 * x @ centres.T
        + jnp.sum(centres * centres, axis=1)[None, :]
    )
    return jnp.argmin(distances, axis=1)


def kmeans(key: Array, x: Array, n_components: int, present=None, max_iter: int = 100) -> Array:
    """k-means (Lloyd's iterations) from k-means++ seeding, in JAX (vmappable).

    Args:
      key: PRNG key.
      x: ``[N, D]`` data.
      n_components: number of centres K.
      present: optional ``[N]`` bool, ``False`` for padding rows (not counted).
      max_iter: at most this many Lloyd iterations (an int, or an integer array
        under ``jit``; 0: the k-means++ centres); stops earlier when no present
        row changes its nearest centre.

    Returns:
      ``[K, D]`` centres: each the mean of the rows nearest to it (a centre that
      loses all its rows keeps its place).
    """
    present = _present(x, present)
    weights = present.astype(x.dtype)[:, None]

    def recentre(centres, labels):
        one_hot = jax.nn.one_hot(labels, n_components, dtype=x.dtype) * weights
        counts = jnp.sum(one_hot, axis=0)
        sums = one_hot.T @ x
        return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1)[:, None], centres)

    def not_done(carry):
        i, _, labels, previous = carry
        return (i < max_iter) & jnp.any((labels != previous) & present)

    def step(carry):
        i, centres, labels, _ = carry
        centres = recentre(centres, labels)
        return i + 1, centres, nearest_centre(x, centres), labels

    centres = kmeans_plus_plus(key, x, n_components, present)
    labels = nearest_centre(x, centres)
    start = (jnp.zeros((), jnp.int32), centres, labels, jnp.full_like(labels, -1))
    return jax.lax.while_loop(not_done, step, start)[1]


def kmeans_or_kmeans_plus_plus(key: Array, x: Array, n_components: int, present=None) -> Array:
    """``[K, D]`` centres: k-means (``kmeans``) in a random half of the starts,
    k-means++ seeding alone in the other half (a fair coin drawn from ``key``).

    k-means settles most starts in the same basin (scikit-learn's default start,
    consistent); k-means++ alone spreads them more widely and, on some data, finds
    better optima that no k-means start reaches (``docs/starts.md``). Under vmapped
    restarts both kinds run in one program: a restart whose coin says k-means++
    stops its Lloyd's loop at once.
    """
    coin_key, key = jax.random.split(key)
    lloyd_iterations = jnp.where(jax.random.bernoulli(coin_key), 100, 0)
    return kmeans(key, x, n_components, present, max_iter=lloyd_iterations)


def nearest_responsibilities(seed_centres: Callable[[Array, Array, int], Array]):
    """A responsibility seeder from a centre seeder: each row's responsibility is
    one-hot on its nearest seeded centre.

    Args:
      seed_centres: ``(key, x [N, D], K, present) -> centres [K, D]``.

    Returns:
      ``(key, x [N, D], K, present=None) -> responsibilities [N, K]`` (padding
      rows get one-hot rows too; their statistics are zero).
    """

    def seed(key: Array, x: Array, n_components: int, present=None) -> Array:
        labels = nearest_centre(x, seed_centres(key, x, n_components, present))
        return jax.nn.one_hot(labels, n_components, dtype=x.dtype)

    return seed


def random_responsibilities(key: Array, x: Array, n_components: int, present=None) -> Array:
    """``[N, K]`` responsibilities drawn uniformly on [0, 1) and normalized per row
    (scikit-learn's ``init_params="random"``; padding rows' statistics are zero)."""
    del present
    draws = jax.random.uniform(key, (x.shape[0], n_components), x.dtype)
    return draws / jnp.sum(draws, axis=1, keepdims=True)


# Responsibility seeders: ``(key, points [N, P], K, present=None) -> responsibilities [N, K]``.
SEEDERS = {
    "kmeans++": nearest_responsibilities(kmeans_plus_plus),
    "kmeans": nearest_responsibilities(kmeans),
    "mixed": nearest_responsibilities(kmeans_or_kmeans_plus_plus),
    "random_from_data": nearest_responsibilities(random_from_data),
    "random": random_responsibilities,
}
