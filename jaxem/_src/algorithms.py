"""Fitting algorithms as pure ``(init, step, params)`` triples over an EM map.

An EM map ``F: params -> (new_params, log_likelihood of params)`` is one E-step
and one M-step (``jaxem/_src/update.py``). An *algorithm* turns repeated calls of
``F`` into a fit, as optax's ``GradientTransformation`` turns gradients into
updates: a NamedTuple of pure functions,

* ``init(params) -> state``: the carried state (``EMState``, ``SquaremState``);
* ``step(state) -> (state, info)``: one step; ``info`` (``EMInfo``) is reported,
  never carried;
* ``params(state) -> params``: the current parameters.

Algorithms know nothing of models, data, restarts, stopping or history: one loop
(``jaxem/_src/loop.py``) drives any of them, under ``vmap`` over restarts, and the
progress driver (``progress.py``) resumes the same loop between reports.

SQUAREM (Varadhan & Roland 2008, scheme S3). EM converges slowly when components
overlap. One SQUAREM step takes two EM steps from ``θ0``,

    θ1 = F(θ0),  θ2 = F(θ1),  r = θ1 − θ0,  v = θ2 − 2 θ1 + θ0,

extrapolates along them with the S3 step length ``α = −‖r‖ / ‖v‖``,

    θ' = θ0 − 2 α r + α² v,

and takes one stabilizing EM step ``θ'' = F(θ')``. The step length is bounded,
``−step_max ≤ α ≤ −1`` (``α = −1`` gives ``θ' = θ2``, i.e. plain EM), and
``step_max`` grows ×4 each time the bound is hit and the extrapolation is kept.
The step keeps ``θ''`` only when log p(x; θ') is finite and at least
log p(x; θ1); then, EM being monotone, log p(x; θ'') ≥ log p(x; θ') ≥
log p(x; θ1) ≥ log p(x; θ0). Otherwise it falls back to the plain EM point ``θ2``
and shrinks ``step_max`` ÷4 (not below 1). Extrapolation is done with mixing
weights mapped to log weights (a ``weights`` field of NamedTuple params), so
weights stay positive and sum to one; any other invalid extrapolated point shows
up as a non-finite or lower log-likelihood and is rejected.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from jaxem._src.base import Array


class EMMap(Protocol):
    """``params -> (new_params, log_likelihood)``: one EM step; the log-likelihood
    is that of ``params``, before the update."""

    def __call__(self, params: Any) -> tuple[Any, Array]: ...


class EMInfo(NamedTuple):
    """What one step of an algorithm reports (never carried to the next step).

    Attributes:
      log_likelihood: total log-likelihood of the params at the start of the step.
      objective: what the step never lowers, at the start of the step: the
        log-likelihood (a log posterior when the model has a prior).
      trace: ``[evaluations]`` the log-likelihood known after each EM-map
        evaluation of this step (the fit's ``history``); plain EM evaluates once.
      accepted: plain EM: whether the M-step changed the params; SQUAREM: whether
        the extrapolated point was kept.
    """

    log_likelihood: Array
    objective: Array
    trace: Array
    accepted: Array


class Algorithm(NamedTuple):
    """A fitting algorithm: pure functions over a carried state.

    Attributes:
      init: ``params -> state``.
      step: ``state -> (state, EMInfo)``.
      params: ``state -> params``.
      evaluations: EM-map evaluations per step (the length of ``EMInfo.trace``).
    """

    init: Callable[[Any], Any]
    step: Callable[[Any], tuple[Any, EMInfo]]
    params: Callable[[Any], Any]
    evaluations: int


class EMState(NamedTuple):
    """Plain EM's carried state: just the parameters."""

    params: Any


class SquaremState(NamedTuple):
    """SQUAREM's carried state.

    Attributes:
      params: the current parameters.
      step_max: the current bound on ``|α|`` (a scalar, ≥ 1).
    """

    params: Any
    step_max: Array


def params_changed(new, old) -> Array:
    """Whether any entry of ``new`` differs from ``old`` (a boolean scalar)."""
    changed = [jnp.any(a != b) for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(old))]
    return jnp.any(jnp.stack(changed)) if changed else jnp.asarray(False)


def em(update: EMMap) -> Algorithm:
    """Plain EM: ``θ ← F(θ)``, one EM-map evaluation per step.

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> result = jaxem.fit(model, x, key=0, n_restarts=2, algorithm=jaxem.em)   # the default
      >>> result.params.means.shape
      (2, 2)
    """

    def step(state: EMState):
        new, log_likelihood = update(state.params)
        info = EMInfo(log_likelihood, log_likelihood, log_likelihood[None], params_changed(new, state.params))
        return EMState(new), info

    return Algorithm(init=EMState, step=step, params=lambda state: state.params, evaluations=1)


_STEP_FACTOR = 4.0


def to_unconstrained(params):
    """``params`` with a ``weights`` field (mixing weights) replaced by log weights."""
    if isinstance(params, tuple) and "weights" in getattr(params, "_fields", ()):
        return params._replace(weights=jnp.log(params.weights))
    return params


def from_unconstrained(params):
    """Inverse of ``to_unconstrained`` (a softmax of the log weights)."""
    if isinstance(params, tuple) and "weights" in getattr(params, "_fields", ()):
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


def squarem(update: EMMap) -> Algorithm:
    """SQUAREM: three EM-map evaluations per step, never lowering the
    log-likelihood (see the module docstring). ``EMInfo.trace`` holds the
    log-likelihoods of ``θ0``, ``θ1`` and the best of ``θ'`` / ``θ1``.

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> result = jaxem.fit(model, x, key=0, n_restarts=2, algorithm=jaxem.squarem)
      >>> bool(jnp.all(jnp.diff(result.history[0][~jnp.isnan(result.history[0])]) >= -1e-3))
      True
    """

    def init(params) -> SquaremState:
        dtype = jax.tree_util.tree_leaves(params)[0].dtype
        return SquaremState(params, jnp.asarray(1.0, dtype if jnp.issubdtype(dtype, jnp.floating) else None))

    def step(state: SquaremState):
        p1, l0 = update(state.params)
        p2, l1 = update(p1)
        extrapolated, alpha = extrapolate(state.params, p1, p2, state.step_max.astype(l0.dtype))
        stabilized, l_ext = update(extrapolated)
        keep = jnp.isfinite(l_ext) & (l_ext >= l1)
        new_params = jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), stabilized, p2)
        step_max = state.step_max.astype(l0.dtype)
        grown = jnp.where(alpha <= -step_max, _STEP_FACTOR * step_max, step_max)
        step_max = jnp.where(keep, grown, jnp.maximum(1.0, step_max / _STEP_FACTOR)).astype(state.step_max.dtype)
        trace = jnp.stack([l0, l1, jnp.where(keep, l_ext, l1)])
        return SquaremState(new_params, step_max), EMInfo(l0, l0, trace, keep)

    return Algorithm(init=init, step=step, params=lambda state: state.params, evaluations=3)


ALGORITHMS = {"em": em, "squarem": squarem}


def resolve(algorithm) -> Callable[[EMMap], Algorithm]:
    """An algorithm factory from ``fit``'s ``algorithm`` argument: ``"em"``,
    ``"squarem"`` or a factory ``update -> Algorithm`` (e.g. ``jaxem.squarem``)."""
    if isinstance(algorithm, str):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {tuple(ALGORITHMS)} or a factory update -> Algorithm, got {algorithm!r}")
        return ALGORITHMS[algorithm]
    if not callable(algorithm):
        raise TypeError(f"algorithm must be a name or a factory update -> Algorithm, got {type(algorithm).__name__}")
    return algorithm
