"""The chain latent structure of a hidden Markov model.

The log-potentials of a chain are a pytree ``ChainPotentials``: the initial
log-probabilities, the log transition matrix and the per-step log emission table.
The log-partition of one sequence (``forward_log_marginal``) is the forward
recursion, run in its *normalized* form: the forward message is carried normalized
to sum to one, each step's emissions are shifted by their maximum before
exponentiating, and the per-step log normalizers are summed at the end (a pairwise
sum, not a running one), so nothing under- or overflows and float32 stays accurate
on 100 000-step sequences. The normalizers are held constant under differentiation
(which leaves the gradient exact, see ``forward_log_marginal``), so the backward
pass is the plain linear recursion of the scaled backward messages.

Its gradient (``jaxem.e_step``) with respect to the three fields is, in one backward
pass through ``lax.scan``:

* ``log_initial``: the expected initial-state counts ``Σ_b p(z_b0 = k | x_b)``;
* ``log_transition``: the expected transition counts ``Σ_b Σ_t p(z_t-1 = i, z_t = j | x_b)``
  (a running sum over the steps: ~1e-4 relative in float32 over 100 000 steps);
* ``log_emission``: the smoothed marginals ``p(z_bt = k | x_b)`` (zero on padding).

Memory: the step is rematerialized (``jax.checkpoint``), so the backward pass keeps
only the messages, the normalized carries and the unnormalized outputs of the loop,
two ``[B, T, K]`` arrays (T = 100 000, K = 8 in float32 is ~3 MB each), besides the
emission table itself.

Speed (2-core CPU, K = 8): the sequential depth is ``T``; a step costs a few
hundred nanoseconds, mostly per-kernel overhead, so the step is kept to few
kernels (elementwise ``α @ A`` for narrow batches). A blocked form (products of
``√T``-step blocks for all blocks at once, then a ``√T``-step scan over blocks) was
tried and measured slower here: its ``O(T K³)`` elementwise work and the gradient of
``A`` through a ``[blocks · K, K]ᵀ [blocks · K, K]`` product per step cost more than
the loop overhead it saves.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxem._src.base import Array, Latent


class ChainPotentials(NamedTuple):
    """Log-potentials of a batch of chains (and, as a gradient, its expected counts).

    Attributes:
      log_initial: ``[K]`` shared by all sequences, or ``[B, K]``.
      log_transition: ``[K, K]`` (``[i, j]``: from ``i`` to ``j``) shared, or ``[B, K, K]``.
      log_emission: ``[B, T, K]`` log p(x_bt | z_bt = k).
    """

    log_initial: Array
    log_transition: Array
    log_emission: Array


def _finite_or_zero(x: Array) -> Array:
    return jnp.where(jnp.isfinite(x), x, jnp.zeros_like(x))


def _shifted_exp(log_values: Array, axis=None):
    """``(exp(v - c), c)`` with ``c`` the (gradient-free) max, 0 if not finite."""
    shift = jax.lax.stop_gradient(_finite_or_zero(jnp.max(log_values, axis=axis, keepdims=True)))
    return jnp.exp(log_values - shift), shift


def _masked_emission(log_emission: Array, length: Array) -> Array:
    # Padded steps get a harmless table of zeros (their results are discarded), so
    # nothing non-finite is ever computed on them, not even in the backward pass.
    valid = (jnp.arange(log_emission.shape[0], dtype=length.dtype) < length)[:, None]
    return jnp.where(valid, log_emission, jnp.zeros_like(log_emission))


def parallel_log_marginal(log_initial: Array, log_transition: Array, log_emission: Array, length: Array) -> Array:
    """log p(x) of one sequence by a parallel-in-time scan (``lax.associative_scan``).

    The chain's log-partition is the log of a product of ``T`` non-negative matrices
    ``M_t[i, j] = A[i, j] e_t[j]`` (``M_0`` has every row ``π e_0``; padded steps are
    the identity). Each partial product is kept row-normalized with its per-row log
    scale, ``S[i, j] = exp(r_i) N[i, j]``, so it neither under- nor overflows; the
    product is associative, so its ``T`` factors combine in ``O(log T)`` depth at
    ``O(T K³)`` work (the sequential recursion is ``O(T K²)``). Every row of the full
    product is the unnormalized final forward message, so ``log p(x) = r_0``.
    """
    t_max, k = log_emission.shape
    dtype = log_emission.dtype
    log_emission = _masked_emission(log_emission, length)
    emission, emission_shift = _shifted_exp(log_emission, axis=1)  # [T, K], [T, 1]
    initial, initial_shift = _shifted_exp(log_initial)
    transition, transition_shift = _shifted_exp(log_transition)
    tiny = jnp.finfo(dtype).tiny

    first = jnp.broadcast_to((initial * emission[0])[None, :], (k, k))
    rest = transition[None, :, :] * emission[1:, None, :]  # [T-1, K, K]
    matrices = jnp.concatenate([first[None], rest])
    shifts = jnp.concatenate([initial_shift + emission_shift[0], transition_shift[0] + emission_shift[1:, 0]])
    row_sums = jnp.maximum(jnp.sum(matrices, axis=2), tiny)  # [T, K]
    normalized = matrices / row_sums[:, :, None]
    log_scales = jnp.log(row_sums) + shifts[:, None]
    valid = jnp.arange(t_max, dtype=length.dtype) < length
    eye = jnp.broadcast_to(jnp.eye(k, dtype=dtype), normalized.shape)
    normalized = jnp.where(valid[:, None, None], normalized, eye)
    log_scales = jnp.where(valid[:, None], log_scales, jnp.zeros_like(log_scales))

    def combine(left, right):
        left_scales, left_matrix = left
        right_scales, right_matrix = right
        top = jax.lax.stop_gradient(jnp.max(right_scales, axis=-1, keepdims=True))
        weighted = left_matrix * jnp.exp(right_scales - top)[..., None, :]
        product = jnp.einsum("...ik,...kj->...ij", weighted, right_matrix)
        sums = jnp.maximum(jnp.sum(product, axis=-1), tiny)
        return left_scales + top + jnp.log(sums), product / sums[..., None]

    scales, _ = jax.lax.associative_scan(combine, (log_scales, normalized))
    return _nothing_if_empty(scales[-1, 0], length)


def forward_log_marginal(
    log_initial: Array, log_transition: Array, log_emission: Array, length: Array, *, elementwise: bool = False
) -> Array:
    """log p(x) of one sequence by the normalized forward recursion.

    Args:
      log_initial: ``[K]``.
      log_transition: ``[K, K]``.
      log_emission: ``[T, K]``.
      length: scalar int; steps ``t >= length`` contribute nothing (value or
        gradient); a sequence of length 0 has log p = 0 and zero gradient.
      elementwise: form the step's ``α @ A`` as a broadcast product and sum, which
        XLA fuses with the rest of the step (fewer kernels per step: faster on a CPU
        when few sequences are mapped over), instead of a matrix product (faster
        for a wide batch). Same values.

    The message ``α_t`` is carried normalized to sum to one and each step's
    emissions are shifted by their maximum, so nothing under- or overflows (float32
    stays accurate on 100 000-step sequences). Every normalizer (the sums and the
    shifts) is held constant under differentiation: dividing by a constant and
    adding its log back leaves the function, hence its gradient, unchanged, so the
    result is ``constants + log Σ_k u_last[k]`` (``u`` the unnormalized message of
    the last valid step) and the backward pass is the plain linear recursion of the
    scaled backward messages, with no gradient through the logs and divisions. The
    loop body is kept to the few kernels a step needs (it emits ``u_t``; sums, logs
    and the padding mask are vectorized outside it), since on a CPU a step's cost is
    mostly per-kernel overhead.

    Examples:
      >>> log_z = forward_log_marginal(log_pi, log_a, log_e, jnp.asarray(len(log_e)))
    """
    t_max = log_emission.shape[0]
    dtype = log_emission.dtype
    tiny = jnp.finfo(dtype).tiny
    log_emission = _masked_emission(log_emission, length)
    initial, initial_shift = _shifted_exp(log_initial)
    transition, transition_shift = _shifted_exp(log_transition)
    valid = (jnp.arange(1, t_max, dtype=length.dtype) < length).astype(dtype)  # [T - 1]
    first, first_shift = _reachable_exp(initial, log_emission[0])
    alpha, log_first = _constant_normalized(initial * first, tiny)

    def step(alpha, log_emission_t):
        if elementwise:
            predicted = jnp.sum(alpha[:, None] * transition, axis=0)
        else:
            predicted = alpha @ transition
        emission_t, shift = _reachable_exp(predicted, log_emission_t)
        unnormalized = predicted * emission_t
        return unnormalized / _constant_sum(unnormalized, tiny), (unnormalized, shift)

    # The loop emits the unnormalized messages u_t (sums s_t); everything else is
    # vectorized outside it. Padded steps (a suffix) run on (their emissions are
    # zeroed) but are dropped: their log s_t are masked, and the result reads the
    # message of the last valid step, so they get no gradient either.
    # jax.checkpoint: the backward pass keeps only the messages and recomputes the
    # rest of a step (measured as fast or faster here, and fewer residuals).
    _, (unnormalized, emission_shift) = jax.lax.scan(jax.checkpoint(step), alpha, log_emission[1:])
    emission_shift = jnp.concatenate([first_shift[None], emission_shift])[:, None]  # [T, 1]
    unnormalized = jnp.concatenate([alpha[None], unnormalized])  # [T, K]; row 0 sums to 1
    log_sums = jnp.log(_constant_sum(unnormalized, tiny))[:, 0]  # [T]
    last = jax.lax.dynamic_index_in_dim(unnormalized, length - 1, keepdims=False)
    step_constants = valid * (log_sums[1:] + transition_shift[0, 0] + emission_shift[1:, 0])
    constants = jnp.concatenate([log_first + initial_shift + emission_shift[0], step_constants])
    # log Σ u_last, minus its constant value (already in ``constants``): zero, with
    # the whole gradient.
    log_z = jnp.sum(constants) + (jnp.log(jnp.sum(last)) - jax.lax.stop_gradient(log_sums[length - 1]))
    return _nothing_if_empty(log_z, length)


def _nothing_if_empty(log_z: Array, length: Array) -> Array:
    """``log_z``, or exactly 0 with zero gradient for a sequence of length 0 (the
    padding of a batch to equal shards over devices: ``jaxem.shard_rows``)."""
    return jnp.where(length > 0, log_z, jnp.zeros_like(log_z))


def _reachable_exp(predicted: Array, log_emission_t: Array):
    """``(exp(log_e - c), c)`` for one step's emissions ``[K]`` (0 for the states
    the message cannot reach, ``predicted == 0``), ``c`` the (gradient-free) max over
    the reachable ones.

    Shifting by the max over *all* states underflowed where structural zeros
    (a left-to-right chain, a start state) leave only states whose emission
    density is far (beyond ~87 nats in float32) below an unreachable one's: every
    reachable entry became 0 and log p(x) -inf.
    """
    reachable = jnp.where(predicted > 0, log_emission_t, jnp.full_like(log_emission_t, -jnp.inf))
    shift = jax.lax.stop_gradient(_finite_or_zero(jnp.max(reachable)))
    # unreachable states get exp(-inf) = 0 (not an overflowing exp times 0), also in the gradient
    return jnp.exp(reachable - shift), shift


def _constant_sum(values: Array, tiny) -> Array:
    """The last-axis sum (kept), at least ``tiny``, held constant under differentiation."""
    return jax.lax.stop_gradient(jnp.maximum(jnp.sum(values, axis=-1, keepdims=True), tiny))


def _constant_normalized(values: Array, tiny) -> tuple[Array, Array]:
    """``(values / s, log s)`` for ``s`` the last-axis sum (at least ``tiny``),
    held constant under differentiation."""
    sums = _constant_sum(values, tiny)
    return values / sums, jnp.log(sums)


# At most this many sequences: the forward step's vector-matrix product is formed
# elementwise (on a 2-core CPU, K = 8: ~4x faster for B = 1 to 16, ~2x slower for
# B = 100, than the matrix product).
ELEMENTWISE_MAX_SEQUENCES = 32


def chain_log_marginal(potentials: ChainPotentials, lengths: Array, parallel: bool = False) -> Array:
    """``[B]`` log p(x_b) of every sequence: ``forward_log_marginal``, or
    ``parallel_log_marginal`` when ``parallel``."""
    if parallel:
        return _vmap_sequences(parallel_log_marginal, potentials, lengths)
    elementwise = potentials.log_emission.shape[0] <= ELEMENTWISE_MAX_SEQUENCES
    return _vmap_sequences(functools.partial(forward_log_marginal, elementwise=elementwise), potentials, lengths)


def _vmap_sequences(fn, potentials: ChainPotentials, lengths: Array):
    """Maps ``fn(log_initial, log_transition, log_emission, length)`` over sequences."""
    in_axes = (
        0 if potentials.log_initial.ndim == 2 else None,
        0 if potentials.log_transition.ndim == 3 else None,
        0,
        0,
    )
    return jax.vmap(fn, in_axes=in_axes)(potentials.log_initial, potentials.log_transition, potentials.log_emission, lengths)


def viterbi_path(log_initial: Array, log_transition: Array, log_emission: Array, length: Array) -> Array:
    """``[T]`` most probable state path of one sequence; ``-1`` past ``length``.

    The same recursion in the max-plus semiring, with the score vector shifted by its
    max at every step (so it stays bounded on long sequences) and back-pointers.
    """
    log_emission = _masked_emission(log_emission, length)
    k = log_initial.shape[0]
    identity = jnp.arange(k)

    def normalized(scores):
        return scores - jax.lax.stop_gradient(_finite_or_zero(jnp.max(scores)))

    def forward(scores, inputs):
        t, emission_t = inputs
        candidates = scores[:, None] + log_transition  # [from, to]
        pointers = jnp.argmax(candidates, axis=0)
        new = normalized(jnp.max(candidates, axis=0) + emission_t)
        valid = t < length
        return jnp.where(valid, new, scores), jnp.where(valid, pointers, identity)

    scores = normalized(log_initial + log_emission[0])
    steps = jnp.arange(1, log_emission.shape[0], dtype=length.dtype)
    scores, pointers = jax.lax.scan(forward, scores, (steps, log_emission[1:]))

    def backward(state, pointers_t):
        previous = pointers_t[state]
        return previous, previous

    last = jnp.argmax(scores)
    _, earlier = jax.lax.scan(backward, last, pointers, reverse=True)
    path = jnp.concatenate([earlier, last[None]]).astype(jnp.int32)
    return jnp.where(jnp.arange(log_emission.shape[0], dtype=length.dtype) < length, path, -1)


def chain_viterbi(potentials: ChainPotentials, lengths: Array) -> Array:
    """``[B, T]`` Viterbi paths, ``-1`` on padded steps."""
    return _vmap_sequences(viterbi_path, potentials, lengths)


def chain_latent(*, parallel: bool = False) -> Latent:
    """The latent structure of a hidden Markov chain.

    Args:
      parallel: compute the log-partition with ``parallel_log_marginal``
        (``lax.associative_scan``, O(log T) depth, O(T K³) work and O(T K²) memory)
        instead of the sequential normalized forward recursion (O(T K²) work, O(T K)
        memory). Both give the same values and gradients to rounding; the parallel
        form pays off on accelerators with long sequences and small K.

    ``data`` (the prepared data) must have a ``lengths [B]`` field. The posterior
    (the gradient) is a ``ChainPotentials`` of expected counts; ``marginals`` returns
    its ``log_emission`` field, the smoothed marginals ``[B, T, K]`` (zero on padded
    steps), and ``decode`` the Viterbi paths ``[B, T]`` (``-1`` on padded steps).

    Examples:
      >>> latent = jaxem.chain_latent()                           # what every HMM model is built on
      >>> model = jaxem.models.gaussian_hmm(2)
      >>> x, _ = jaxem.load_dataset("geyser")
      >>> params = jaxem.init(model, jax.random.key(0), x)
      >>> jaxem.posterior(model, params, x).shape                 # smoothed marginals [B, T, K]
      (1, 299, 2)
    """

    def log_marginal(potentials, data):
        return chain_log_marginal(potentials, data.lengths, parallel)

    def decode(potentials, data):
        return chain_viterbi(potentials, data.lengths)

    def marginals(posterior):
        return posterior.log_emission

    def sizes(potentials, data):
        return data.lengths.astype(potentials.log_emission.dtype)

    return Latent(log_marginal=log_marginal, decode=decode, marginals=marginals, sizes=sizes)
