"""Seeding of component centres and starting responsibilities, in JAX so that it
runs inside vmapped restarts."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jaxem._src.base import Array


def _squared_distances(x: Array, centre: Array) -> Array:
    diff = x - centre[None, :]
    return jnp.sum(diff * diff, axis=1)


def kmeans_plus_plus(key: Array, x: Array, n_components: int) -> Array:
    """k-means++ seeding (Arthur & Vassilvitskii 2007).

    Args:
      key: PRNG key.
      x: ``[N, D]`` data.
      n_components: number of centres K.

    Returns:
      ``[K, D]`` centres: the first drawn uniformly, each next one with probability
      proportional to its squared distance to the nearest centre chosen so far.
    """
    n = x.shape[0]
    first_key, key = jax.random.split(key)
    first = x[jax.random.randint(first_key, (), 0, n)]
    centres = jnp.zeros((n_components, x.shape[1]), x.dtype).at[0].set(first)
    nearest = _squared_distances(x, first)

    def add_centre(i, carry):
        centres, nearest, key = carry
        key, sub = jax.random.split(key)
        # log(0) = -inf gives already-chosen points probability zero; if every
        # point coincides with a centre, fall back to uniform.
        logits = jnp.where(jnp.any(nearest > 0), jnp.log(nearest), jnp.zeros_like(nearest))
        centre = x[jax.random.categorical(sub, logits)]
        centres = centres.at[i].set(centre)
        return centres, jnp.minimum(nearest, _squared_distances(x, centre)), key

    centres, _, _ = jax.lax.fori_loop(1, n_components, add_centre, (centres, nearest, key))
    return centres


def random_from_data(key: Array, x: Array, n_components: int) -> Array:
    """``[K, D]`` centres: K distinct rows of ``x`` drawn uniformly."""
    index = jax.random.choice(key, x.shape[0], (n_components,), replace=False)
    return x[index]


def nearest_centre(x: Array, centres: Array) -> Array:
    """``[N]`` index of the nearest centre (squared Euclidean) for each row of ``x``."""
    distances = (
        jnp.sum(x * x, axis=1, keepdims=True)
        - 2.0 * x @ centres.T
        + jnp.sum(centres * centres, axis=1)[None, :]
    )
    return jnp.argmin(distances, axis=1)


def kmeans(key: Array, x: Array, n_components: int, max_iter: int = 100) -> Array:
    """k-means (Lloyd's iterations) from k-means++ seeding, in JAX (vmappable).

    Args:
      key: PRNG key.
      x: ``[N, D]`` data.
      n_components: number of centres K.
      max_iter: at most this many Lloyd iterations; stops earlier when no row
        changes its nearest centre.

    Returns:
      ``[K, D]`` centres: each the mean of the rows nearest to it (a centre that
      loses all its rows keeps its place).
    """
    centres = kmeans_plus_plus(key, x, n_components)

    def recentre(centres):
        labels = nearest_centre(x, centres)
        one_hot = jax.nn.one_hot(labels, n_components, dtype=x.dtype)
        counts = jnp.sum(one_hot, axis=0)
        sums = one_hot.T @ x
        moved = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1)[:, None], centres)
        return moved, labels

    def not_done(carry):
        i, _, labels, previous = carry
        return (i < max_iter) & jnp.any(labels != previous)

    def step(carry):
        i, centres, labels, _ = carry
        centres, new_labels = recentre(centres)
        return i + 1, centres, new_labels, labels

    labels = nearest_centre(x, centres)
    start = (jnp.zeros((), jnp.int32), centres, labels, jnp.full_like(labels, -1))
    _, centres, _, _ = jax.lax.while_loop(not_done, step, start)
    return centres


def nearest_responsibilities(seed_centres: Callable[[Array, Array, int], Array]):
    """A responsibility seeder from a centre seeder: each row's responsibility is
    one-hot on its nearest seeded centre.

    Args:
      seed_centres: ``(key, x [N, D], K) -> centres [K, D]``.

    Returns:
      ``(key, x [N, D], K) -> responsibilities [N, K]``.
    """

    def seed(key: Array, x: Array, n_components: int) -> Array:
        labels = nearest_centre(x, seed_centres(key, x, n_components))
        return jax.nn.one_hot(labels, n_components, dtype=x.dtype)

    return seed


def random_responsibilities(key: Array, x: Array, n_components: int) -> Array:
    """``[N, K]`` responsibilities drawn uniformly on [0, 1) and normalized per row
    (scikit-learn's ``init_params="random"``)."""
    draws = jax.random.uniform(key, (x.shape[0], n_components), x.dtype)
    return draws / jnp.sum(draws, axis=1, keepdims=True)


# Responsibility seeders: ``(key, points [N, P], K) -> responsibilities [N, K]``.
SEEDERS = {
    "kmeans++": nearest_responsibilities(kmeans_plus_plus),
    "kmeans": nearest_responsibilities(kmeans),
    "random_from_data": nearest_responsibilities(random_from_data),
    "random": random_responsibilities,
}
