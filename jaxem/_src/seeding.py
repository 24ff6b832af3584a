"""Seeding of component centres, in JAX so that it runs inside vmapped restarts."""

from __future__ import annotations

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


SEEDERS = {"kmeans++": kmeans_plus_plus, "random_from_data": random_from_data}
