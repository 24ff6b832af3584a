"""The theory as API: the Q-function and the evidence lower bound (ELBO).

For any distribution q(z) over the latent variables (Jensen's inequality),

    log p(x; θ) ≥ ELBO(θ, q) = E_q[log p(x, z; θ)] − E_q[log q(z)],

with equality exactly at q = p(z | x; θ) (the E-step makes the bound tight). With q
fixed at the posterior under θ_old, the ELBO is Q(θ; θ_old) plus the entropy of q,
which does not depend on θ, so raising Q (the M-step) raises the bound and hence
the log-likelihood.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src.engine import check_inputs
from jaxem._src.inference import e_step
from jaxem._src.base import Array, Model, Params
from jaxem._src.generic_m_step import expected_log_joint
from jaxem._src.validation import is_concrete


@functools.partial(jax.jit, static_argnums=0)
def _q_function(model, params_old, params, data, sample_weight):
    data = model.prepare(data)
    posterior = e_step(model, params_old, data, sample_weight)[1]
    return expected_log_joint(posterior, model.log_joint(params, data))


def q_function(model: Model, params_old: Params, params: Params, data, *, sample_weight=None) -> Array:
    """Q(θ; θ_old) = Σ_n Σ_z p(z | x_n; θ_old) log p(x_n, z; θ), a scalar.

    Args:
      model: a jaxem ``Model``.
      params_old: θ_old, whose posterior weighs the log-potentials.
      params: θ, where the log-potentials are evaluated.
      data: raw or prepared data.
      sample_weight: optional ``[N]`` weights of the items.

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> params = jaxem.init(model, jax.random.key(0), x)
      >>> new, _ = jaxem.em_step(model, params, x)               # the M-step maximizes Q(.; params)
      >>> bool(jaxem.q_function(model, params, new, x) >= jaxem.q_function(model, params, params, x))
      True
    """
    sample_weight = check_inputs(model, data, params, sample_weight)
    return _q_function(model, params_old, params, data, sample_weight)


def entropy(q: Array) -> Array:
    """``-Σ q log q`` over all entries, with ``0 log 0 = 0``."""
    safe = jnp.where(q > 0, q, jnp.ones_like(q))
    return -jnp.sum(jnp.where(q > 0, q * jnp.log(safe), jnp.zeros_like(q)))


@functools.partial(jax.jit, static_argnums=(0, 4))
def _elbo(model, params, q, data, entropy_fn):
    data = model.prepare(data)
    log_potentials = model.log_joint(params, data)
    q = jax.tree_util.tree_map(lambda w, lp: w.astype(lp.dtype), q, log_potentials)
    return expected_log_joint(q, log_potentials) + entropy_fn(q)


def elbo(model: Model, params: Params, q: Any, data, *, entropy_fn: Optional[Callable[[Any], Array]] = None) -> Array:
    """The evidence lower bound ``E_q[log p(x, z; θ)] − E_q[log q(z)]``, a scalar.

    ``ELBO ≤ log_likelihood(model, params, data)`` for every q, with equality at
    ``q = posterior(model, params, data)``.

    Args:
      model: a jaxem ``Model``.
      params: θ.
      q: a distribution over the latent values shaped like ``model.log_joint``'s
        output: ``[N, K]`` for a mixture, each row non-negative and summing to one.
      data: raw or prepared data.
      entropy_fn: ``q -> H(q)``; the default ``-Σ q log q`` is right when the
        latent values of different items are independent under q (a mixture). For
        a chain, pass the entropy of your q (its pairwise marginals are needed).

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> params = jaxem.init(model, jax.random.key(0), x)
      >>> q = jaxem.posterior(model, params, x)                  # the tightest q
      >>> bound, log_lik = jaxem.elbo(model, params, q, x), jaxem.log_likelihood(model, params, x)
      >>> bool(jnp.isclose(bound, log_lik, rtol=1e-5))
      True
      >>> hard = jax.nn.one_hot(jaxem.predict(model, params, x), 2, dtype=q.dtype)
      >>> bool(jaxem.elbo(model, params, hard, x) <= log_lik)     # any other q: a lower bound
      True
    """
    check_inputs(model, data, params)
    if isinstance(q, (list, np.ndarray)):  # nested lists: one array, not a pytree
        q = jnp.asarray(q)
    _check_q(model, params, q, data)
    return _elbo(model, params, q, data, entropy if entropy_fn is None else entropy_fn)


def _check_q(model, params, q, data) -> None:
    expected = jax.eval_shape(lambda p, d: model.log_joint(p, model.prepare(d)), params, data)
    got = jax.tree_util.tree_map(jnp.shape, q)
    want = jax.tree_util.tree_map(lambda s: s.shape, expected)
    if jax.tree_util.tree_structure(got) != jax.tree_util.tree_structure(want) or jax.tree_util.tree_leaves(
        got
    ) != jax.tree_util.tree_leaves(want):
        raise ValueError(f"q must have the shape of the model's log-potentials {want}, got {got}")
    if not is_concrete(q):
        return
    for leaf in jax.tree_util.tree_leaves(q):
        leaf = jnp.asarray(leaf)
        if not bool(jnp.all(jnp.isfinite(leaf))) or bool(jnp.any(leaf < 0)):
            raise ValueError("q must be finite and non-negative")
    if isinstance(q, jax.Array) or hasattr(q, "__array__"):
        q = jnp.asarray(q)
        if q.ndim == 2 and jnp.issubdtype(q.dtype, jnp.floating):
            tol = max(1e-6, 1000.0 * float(jnp.finfo(q.dtype).eps))
            if bool(jnp.any(jnp.abs(jnp.sum(q, axis=1) - 1.0) > tol)):
                raise ValueError("each row of q must sum to one")
