"""Differentiable fits: the EM fixed point differentiated by the implicit function theorem.

A fit ends at a fixed point of the EM map, θ* = M(θ*; φ), where φ is everything
the map reads besides θ: the data, ``sample_weight``, and any continuous
hyperparameter the model closes over (``reg_covar``, a prior strength). Near θ*,
θ*(φ) is a smooth function with

    dθ*/dφ = (I − ∂M/∂θ)⁻¹ ∂M/∂φ,

so the reverse-mode derivative of a loss ℓ(θ*) is ``vᵀ ∂M/∂φ`` with ``v`` the
solution of the adjoint equation

    (I − ∂M/∂θ)ᵀ v = ḡ,   ḡ = ∂ℓ/∂θ*.

``fit_differentiable`` runs EM forward in one ``lax.while_loop`` (never
differentiated) and is a ``jax.custom_vjp`` whose backward pass solves the adjoint
equation with vector–Jacobian products of *one* EM update at θ*: the fixed-point
iteration ``v ← ḡ + (∂M/∂θ)ᵀ v`` (a Neumann series; it converges at EM's own rate,
the spectral radius of ∂M/∂θ being EM's fraction of missing information) or GMRES.
One more VJP of the same update gives the cotangents of the data, the weights and
the hyperparameters. Nothing is unrolled: memory is that of one EM update.

Hyperparameters reach the custom VJP by closure conversion
(``jax.closure_convert``): a model built inside the differentiated function from a
traced ``reg_covar`` closes over the tracer, and the conversion makes it an
explicit argument of the map. The fixed point lives in params space, whatever the
map does there (simplex weights, triangular factors): only M as a function is used,
and directions M ignores (the sum of the weights) have ∂M/∂θ = 0.

When the forward loop or the adjoint solve does not meet its tolerance, the
cotangents are NaN (never a plausible wrong number); ``converged`` says which.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxem._src import algorithms, chunking, engine, validation
from jaxem._src import update as update_lib
from jaxem._src.base import Array, Model, Params
from jaxem._src.inference import float_dtype


class DifferentiableFit(NamedTuple):
    """What ``fit_differentiable`` returns (a pytree).

    Attributes:
      params: θ*, the fixed point reached; differentiable (reverse mode) with
        respect to the data, ``sample_weight`` and traced hyperparameters.
      log_likelihood: total log-likelihood of ``params`` (differentiable too).
      n_iter: EM-map evaluations of the forward loop.
      converged: whether the forward loop met ``tol``.
      change: the relative change of the params at the last step.
    """

    params: Any
    log_likelihood: Array
    n_iter: Array
    converged: Array
    change: Array


class _Settings(NamedTuple):
    """The static settings of the forward loop and the adjoint solve."""

    make_algorithm: Any
    max_iter: int
    tol: float
    backward: str
    backward_max_iter: int
    backward_tol: float


def relative_change(new, old) -> Array:
    """``max |new − old| / (1 + |old|)`` over the floating leaves (a scalar)."""
    changes = [
        jnp.max(jnp.abs(n - o) / (1.0 + jnp.abs(o)), initial=0.0)
        for n, o in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(old))
        if jnp.issubdtype(jnp.result_type(o), jnp.floating)
    ]
    return functools.reduce(jnp.maximum, changes)


def _tree_add(a, b):
    return jax.tree_util.tree_map(jnp.add, a, b)


def _tree_sub(a, b):
    return jax.tree_util.tree_map(jnp.subtract, a, b)


def _tree_max_abs(tree) -> Array:
    return functools.reduce(jnp.maximum, [jnp.max(jnp.abs(leaf), initial=0.0) for leaf in jax.tree_util.tree_leaves(tree)])


def _forward(em_map, settings: _Settings, params):
    """``(θ*, n_iter, converged, change)``: the algorithm iterated in one while loop
    until the relative change of the params falls below ``tol``."""
    algorithm = settings.make_algorithm(em_map)
    dtype = jax.tree_util.tree_leaves(params)[0].dtype

    def body(carry):
        state, n_iter, _, _ = carry
        new_state, _ = algorithm.step(state)
        change = relative_change(algorithm.params(new_state), algorithm.params(state))
        return new_state, n_iter + algorithm.evaluations, change < settings.tol, change

    def keep_going(carry):
        _, n_iter, converged, change = carry
        return (n_iter < settings.max_iter) & ~converged & ~jnp.isnan(change)

    start = (algorithm.init(params), jnp.asarray(0, jnp.int32), jnp.asarray(False), jnp.asarray(jnp.inf, dtype))
    state, n_iter, converged, change = jax.lax.while_loop(keep_going, body, start)
    return algorithm.params(state), n_iter, converged, change


def _adjoint_solve(vjp_params, cotangent, settings: _Settings):
    """``(v, ok)``: the solution of ``v − (∂M/∂θ)ᵀ v = cotangent`` and whether it met
    ``backward_tol`` (relative, in the max norm)."""
    scale = _tree_max_abs(cotangent)
    tol = settings.backward_tol * jnp.maximum(scale, jnp.finfo(scale.dtype).tiny)

    def apply(v):  # (I − ∂M/∂θ)ᵀ v
        return _tree_sub(v, vjp_params(v))

    if settings.backward == "gmres":
        v, _ = jax.scipy.sparse.linalg.gmres(
            apply, cotangent, x0=cotangent, tol=settings.backward_tol, atol=0.0,
            restart=20, maxiter=max(1, settings.backward_max_iter // 20), solve_method="batched",
        )
    else:

        def body(carry):
            v, i, _ = carry
            new = _tree_add(cotangent, vjp_params(v))
            return new, i + 1, _tree_max_abs(_tree_sub(new, v))

        def keep_going(carry):
            _, i, step = carry
            return (i < settings.backward_max_iter) & (step > tol) & ~jnp.isnan(step)

        v, _, _ = jax.lax.while_loop(keep_going, body, (cotangent, jnp.asarray(0, jnp.int32), jnp.asarray(jnp.inf, scale.dtype)))
    residual = _tree_max_abs(_tree_sub(apply(v), cotangent))
    return v, residual <= 10.0 * tol


def _nan_unless(ok, tree):
    """``tree`` with every floating leaf NaN unless ``ok`` (float0 leaves unchanged)."""

    def leaf(x):
        if x is None or not jnp.issubdtype(x.dtype, jnp.floating):
            return x
        return jnp.where(ok, x, jnp.nan)

    return jax.tree_util.tree_map(leaf, tree)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _fixed_point(step, settings: _Settings, init_params, data, sample_weight, *consts):
    params, n_iter, converged, change = _forward(lambda p: step(p, data, sample_weight, *consts), settings, init_params)
    return params, n_iter, converged, change


def _fixed_point_fwd(step, settings, init_params, data, sample_weight, *consts):
    out = _fixed_point(step, settings, init_params, data, sample_weight, *consts)
    params, _, converged, _ = out
    return out, (params, converged, init_params, data, sample_weight, consts)


def _fixed_point_bwd(step, settings, residuals, cotangents):
    params, converged, init_params, data, sample_weight, consts = residuals
    cotangent = cotangents[0]

    # One linearization of one EM update at θ*; the solve uses its params part
    # (XLA drops the unused cotangents inside the loop), the last VJP the rest.
    _, vjp = jax.vjp(lambda p, d, w, *c: step(p, d, w, *c)[0], params, data, sample_weight, *consts)
    v, solved = _adjoint_solve(lambda u: vjp(u)[0], cotangent, settings)
    inputs = _nan_unless(converged & solved, vjp(v)[1:])
    zero_start = jax.tree_util.tree_map(jnp.zeros_like, init_params)  # θ* does not move with the start
    return (zero_start, *inputs)


_fixed_point.defvjp(_fixed_point_fwd, _fixed_point_bwd)


def fit_differentiable(
    model: Model,
    data,
    init_params: Params,
    *,
    sample_weight=None,
    max_iter: int = 1000,
    tol: Optional[float] = None,
    algorithm: str = "em",
    backward: str = "fixed_point",
    backward_max_iter: int = 1000,
    backward_tol: Optional[float] = None,
) -> DifferentiableFit:
    """Fits ``model`` by EM from ``init_params``, differentiably (reverse mode).

    Runs EM (or SQUAREM) in one ``lax.while_loop`` until the relative change of
    the params, ``max |Δθ| / (1 + |θ|)``, is below ``tol``. ``jax.grad`` of any
    function of the result is taken by the implicit function theorem at the fixed
    point θ* = M(θ*): the backward pass solves ``(I − ∂M/∂θ)ᵀ v = ḡ`` with
    vector–Jacobian products of one EM update (``jaxem/_src/differentiable.py``),
    never unrolling the loop. Differentiable with respect to ``data``,
    ``sample_weight`` and continuous hyperparameters of a model built inside the
    differentiated function (``reg_covar=`` of ``gaussian_mixture`` and
    ``gaussian_hmm``); the derivative with respect to ``init_params`` is zero.

    Models with the default gradient M-step (``jaxem.gradient_m_step`` with
    optax's L-BFGS) cannot be reverse-differentiated: its line search is a while
    loop (``docs/differentiable.md``).

    Args:
      model: a jaxem ``Model`` with an M-step.
      data: raw data (``[N, D]``, ``jaxem.Sequences``, ...) or ``model.prepare(data)``.
      init_params: one set of starting parameters (e.g. ``jaxem.fit(...).params``,
        then only a few steps are left to take).
      sample_weight: optional ``[N]`` non-negative weights of the items.
      max_iter: maximum EM-map evaluations of the forward loop.
      tol: relative change of the params at which the loop stops (default
        ``1e-5`` in float32, ``1e-10`` in float64).
      algorithm: ``"em"`` (default) or ``"squarem"`` for the forward loop.
      backward: ``"fixed_point"`` (default: ``v ← ḡ + (∂M/∂θ)ᵀ v``) or ``"gmres"``.
      backward_max_iter: maximum VJPs of the adjoint solve.
      backward_tol: relative tolerance of the adjoint solve (default: ``tol``).

    Returns:
      A ``DifferentiableFit``. Its cotangents are NaN when the forward loop did
      not converge (``converged`` is ``False``) or the adjoint solve did not meet
      ``backward_tol``.

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> start = jaxem.fit(jaxem.models.gaussian_mixture(2), x, key=0).params
      >>> def held_out(reg_covar):                          # a loss of the fitted params
      ...     model = jaxem.models.gaussian_mixture(2, reg_covar=reg_covar)
      ...     fitted = jaxem.fit_differentiable(model, x[:200], start)
      ...     return jaxem.log_likelihood(model, fitted.params, x[200:]) / 72
      >>> value, slope = jax.value_and_grad(held_out)(0.01)
      >>> bool(jnp.isfinite(slope))
      True
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a jaxem Model, got {type(model).__name__}")
    update_lib.check_has_m_step(model)
    max_iter = validation.check_positive_int(max_iter, "max_iter")
    backward_max_iter = validation.check_positive_int(backward_max_iter, "backward_max_iter")
    if algorithm not in ("em", "squarem"):
        raise ValueError(f"algorithm must be 'em' or 'squarem', got {algorithm!r}")
    if backward not in ("fixed_point", "gmres"):
        raise ValueError(f"backward must be 'fixed_point' or 'gmres', got {backward!r}")
    data = validation.as_data(data)
    if init_params is None:
        raise TypeError("init_params must be the model's parameters, got None")
    sample_weight = engine.check_inputs_and_params(model, data, init_params, sample_weight)
    model = chunking.with_chunk_size(model, None, data)
    prepared = model.prepare(data)  # outside the custom VJP: plain autodiff carries cotangents back through it
    dtype = float_dtype(prepared)
    default_tol = 1e-10 if dtype == jnp.float64 else 1e-5
    tol = default_tol if tol is None else validation.check_nonnegative_float(tol, "tol")
    backward_tol = tol if backward_tol is None else validation.check_nonnegative_float(backward_tol, "backward_tol")
    init_params = jax.tree_util.tree_map(
        lambda leaf: jnp.asarray(leaf).astype(dtype) if jnp.issubdtype(jnp.result_type(leaf), jnp.floating) else jnp.asarray(leaf),
        init_params,
    )

    def step(params, data, sample_weight):
        return update_lib.em_map(model, data, sample_weight)(params)

    converted, consts = jax.closure_convert(step, init_params, prepared, sample_weight)
    settings = _Settings(algorithms.resolve(algorithm), max_iter, float(tol), backward, backward_max_iter, float(backward_tol))
    params, n_iter, converged, change = _fixed_point(converted, settings, init_params, prepared, sample_weight, *consts)
    log_likelihood = update_lib.total_log_likelihood(model, params, prepared, sample_weight)
    return DifferentiableFit(params, log_likelihood, n_iter, converged, change)
