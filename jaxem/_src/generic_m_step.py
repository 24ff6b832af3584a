"""The generic M-step (generalized EM): maximize Q with an optax optimizer.

When a model has no closed-form maximizer, the M-step runs ``inner_steps`` steps of
an optax optimizer on

    Q(θ) = Σ posterior · log_joint(θ, data),

warm-started at θ_t, in unconstrained coordinates ``u`` with θ = constrain(u)
(see ``jaxem.constraints``), inside one ``lax.scan`` so it jits, vmaps over restarts
and nests in ``lax.while_loop``. It never lowers Q: it takes the best iterate the
optimizer reached (after at least one step) and returns it only if its Q is strictly
higher than Q(θ_t); otherwise it returns θ_t itself, bit for bit.
That makes every step a generalized-EM step, so the log-likelihood never decreases.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

from jaxem._src import constraints as constraints_lib
from jaxem._src.base import Array, FreezableMStep
from jaxem._src.validation import check_positive_int

DEFAULT_INNER_STEPS = 20


def default_optimizer() -> optax.GradientTransformation:
    """L-BFGS with optax's zoom line search: scale-free and precise near a fixed point."""
    return optax.lbfgs()


def expected_log_joint(posterior: Any, log_potentials: Any) -> Array:
    """``Σ posterior · log_potentials`` over every leaf, with ``0 · (-inf) = 0``
    (entries may be negative: a Gaussian latent's posterior holds ``E[z]``, ``−½ E[zzᵀ]``).

    Args:
      posterior: ``[N, K]`` for a mixture (or a pytree like the log-potentials).
      log_potentials: same structure as ``posterior``.
    """
    terms = jax.tree_util.tree_map(
        lambda w, lp: jnp.sum(jnp.where(w != 0, w.astype(lp.dtype) * lp, jnp.zeros_like(lp))),
        posterior,
        log_potentials,
    )
    return sum(jax.tree_util.tree_leaves(terms))


def _total_weight(posterior: Any, dtype) -> Array:
    total = sum(jnp.sum(leaf).astype(dtype) for leaf in jax.tree_util.tree_leaves(posterior))
    return jnp.maximum(jax.lax.stop_gradient(total), jnp.asarray(1.0, dtype) * jnp.finfo(dtype).tiny)


def resolve_mask(mask: Any, params: Any) -> Any:
    """A boolean pytree like ``params`` from a mask spelling.

    ``mask`` is ``None`` (nothing frozen), a pytree of booleans (Python bools or
    boolean arrays of the leaf's shape) with the structure of ``params``, or a
    field name / sequence of field names of a NamedTuple ``params`` (those fields
    frozen whole).
    """
    if mask is None:
        return jax.tree_util.tree_map(lambda _: False, params)
    if isinstance(mask, str):
        mask = (mask,)
    if isinstance(mask, (list, tuple)) and all(isinstance(m, str) for m in mask) and not hasattr(mask, "_fields"):
        fields = getattr(params, "_fields", ())
        unknown = [m for m in mask if m not in fields]
        if unknown:
            raise ValueError(f"mask names {unknown} are not fields of the params {tuple(fields)}")
        return type(params)(*[
            jax.tree_util.tree_map(lambda _: name in mask, value) for name, value in zip(fields, params)
        ])
    return mask


def select(mask: Any, frozen_values: Any, new_values: Any) -> Any:
    """Leaf-wise ``where(mask, frozen_values, new_values)`` (``mask`` resolved)."""

    def pick(m, old, new):
        if isinstance(m, bool):
            return old if m else new
        m = jnp.broadcast_to(jnp.asarray(m, bool), jnp.shape(new))
        return jnp.where(m, old, new)

    return jax.tree_util.tree_map(pick, mask, frozen_values, new_values)


@contextlib.contextmanager
def _lenient_promotion():
    # Third-party optimizers (optax's L-BFGS) mix int32/int64 internally; keep a
    # user's strict promotion settings from breaking them.
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        yield


def maximize(
    objective: Callable[[Any], Array],
    params: Any,
    *,
    constraints: Any = None,
    optimizer: Optional[optax.GradientTransformation] = None,
    inner_steps: int = DEFAULT_INNER_STEPS,
    frozen: Any = None,
    scale: Array | float = 1.0,
):
    """Raises ``objective`` from ``params`` by ``inner_steps`` optimizer steps.

    Args:
      objective: ``params -> scalar`` to maximize (Q).
      params: the starting point θ_t (a pytree).
      constraints: a pytree of ``Constraint``/``None`` like ``params``, or ``None``.
      optimizer: an optax ``GradientTransformation`` (default ``optax.lbfgs()``);
        it minimizes ``-objective / scale``.
      inner_steps: number of optimizer steps.
      frozen: a resolved boolean mask like ``params``: those entries keep their
        value exactly and receive zero gradient.
      scale: a positive normalizer of the objective (the total posterior weight),
        so step sizes do not depend on the number of samples.

    Returns:
      ``(new_params, q_before, q_after)``: ``new_params`` is θ_t itself unless the
      best iterate has a strictly higher objective; ``q_after`` is the objective
      of ``new_params``.
    """
    optimizer = default_optimizer() if optimizer is None else optimizer
    tx = optax.with_extra_args_support(optimizer)
    mask = resolve_mask(frozen, params)

    def read(u):
        return select(mask, params, constraints_lib.constrain_tree(constraints, u))

    def loss(u):
        return -objective(read(u)) / scale

    def step(carry, index):
        u, state, best_u, best_loss = carry
        value, grad = jax.value_and_grad(loss)(u)
        # Iterate 0 is θ_t itself (up to the round trip through u): never a candidate.
        better = (index > 0) & jnp.isfinite(value) & (value < best_loss)
        best_u = jax.tree_util.tree_map(lambda b, c: jnp.where(better, c, b), best_u, u)
        best_loss = jnp.where(better, value, best_loss)
        with _lenient_promotion():
            updates, state = tx.update(grad, state, u, value=value, grad=grad, value_fn=loss)
        return (optax.apply_updates(u, updates), state, best_u, best_loss), None

    u0 = constraints_lib.unconstrain_tree(constraints, params)
    q_before = objective(params)
    inf = jnp.asarray(jnp.inf, q_before.dtype)
    with _lenient_promotion():
        state0 = tx.init(u0)
    steps = jnp.arange(inner_steps)
    (u, _, best_u, best_loss), _ = jax.lax.scan(step, (u0, state0, u0, inf), steps)
    last = loss(u)  # the final iterate has not been scored inside the scan
    best_u = jax.tree_util.tree_map(lambda b, c: jnp.where(last < best_loss, c, b), best_u, u)
    candidate = read(best_u)
    q_candidate = objective(candidate)
    accept = jnp.isfinite(q_candidate) & (q_candidate > q_before)
    new_params = jax.tree_util.tree_map(lambda c, p: jnp.where(accept, c, p), candidate, params)
    return new_params, q_before, jnp.where(accept, q_candidate, q_before)


def check_optimizer_and_constraints(optimizer, constraints) -> None:
    """``TypeError`` naming the argument unless ``optimizer`` is ``None`` or an optax
    ``GradientTransformation`` and every leaf of ``constraints`` is ``None`` or a
    ``jaxem.constraints`` ``Constraint`` (e.g. ``"positive"`` instead of
    ``constraints.positive()``)."""
    if optimizer is not None and not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise TypeError(
            f"optimizer must be an optax GradientTransformation (e.g. optax.adam(1e-2)) or None, got {optimizer!r}"
        )
    if constraints is None:
        return
    leaves = jax.tree_util.tree_leaves(constraints, is_leaf=lambda c: c is None or isinstance(c, constraints_lib.Constraint))
    for leaf in leaves:
        if leaf is not None and not isinstance(leaf, constraints_lib.Constraint):
            raise TypeError(
                "constraints must hold jaxem.constraints objects (e.g. jaxem.constraints.positive()) or None "
                f"per parameter leaf, got {leaf!r}"
            )


def gradient_m_step(
    log_joint: Callable[[Any, Any], Any],
    *,
    constraints: Any = None,
    optimizer: Optional[optax.GradientTransformation] = None,
    inner_steps: int = DEFAULT_INNER_STEPS,
    frozen: Any = None,
    log_prior: Optional[Callable[[Any], Array]] = None,
) -> Callable[[Any, Any, Any], Any]:
    """An ``m_step(data, posterior, params) -> params`` that maximizes Q by gradients.

    Use it for any ``log_joint`` without a closed-form maximizer:
    ``jaxem.Model(init, log_joint, jaxem.mixture_latent(), m_step=gradient_m_step(log_joint, ...))``.
    Each call runs ``inner_steps`` optimizer steps warm-started at the current
    params, and never lowers Q (it keeps θ_t if no iterate has a higher Q), so EM
    with it never lowers the log-likelihood.

    Args:
      log_joint: ``(params, data) -> log_potentials`` (``[N, K]`` for a mixture).
      constraints: a pytree like the params whose leaves are ``Constraint`` or
        ``None`` (unconstrained); see ``jaxem.constraints``.
      optimizer: an optax optimizer (default ``optax.lbfgs()``; e.g.
        ``optax.adam(1e-2)``). Its state is re-initialized at every M-step.
      inner_steps: optimizer steps per M-step.
      frozen: a boolean mask like the params, or field names, held fixed.
      log_prior: optional ``params -> scalar`` log prior density: the M-step
        then maximizes Q + log_prior (MAP-EM). Give the model the same function
        (``jaxem.Model(..., log_prior=log_prior)``) so that the fit ascends, and
        reports, log-likelihood + log prior.

    Returns:
      A ``FreezableMStep``, called as ``m_step(data, posterior, params)``;
      ``jaxem.freeze`` uses its ``with_frozen``.

    Examples:
      >>> from jaxem import constraints
      >>> def log_joint(p, x):             # [N] data -> [N, 2] log-potentials
      ...     return jnp.log(p["w"])[None, :] + jax.scipy.stats.norm.logpdf(x[:, None], p["mu"][None, :], p["s"])
      >>> def init(key, x):
      ...     mu = jax.random.choice(key, x, (2,), replace=False)
      ...     return {"w": jnp.full(2, 0.5, x.dtype), "mu": mu, "s": jnp.std(x)}
      >>> declared = {"w": constraints.simplex(), "mu": None, "s": constraints.positive()}
      >>> m_step = jaxem.gradient_m_step(log_joint, constraints=declared, inner_steps=30)
      >>> model = jaxem.Model(init, log_joint, jaxem.mixture_latent(), m_step=m_step)
      >>> x = jnp.asarray(np.random.default_rng(0).normal([-2.0, 2.0] * 100))  # [200]
      >>> result = jaxem.fit(model, x, key=0, n_restarts=2, max_iter=20)
      >>> result.params["mu"].shape
      (2,)
    """
    inner_steps = check_positive_int(inner_steps, "inner_steps")
    check_optimizer_and_constraints(optimizer, constraints)

    def with_frozen(frozen):
        def m_step(data, posterior, params):
            return _gradient_update(
                log_joint, data, posterior, params, constraints, optimizer, inner_steps, frozen, log_prior
            )

        return FreezableMStep(m_step, with_frozen)

    return with_frozen(frozen)


def _gradient_update(log_joint, data, posterior, params, constraints, optimizer, inner_steps: int, frozen, log_prior=None):
    """``params`` raised by ``maximize`` on Q(θ) = Σ posterior · log_joint(θ, data)
    (plus ``log_prior(θ)`` when given)."""

    def q(p):
        value = expected_log_joint(posterior, log_joint(p, data))
        return value if log_prior is None else value + log_prior(p).astype(value.dtype)

    dtype = jax.eval_shape(q, params).dtype
    new_params, _, _ = maximize(
        q,
        params,
        constraints=constraints,
        optimizer=optimizer,
        inner_steps=inner_steps,
        frozen=frozen,
        scale=_total_weight(posterior, dtype),
    )
    return new_params
