"""Gaussian log-densities and statistics corrected where the global expansion cancels.

The fast path of the Gaussian family expands everything about one global centre:
``log N(x | μ_k, P_k) = T(x') · η_k`` and the second moments ``Σ r x' x'ᵀ``, from
which the M-step subtracts ``n μ μᵀ``. For a component whose spread ``σ'`` is tiny
against its distance ``|μ'|`` from the global centre (standardized units), both
cancel: the rounding error is about ``eps · |μ'|² / σ'²`` (relative, in the
variances; nats, in each log-density), a factor 3 on the variances of two sd-1
clusters 10 000 apart in float32 (issue 12, item 2).

The two matrix products of the fast path are kept for every component. Each
component is flagged from its params alone (``component_flags``: the estimate
``eps · (1 + max_d μ'²_kd) · max_d P'_k,dd`` above ``TOLERANCE``, ``O(K D²)``), and
only the flagged ones are recomputed from explicit differences, one component at a
time, in a ``lax.while_loop`` over the flags (``replace_flagged``):

- ``log_densities``: the flagged columns, ``-½ |U'_kᵀ (x' - μ'_k)|² + log|U'_k| +
  const``, whose rounding is ``eps · |x'| / σ'`` (linear in the ratio);
- ``statistics``: ``[S0, Σ r (x' - c), quad(x' - c), S0 c]`` per component,
  ``[K, F + D]``, additive over rows like the global ``[K, F]``; ``c`` is the
  component's current mean where it is flagged and 0 (the global centre: the fast
  path's statistics, bitwise) elsewhere. The last ``D`` columns, the count-weighted
  centre, tell ``maximize`` where they were taken (``split``).

The loop sits behind a ``lax.cond`` on "any component of any restart flagged"
(``_unless_none_flagged``): under ``vmap`` a ``custom_vmap`` rule takes that
predicate over the whole batch, so it stays unbatched and the ``cond`` a real
branch (a batched predicate makes a ``select`` that runs both). When nothing is
flagged, nothing of the correction runs: no loop carry of the ``[N, K]`` table,
no read of ``x'`` (taken from ``T(x')``'s columns ``1..D`` inside the branch), and
the responsibilities are passed in the ``[K, N]`` layout the global product reads;
the EM step is then the fast path's plus an empty conditional. When some restart
has a flag, the loop runs as many times as its most flagged restart needs (its
predicate, too, is taken over the batch, and each pass selects only the slice it
writes, never the whole table, as a batched ``while_loop`` would); ``x'`` is copied
once out of ``T(x')`` before it. Each flagged component costs ``O(N D²)`` per pass
(``1/K`` of the products' flops, but ~20 % of their time at ``D = 16``: small
matrix products).
Under nested ``vmap`` the predicate is batched by the outer axis and the ``cond``
is a ``select`` again (correct, the loop always runs).

Derivatives (``jax.jvp``, ``jax.grad`` of one EM update) are the fast path's
(``custom_jvp``): the same function, so only their rounding differs.

Shapes: ``N`` rows (any leading axes are flattened), ``K`` components, ``D``
features, ``F = 1 + D + Q`` features of ``T(x')``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from jaxem._src.base import Array
from jaxem._src.families.covariance import Covariance, upper

# Largest tolerated estimate of the fast path's rounding, relative (variances) or
# in nats per row (log-densities); at 0.1 a tight cluster's rows were 1e-3 off.
TOLERANCE = 1e-3


def standardized(means: Array, precisions_cholesky: Array, features, covariance: Covariance):
    """``(means' [K, D], factor')``: params in the coordinates of ``features``."""
    dtype = features.x.dtype
    means = (means.astype(dtype) - features.shift[None, :]) / features.scale[None, :]
    return means, covariance.scale_rows(precisions_cholesky.astype(dtype), features.scale)


def full_factor(factor: Array, k: int, d: int, covariance: Covariance) -> Array:
    """``[K, D, D]`` precision factors (dense) of any covariance type's ``factor'``."""
    if factor.ndim == 3:
        return factor
    if covariance.blocked:  # tied
        return jnp.broadcast_to(factor, (k, d, d))
    eye = jnp.eye(d, dtype=factor.dtype)
    if factor.ndim == 2:  # diag
        return factor[:, :, None] * eye[None, :, :]
    return factor[:, None, None] * eye[None, :, :]  # spherical


def _largest_precisions(factor: Array, k: int, covariance: Covariance) -> Array:
    """``[K]`` the largest diagonal entry of each precision ``P'_k = U'_k U'_kᵀ``."""
    if covariance.blocked:  # full [K, D, D], tied [D, D]
        rows = jnp.sum(factor * factor, axis=-1)
        return jnp.broadcast_to(jnp.max(rows, axis=-1), (k,))
    if factor.ndim == 2:  # diag
        return jnp.max(factor * factor, axis=1)
    return factor * factor  # spherical


def component_flags(means: Array, factor: Array, covariance: Covariance) -> Array:
    """``[K]`` bool: where the fast path's rounding estimate ``eps · (1 + max_d
    μ'²_kd) · max_d P'_k,dd`` exceeds ``TOLERANCE`` (standardized ``means [K, D]``
    and ``factor``; NaN params are flagged: finite work either way)."""
    k = means.shape[0]
    eps = float(jnp.finfo(means.dtype).eps)
    estimate = eps * (1.0 + jnp.max(means * means, axis=1)) * _largest_precisions(factor, k, covariance)
    return ~(estimate <= TOLERANCE)


def _one_pass(part_fn, axis: int, covariance: Covariance, values: Array, flags: Array, operands):
    """One restart's pass: its first flagged component ``k`` (``flags [K]``) gets
    ``part_fn(covariance, k, operands)`` as its slice of ``values`` along ``axis``
    (kept as it is when no flag is left: only that slice is selected, never the
    whole table), and its flag is cleared."""
    k = jnp.argmax(flags)
    old = jax.lax.dynamic_index_in_dim(values, k, axis, keepdims=False)
    new = jnp.where(jnp.any(flags), part_fn(covariance, k, operands).astype(values.dtype), old)
    return jax.lax.dynamic_update_index_in_dim(values, new, k, axis), flags.at[k].set(False)


def _pending(state) -> Array:
    return jnp.any(state[1])


def _with_rows(operands):
    """``operands`` (``T(x') [N, F]``, ``[K, D]`` params, ...) with ``T(x')``
    replaced by ``x' [N, D]``, read once before the loop (a contiguous copy: every
    pass reads it)."""
    return (_rows(operands[0], operands[1].shape[-1]),) + tuple(operands[1:])


def _fix_each(part_fn, axis: int, covariance: Covariance, fast: Array, flags: Array, operands) -> Array:
    """``fast`` with each flagged component's slice replaced, one per pass of a
    ``while_loop`` (one restart: ``flags [K]``)."""
    one_pass = functools.partial(_one_pass, part_fn, axis, covariance)
    operands = _with_rows(operands)
    return jax.lax.while_loop(_pending, lambda state: one_pass(*state, operands), (fast, flags))[0]


def _keep(fast: Array, flags: Array, operands) -> Array:
    return fast


def _unless_none_flagged(part_fn, axis: int, covariance: Covariance):
    """``_fix_each`` behind a ``lax.cond`` on "any component of any restart
    flagged", so that nothing of it runs (not even the loop's carry) when none is.
    Under ``vmap`` a ``custom_vmap`` rule takes that predicate, and the loop's, over
    the whole batch, so both stay unbatched: the ``cond`` a real branch (a batched
    predicate would make it a ``select`` of both), and the loop free of the
    per-pass ``select`` of its whole carry that a batched ``while_loop`` makes;
    each pass fixes one component of every restart that still has a flag."""
    fix = functools.partial(_fix_each, part_fn, axis, covariance)

    @jax.custom_batching.custom_vmap
    def run(fast, flags, operands):
        return jax.lax.cond(jnp.any(flags), fix, _keep, fast, flags, operands)

    @run.def_vmap
    def run_batched(axis_size, in_batched, fast, flags, operands):
        fast_batched, flags_batched, operands_batched = in_batched
        if not fast_batched:
            fast = jnp.broadcast_to(fast, (axis_size,) + fast.shape)
        if not flags_batched:
            flags = jnp.broadcast_to(flags, (axis_size,) + flags.shape)
        in_axes = jax.tree_util.tree_map(lambda batched: 0 if batched else None, operands_batched)
        one_pass = jax.vmap(functools.partial(_one_pass, part_fn, axis, covariance), in_axes=(0, 0, in_axes))

        def loop(fast, flags, operands):
            operands = _with_rows(operands)
            return jax.lax.while_loop(_pending, lambda state: one_pass(*state, operands), (fast, flags))[0]

        return jax.lax.cond(jnp.any(flags), loop, _keep, fast, flags, operands), True

    return run


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def replace_flagged(part_fn, axis: int, covariance: Covariance, fast: Array, flags: Array, operands):
    """``fast`` with the slice along ``axis`` of each flagged component ``k``
    replaced by ``part_fn(covariance, k, operands)``, one component per pass of a
    ``while_loop``; skipped entirely when no component (of any restart) is
    flagged. Its derivative is ``fast``'s."""
    return _unless_none_flagged(part_fn, axis, covariance)(fast, flags, operands)


@replace_flagged.defjvp
def _replace_flagged_jvp(part_fn, axis, covariance, primals, tangents):
    fast, flags, operands = primals
    return replace_flagged(part_fn, axis, covariance, fast, flags, operands), tangents[0]


def _rows(stats: Array, d: int) -> Array:
    """``[N, D]`` the standardized rows ``x'``: columns ``1 .. D`` of ``T(x')``
    (bitwise ``features.x``; read inside the correction only, so that nothing
    of ``x'`` is touched when no component is flagged)."""
    return stats[..., 1 : d + 1]  # [..., N, F]: also batched operands in the vmap rule


def _whiten(covariance: Covariance, diff: Array, factor: Array, k) -> Array:
    """``[N, D]`` ``(x' - μ'_k) U'_k`` of ``diff [N, D]`` for component ``k``."""
    if covariance.blocked:
        return diff @ (factor if factor.ndim == 2 else factor[k])  # tied, full
    return diff * (factor[k][None, :] if factor.ndim == 2 else factor[k])  # diag [D], spherical scalar


def _log_density_column(covariance: Covariance, k, operands) -> Array:
    """``[N]`` column ``k`` of the log-densities, from explicit differences."""
    xs, means, factor, constants = operands
    whitened = _whiten(covariance, xs - means[k][None, :], factor, k)
    return constants[k] - 0.5 * jnp.sum(whitened * whitened, axis=1)


def log_densities(params, features, covariance: Covariance, fast_coefficients: Array, offsets=None) -> Array:
    """``[..., K]`` component log-densities of prepared ``features`` (plus
    ``offsets [K]``, e.g. log weights, when given): ``stats @ fast_coefficients.T``
    (``[K, F]``, the offsets already in column 0), its flagged columns recomputed."""
    means, factor = standardized(params.means, params.precisions_cholesky, features, covariance)
    k, d = means.shape
    stats = features.stats.reshape(-1, features.stats.shape[-1])
    fast = stats @ fast_coefficients.T.astype(stats.dtype)
    _, _, _, log_det = covariance.natural(factor, means)
    constants = log_det - 0.5 * d * math.log(2.0 * math.pi) - jnp.sum(jnp.log(features.scale))
    if offsets is not None:
        constants = constants + offsets.astype(constants.dtype)
    operands = (stats, means, factor, constants)
    flags = component_flags(means, factor, covariance)
    values = replace_flagged(_log_density_column, 1, covariance, fast, flags, operands)
    return values.reshape(features.stats.shape[:-1] + (k,))


def _statistics_row(covariance: Covariance, k, operands) -> Array:
    """``[F + D]`` row ``k`` of the statistics, taken about ``centre[k]`` from
    explicit differences."""
    xs, centre, responsibilities = operands  # responsibilities [K, N]: the global product's operand
    d = centre.shape[1]
    weight = jax.lax.dynamic_index_in_dim(responsibilities, k, axis=0, keepdims=False)  # [N]
    diff = xs - centre[k][None, :]
    count = jnp.sum(weight)
    first = weight @ diff
    weighted = diff * weight[:, None]
    if covariance.blocked:
        i, j = upper(d)
        second = (weighted.T @ diff)[i, j]
    elif covariance.n_quadratic(d) == d:  # diag
        second = jnp.sum(weighted * diff, axis=0)
    else:  # spherical
        second = jnp.sum(weighted * diff)[None]
    return jnp.concatenate([count[None], first, second, count * centre[k]])


def _shifted(global_stats: Array, centre: Array, covariance: Covariance) -> Array:
    """``[K, F]`` statistics about ``centre [K, D]`` from the global ``[K, F]``
    (the algebraic shift: as exact as the global statistics themselves)."""
    d = centre.shape[1]
    counts, first, second = global_stats[:, :1], global_stats[:, 1 : d + 1], global_stats[:, d + 1 :]
    first_c = first - counts * centre
    if covariance.blocked:
        i, j = upper(d)
        cross = first[:, :, None] * centre[:, None, :]
        moments = cross + jnp.swapaxes(cross, 1, 2) - counts[:, :, None] * centre[:, :, None] * centre[:, None, :]
        second_c = second - moments[:, i, j]
    elif second.shape[1] == d:  # diag
        second_c = second - (2.0 * first * centre - counts * centre * centre)
    else:  # spherical
        second_c = second - jnp.sum(2.0 * first * centre - counts * centre * centre, axis=1, keepdims=True)
    return jnp.concatenate([counts, first_c, second_c], axis=1)


def statistics(features, posterior: Array, params, covariance: Covariance) -> Array:
    """``[K, F + D]`` statistics (``[S0, Σ r (x'-c), quad about c, S0 c]``) from
    ``posterior [..., K]``, about the standardized means of ``params`` for the
    flagged components and about the global centre (``c = 0``) for the others;
    the plain global ``[K, F]`` (``posteriorᵀ T(x')``) when ``params`` is ``None``."""
    stats = features.stats.reshape(-1, features.stats.shape[-1])
    responsibilities = posterior.reshape(-1, posterior.shape[-1]).astype(stats.dtype).T  # [K, N]
    global_stats = responsibilities @ stats
    if params is None:
        return global_stats
    means, factor = standardized(params.means, params.precisions_cholesky, features, covariance)
    flags = component_flags(means, factor, covariance)
    centre = jnp.where(flags[:, None], means, jnp.zeros_like(means))
    # the fast path's statistics about the same centres (its derivative, and the
    # value of every component that is not flagged: there c = 0, bitwise global)
    fast = jnp.where(flags[:, None], _shifted(global_stats, centre, covariance), global_stats)
    fast = jnp.concatenate([fast, global_stats[:, :1] * centre], axis=1)
    return replace_flagged(_statistics_row, 0, covariance, fast, flags, (stats, centre, responsibilities))


def split(statistics: Array, d: int, width: int):
    """``(statistics [K, F], centre [K, D])``: the centre the statistics were taken
    about (0, the global centre, for plain ``[K, F]`` statistics)."""
    if statistics.shape[1] == width:
        return statistics, jnp.zeros((statistics.shape[0], d), statistics.dtype)
    counts = statistics[:, :1]
    safe = jnp.where(counts > 0, counts, jnp.ones_like(counts))
    centre = jnp.where(counts > 0, statistics[:, width:] / safe, jnp.zeros_like(statistics[:, width:]))
    return statistics[:, :width], centre
