"""SQUAREM: squared extrapolation of EM (Varadhan & Roland 2008, scheme S3).

EM is a fixed-point iteration ``θ ← F(θ)`` that converges slowly when components
overlap. One SQUAREM cycle takes two EM steps from ``θ0``,

    θ1 = F(θ0),  θ2 = F(θ1),  r = θ1 − θ0,  v = θ2 − 2 θ1 + θ0,

extrapolates along them with the S3 step length ``α = −‖r‖ / ‖v‖``,

    θ' = θ0 − 2 α r + α² v,

and takes one stabilizing EM step ``θ'' = F(θ')``. The step length is bounded,
``−step_max ≤ α ≤ −1`` (``α = −1`` gives ``θ' = θ2``, i.e. plain EM), and
``step_max`` grows ×4 each time the bound is hit and the extrapolation is kept.

Monotone ascent. The stabilizing step also returns log p(x; θ'). The cycle keeps
``θ''`` only when that is finite and at least log p(x; θ1); then, EM being monotone,
log p(x; θ'') ≥ log p(x; θ') ≥ log p(x; θ1) ≥ log p(x; θ0). Otherwise it falls back
to the plain EM point ``θ2`` and shrinks ``step_max`` ÷4 (not below 1). No cycle
costs more than three EM steps, and no extra log-likelihood evaluation is needed.

Parametrization. Extrapolation is done on the parameters with mixing weights
mapped to log weights (a ``weights`` field, mapped back with a softmax), so weights
stay positive and sum to one; means and precision factors are extrapolated as they
are (a factor's sign does not matter: P = U Uᵀ). Any other invalid extrapolated
point shows up as a non-finite or lower log-likelihood and is rejected.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxem._src import engine
from jaxem._src.base import Model

_STEP_FACTOR = 4.0


def to_unconstrained(params):
    """``params`` with a ``weights`` field replaced by log weights."""
    if hasattr(params, "weights") and hasattr(params, "_replace"):
        return params._replace(weights=jnp.log(params.weights))
    return params


def from_unconstrained(params):
    """Inverse of ``to_unconstrained`` (a softmax of the log weights)."""
    if hasattr(params, "weights") and hasattr(params, "_replace"):
        return params._replace(weights=jax.nn.softmax(params.weights))
    return params


def _dot(a, b):
    leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x, y: jnp.sum(x * y), a, b))
    return sum(leaves[1:], leaves[0])


def extrapolate(p0, p1, p2, step_max):
    """The S3 extrapolated point from three successive EM iterates.

    Returns:
      ``(params, alpha)`` with ``alpha`` in ``[-step_max, -1]``.
    """
    u0, u1, u2 = to_unconstrained(p0), to_unconstrained(p1), to_unconstrained(p2)
    r = jax.tree_util.tree_map(lambda a, b: b - a, u0, u1)
    v = jax.tree_util.tree_map(lambda a, b, c: c - 2.0 * b + a, u0, u1, u2)
    rr, vv = _dot(r, r), _dot(v, v)
    safe = jnp.where(vv > 0, vv, jnp.ones_like(vv))
    alpha = jnp.where(vv > 0, -jnp.sqrt(rr / safe), -jnp.ones_like(vv))
    alpha = jnp.clip(alpha, -step_max, -1.0)
    extrapolated = jax.tree_util.tree_map(
        lambda a, dr, dv: (a - 2.0 * alpha * dr + alpha * alpha * dv).astype(a.dtype), u0, r, v
    )
    return from_unconstrained(extrapolated), alpha


def run_squarem(model: Model, params, data, *, max_iter: int, tol, sample_weight=None, chunk_size=None) -> engine.EMState:
    """SQUAREM from ``params`` in a ``lax.while_loop`` (one restart; pure, unchecked).

    Like ``jaxem.run_em``: stops when the change of the log-likelihood per
    observation over one cycle is below ``tol``, on NaN, or once ``max_iter`` EM
    steps have been evaluated (a cycle evaluates three, so up to ``max_iter + 2``).
    ``n_iter`` counts EM-step evaluations, and ``history[t]`` is the best
    log-likelihood known after evaluation ``t`` (non-decreasing).
    """
    data = model.prepare(data)
    n_obs = engine._n_observations(model, params, data, sample_weight)
    dtype = jax.eval_shape(lambda p: engine.e_step(model, p, data, sample_weight)[0], params).dtype

    def em(p):
        return engine._em_step(model, p, data, sample_weight, chunk_size)

    def cond(carry):
        state, _ = carry
        return engine.keep_going(state, max_iter)

    def body(carry):
        state, step_max = carry
        p1, l0 = em(state.params)
        p2, l1 = em(p1)
        extrapolated, alpha = extrapolate(state.params, p1, p2, step_max)
        stabilized, l_ext = em(extrapolated)
        keep = jnp.isfinite(l_ext) & (l_ext >= l1)
        new_params = jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), stabilized, p2)
        grown = jnp.where(alpha <= -step_max, _STEP_FACTOR * step_max, step_max)
        step_max = jnp.where(keep, grown, jnp.maximum(1.0, step_max / _STEP_FACTOR)).astype(step_max.dtype)
        mean = l0 / n_obs.astype(dtype)
        converged = jnp.abs(mean - state.mean_log_likelihood) < tol
        best_third = jnp.where(keep, l_ext, l1)
        history = (
            state.history.at[state.n_iter].set(l0, mode="drop")
            .at[state.n_iter + 1].set(l1, mode="drop")
            .at[state.n_iter + 2].set(best_third, mode="drop")
        )
        return engine.EMState(new_params, mean, state.n_iter + 3, converged, history), step_max

    state = engine.initial_state(params, dtype, max_iter)
    state, _ = jax.lax.while_loop(cond, body, (state, jnp.asarray(1.0, dtype)))
    return state
