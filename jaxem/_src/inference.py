"""The E-step: the gradient of a log-partition.

For a model with log-potentials ``φ = log p(x, z; θ)``, the log marginal
``log p(x; θ)`` is the log-partition of ``φ`` over the latent ``z`` (``logsumexp``
for a mixture, the forward recursion for a chain; ``model.latent``), and its
gradient with respect to ``φ`` is the posterior ``p(z | x; θ)``. So the E-step is a
single ``jax.value_and_grad`` call; no model writes a responsibilities formula or a
backward pass. Everything here is pure and unchecked (safe inside jit / vmap /
scan / grad); ``data`` is already prepared (``model.prepare``).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jaxem._src.base import Array, Data, Model, Posterior


def log_marginals(model: Model, params, data: Data) -> Array:
    """``[N]`` log p(x_n; θ) of every item."""
    return model.latent.log_marginal(model.log_joint(params, data), data)


def e_step(model: Model, params, data: Data, sample_weight: Optional[Array] = None) -> tuple[Array, Posterior]:
    """The E-step: ``(total log-likelihood, posterior)`` by one autodiff call.

    ``posterior`` has the structure of ``model.log_joint``'s output (``[N, K]``
    responsibilities for a mixture) and includes ``sample_weight [N]`` when given.

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> params = jaxem.init(model, jax.random.key(0), x)
      >>> log_lik, responsibilities = jaxem.e_step(model, params, model.prepare(x))
      >>> responsibilities.shape
      (272, 2)
      >>> bool(jnp.allclose(responsibilities.sum(axis=1), 1.0, atol=1e-5))
      True
    """
    log_potentials = model.log_joint(params, data)

    def total_log_likelihood(log_potentials):
        per_item = model.latent.log_marginal(log_potentials, data)
        if sample_weight is not None:
            per_item = per_item * sample_weight.astype(per_item.dtype)
        return jnp.sum(per_item)

    return jax.value_and_grad(total_log_likelihood)(log_potentials)


def n_observations(model: Model, params, data: Data, sample_weight: Optional[Array] = None) -> Array:
    """The (weighted) number of observations: rows of a mixture, steps of a chain."""
    # Only the shape of the log-potentials is used, so XLA drops their computation.
    sizes = model.latent.sizes(model.log_joint(params, data), data)
    if sample_weight is not None:
        sizes = sizes * sample_weight.astype(sizes.dtype)
    return jnp.sum(sizes)


def float_dtype(data: Data):
    """The dtype of the first floating leaf of (prepared) data: the compute dtype."""
    for leaf in jax.tree_util.tree_leaves(data):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.dtype
    return jnp.asarray(0.0).dtype
