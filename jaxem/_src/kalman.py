"""The linear-Gaussian chain latent structure: a Kalman filter as a log-partition.

A chain of Gaussian latents ``z_0, ..., z_{T-1} ∈ R^L`` has log-potentials
``GaussianChainPotentials(h [B, T, L], J [B, T, L, L], cross [B, T, L, L], c [B, T])``:

    log p(x, z) = Σ_t h_tᵀ z_t − ½ Σ_t z_tᵀ J_t z_t − Σ_{t≥1} z_{t-1}ᵀ cross_t z_t + Σ_t c_t,

i.e. ``−½ zᵀ𝐉z`` for the block-tridiagonal precision 𝐉 with diagonal blocks ``J_t``
and off-diagonal blocks ``𝐉[t-1, t] = cross_t`` (``cross_0`` is unused). Its
log-partition is the Gaussian one, ``½ hᵀ𝐉⁻¹h − ½ log det 𝐉 + (TL/2) log 2π + c``,
computed by the block Cholesky factorization of 𝐉 in one forward ``lax.scan``
(the square-root information filter): with ``U_{t-1}`` the Cholesky factor of the
filtered precision and ``v_{t-1} = U_{t-1}⁻¹ h'_{t-1}``,

    G = U_{t-1}⁻¹ cross_t,   J'_t = J_t − GᵀG,   h'_t = h_t − Gᵀ v_{t-1},
    U_t = chol(J'_t),   v_t = U_t⁻¹ h'_t,
    log Z = Σ_t [c_t + ½ |v_t|² − Σ log diag U_t + (L/2) log 2π],

triangular solves only, never an inverse. The per-step terms are emitted by the
loop, added to the step's constant ``c_t`` (the two nearly cancel when the data are
far from zero: adding them first keeps float32 accurate) and summed outside the
loop, not as a running sum. Its gradient (``jaxem.e_step``) is the smoothed posterior:

* ``h``: ``E[z_t | x]`` (the Rauch–Tung–Striebel means);
* ``J``: ``−½ E[z_t z_tᵀ | x]``;
* ``cross``: ``−E[z_{t-1} z_tᵀ | x]`` (the lag-one moments EM needs);
* ``c``: the sequence's weight on every step inside it (0 on padding),

so the RTS smoother is the backward pass of the filter, by autodiff. Steps
``t >= length`` are padding: their terms are masked, so they get no value and no
gradient. Memory of the backward pass: the carries, O(T L²) per sequence.

Parallel in time (``parallel=True``): the same log-partition by a tree of
pairwise eliminations, depth ``⌈log₂ T⌉`` instead of ``T``. A segment of steps
``i..j`` is kept as a Gaussian potential over its two boundary states
``(z_{i-1}, z_j)`` (information form, ``2L`` variables: every state inside
integrated out); step ``t`` alone is the segment ``(z_{t-1}, z_t)`` with blocks
``(0, cross_t, J_t)``. Joining two adjacent segments integrates out the state they
share, by a Cholesky factor of its ``L × L`` precision (the same elimination as the
filter, in another order: it is associative, which is what makes the parallel
filters of Särkkä & García-Fernández work). The levels run one after another, the
pairs of a level at once (``vmap``); the gradient (autodiff down the tree) is the
same smoothed posterior. About 3× the arithmetic of the sequential sweep and a much
longer compile (the levels are unrolled): meant for a GPU and long sequences.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxem._src import small_linalg
from jaxem._src.base import Array, Latent
from jaxem._src.gaussian_latent import log_integral, symmetric


class GaussianChainPotentials(NamedTuple):
    """Log-potentials of a batch of linear-Gaussian chains (as a gradient: moments).

    Attributes:
      h: ``[B, T, L]``.
      J: ``[B, T, L, L]`` diagonal precision blocks.
      cross: ``[B, T, L, L]``, ``cross[:, t]`` the precision block between
        ``z_{t-1}`` and ``z_t`` (``cross[:, 0]`` unused, zero).
      c: ``[B, T]`` per-step constants.
    """

    h: Array
    J: Array
    cross: Array
    c: Array


class GaussianChainPosterior(NamedTuple):
    """What ``jaxem.posterior`` returns for a linear-Gaussian chain.

    Attributes:
      means: ``[B, T, L]`` smoothed means ``E[z_t | x]`` (zero on padding).
      covariances: ``[B, T, L, L]`` ``Cov[z_t | x]``.
      cross_covariances: ``[B, T, L, L]`` ``Cov[z_{t-1}, z_t | x]`` (zero at ``t = 0``).
    """

    means: Array
    covariances: Array
    cross_covariances: Array


def chain_log_partition(h: Array, precision: Array, cross: Array, constants: Array, length: Array) -> Array:
    """log ∫ exp(Σ h_tᵀz_t − ½ zᵀ𝐉z + Σ c_t) dz of one chain (``[T, L]``,
    ``[T, L, L]``, ``[T, L, L]``, ``[T]``; steps ``t >= length`` ignored), by the
    block Cholesky sweep.

    Examples:
      >>> t, l = 5, 2
      >>> log_z = chain_log_partition(jnp.zeros((t, l)), jnp.broadcast_to(2.0 * jnp.eye(l), (t, l, l)),
      ...                             jnp.zeros((t, l, l)), jnp.zeros(t), jnp.asarray(t))
    """
    t_max, size = h.shape
    dtype = h.dtype
    valid = jnp.arange(t_max, dtype=length.dtype) < length
    eye = jnp.eye(size, dtype=dtype)
    # Padded steps: a decoupled standard Gaussian (its term is masked below).
    precision = jnp.where(valid[:, None, None], symmetric(precision), eye[None])
    h = jnp.where(valid[:, None], h, jnp.zeros_like(h))
    cross = jnp.where(valid[:, None, None], cross, jnp.zeros_like(cross))

    def step(carry, inputs):
        factor, whitened = carry
        h_t, precision_t, cross_t = inputs
        gain = jax.scipy.linalg.solve_triangular(factor, cross_t, lower=True)  # U⁻¹ cross
        schur = symmetric(precision_t - gain.T @ gain)
        linear = h_t - gain.T @ whitened
        new_factor = jnp.linalg.cholesky(schur)
        new_whitened = jax.scipy.linalg.solve_triangular(new_factor, linear, lower=True)
        log_det_half = jnp.sum(jnp.log(jnp.diagonal(new_factor)))
        term = 0.5 * jnp.sum(new_whitened * new_whitened) - log_det_half
        return (new_factor, new_whitened), term

    carry = (eye, jnp.zeros((size,), dtype))
    cross = cross.at[0].set(jnp.zeros((size, size), dtype))
    _, terms = jax.lax.scan(jax.checkpoint(step), carry, (h, precision, cross))
    terms = jnp.where(valid, (constants + terms) + 0.5 * size * math.log(2 * math.pi), jnp.zeros_like(terms))
    return jnp.sum(terms)


class _Segment(NamedTuple):
    """A Gaussian potential over a segment's boundary states ``(a, b)``:
    ``ea·a + eb·b − ½ aᵀ aa a − aᵀ ab b − ½ bᵀ bb b + c`` (leading axes: segments)."""

    aa: Array
    ab: Array
    bb: Array
    ea: Array
    eb: Array
    c: Array


def _join(left: _Segment, right: _Segment) -> _Segment:
    """Integrates out the state ``k`` shared by ``left (a, k)`` and ``right (k, b)``."""
    size = left.bb.shape[-1]
    # small_linalg, not LAPACK: a level is one large batch (see small_linalg.py).
    factor = small_linalg.cholesky(symmetric(left.bb + right.aa))
    rhs = jnp.concatenate([left.ab.T, right.ab, (left.eb + right.ea)[:, None]], axis=1)  # k to a, to b, linear
    scaled = small_linalg.solve_lower(factor, rhs)
    to_a, to_b, whitened = scaled[:, :size], scaled[:, size : 2 * size], scaled[:, 2 * size]
    term = log_integral(factor, whitened)
    return _Segment(
        left.aa - to_a.T @ to_a,
        -to_a.T @ to_b,
        right.bb - to_b.T @ to_b,
        left.ea - to_a.T @ whitened,
        right.eb - to_b.T @ whitened,
        left.c + (right.c + term),
    )


def _reduce(segments: _Segment) -> _Segment:
    """Joins ``[n]`` adjacent segments into one, pairwise, ``⌈log₂ n⌉`` levels."""
    while segments.c.shape[0] > 1:
        n = segments.c.shape[0]
        pairs = n // 2
        left = jax.tree_util.tree_map(lambda a: a[0 : 2 * pairs : 2], segments)
        right = jax.tree_util.tree_map(lambda a: a[1 : 2 * pairs : 2], segments)
        joined = jax.vmap(_join)(left, right)
        if n % 2:
            joined = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b[-1:]]), joined, segments)
        segments = joined
    return jax.tree_util.tree_map(lambda a: a[0], segments)


def chain_log_partition_parallel(
    h: Array, precision: Array, cross: Array, constants: Array, length: Array
) -> Array:
    """``chain_log_partition`` by a tree of pairwise eliminations (depth ``⌈log₂ T⌉``).

    Examples:
      >>> t, l = 5, 2
      >>> args = (jnp.zeros((t, l)), jnp.broadcast_to(2.0 * jnp.eye(l), (t, l, l)), jnp.zeros((t, l, l)), jnp.zeros(t))
      >>> bool(jnp.allclose(chain_log_partition_parallel(*args, jnp.asarray(4)), chain_log_partition(*args, jnp.asarray(4))))
      True
    """
    t_max, size = h.shape
    dtype = h.dtype
    valid = jnp.arange(t_max, dtype=length.dtype) < length
    eye = jnp.eye(size, dtype=dtype)
    zeros = jnp.zeros((t_max, size, size), dtype)
    # Padded steps: decoupled standard Gaussians; each adds (L/2) log 2π, taken off below.
    precision = jnp.where(valid[:, None, None], symmetric(precision), eye[None])
    h = jnp.where(valid[:, None], h, jnp.zeros_like(h))
    cross = jnp.where(valid[:, None, None], cross, zeros).at[0].set(jnp.zeros((size, size), dtype))
    constants = jnp.where(valid, constants, jnp.zeros_like(constants))
    total = _reduce(_Segment(zeros, cross, precision, jnp.zeros_like(h), h, constants))
    # The last state; the first segment's left state z_{-1} is decoupled (cross_0 = 0).
    factor = small_linalg.cholesky(symmetric(total.bb))
    whitened = small_linalg.solve_lower(factor, total.eb[:, None])[:, 0]
    last = log_integral(factor, whitened)
    padded = (t_max - length).astype(dtype) * (0.5 * size * math.log(2 * math.pi))
    return total.c + last - padded


def chain_gaussian_log_marginal(potentials: GaussianChainPotentials, lengths: Array, parallel: bool = False) -> Array:
    """``[B]`` log p(x_b): the chain log-partition of every sequence (``parallel``:
    the tree form)."""
    log_partition = chain_log_partition_parallel if parallel else chain_log_partition
    return jax.vmap(log_partition)(potentials.h, potentials.J, potentials.cross, potentials.c, lengths)


def chain_moments(gradient: GaussianChainPotentials) -> GaussianChainPosterior:
    """Means, covariances and lag-one cross-covariances from the gradient (divided by
    each step's weight, the ``c`` gradient; zero on padded steps)."""
    weight = gradient.c
    safe = jnp.where(weight > 0, weight, jnp.ones_like(weight))
    means = gradient.h / safe[..., None]
    second = -2.0 * symmetric(gradient.J) / safe[..., None, None]
    lagged = -gradient.cross / safe[..., None, None]  # E[z_{t-1} z_tᵀ]
    outer = means[..., :, None] * means[..., None, :]
    previous = jnp.concatenate([jnp.zeros_like(means[:, :1]), means[:, :-1]], axis=1)
    lagged_outer = previous[..., :, None] * means[..., None, :]
    has_previous = (jnp.arange(means.shape[1]) > 0)[None, :, None, None]
    cross = jnp.where(has_previous, lagged - lagged_outer, jnp.zeros_like(lagged))
    return GaussianChainPosterior(means, symmetric(second - outer), cross)


def gaussian_chain_latent(parallel: bool = False) -> Latent:
    """The latent structure of linear-Gaussian chains (Kalman filter / RTS smoother).

    ``parallel=True``: the log-partition (and so, by its gradient, the smoother)
    in parallel-in-time form, depth ``⌈log₂ T⌉`` (see the module docstring): for
    accelerators and long sequences (it compiles much longer).

    ``data`` (prepared) must have a ``lengths [B]`` field; ``log_joint`` returns
    ``GaussianChainPotentials``. ``marginals`` gives a ``GaussianChainPosterior``
    (smoothed means, covariances, lag-one cross-covariances) and ``decode`` the
    smoothed means ``[B, T, L]`` (the posterior mode of the whole path).

    Examples:
      >>> latent = jaxem.gaussian_chain_latent()        # what jaxem.models.lgssm's log_joint is scored with
      >>> latent is jaxem.models.lgssm(2).latent
      True
      >>> jaxem.gaussian_chain_latent(parallel=True) is jaxem.models.lgssm(2, parallel=True).latent
      True
    """
    if not isinstance(parallel, bool):
        raise TypeError(f"parallel must be a bool, got {type(parallel).__name__}")
    return _PARALLEL_CHAIN_LATENT if parallel else _GAUSSIAN_CHAIN_LATENT


def _chain_latent(parallel: bool) -> Latent:
    def log_marginal(potentials, data):
        return chain_gaussian_log_marginal(potentials, data.lengths, parallel)

    def decode(potentials, data):
        gradient = jax.grad(lambda p: jnp.sum(log_marginal(p, data)))(potentials)
        return chain_moments(gradient).means

    return Latent(log_marginal=log_marginal, decode=decode, marginals=chain_moments, sizes=_sizes)


def _sizes(potentials, data):
    return data.lengths.astype(potentials.h.dtype)


_GAUSSIAN_CHAIN_LATENT = _chain_latent(parallel=False)
_PARALLEL_CHAIN_LATENT = _chain_latent(parallel=True)
