"""Many sequences of different lengths in one padded batch: ``jaxem.Sequences``.

A chain model (an HMM) takes either a plain array, which is *one* sequence
(``[T, ...]``), or a ``Sequences(obs, lengths)`` pytree holding a padded batch
``obs [B, T_max, ...]`` and ``lengths [B]``. Steps ``t >= lengths[b]`` are padding:
they contribute nothing to any likelihood, posterior or statistic, and their values
are never read (they may even be NaN).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np

from jaxem._src import validation
from jaxem._src.base import Array


class Sequences(NamedTuple):
    """A padded batch of sequences (a pytree).

    Attributes:
      obs: ``[B, T_max, ...]`` observations; ``obs[b, t]`` for ``t >= lengths[b]``
        is padding and is ignored.
      lengths: ``[B]`` integer lengths, each in ``[1, T_max]``.

    Examples:
      >>> rng = np.random.default_rng(0)
      >>> x1, x2, x3 = rng.normal(size=(120, 2)), rng.normal(size=(80, 2)), rng.normal(size=(100, 2))
      >>> data = jaxem.Sequences.from_list([x1, x2, x3])   # pads to the longest
      >>> data.obs.shape, data.lengths.tolist()
      ((3, 120, 2), [120, 80, 100])
      >>> x = np.concatenate([x1, x2, x3])
      >>> data = jaxem.Sequences.from_concatenated(x, [120, 80, 100])  # hmmlearn style
      >>> data.obs.shape
      (3, 120, 2)
    """

    obs: Any
    lengths: Any

    @classmethod
    def from_list(cls, sequences: Sequence[Any], pad_value=0) -> "Sequences":
        """Pads a list of ``[T_b, ...]`` arrays into one batch (host-side, NumPy)."""
        arrays = [np.asarray(s) for s in sequences]
        if not arrays:
            raise ValueError("sequences must hold at least one sequence")
        tail = arrays[0].shape[1:]
        if any(a.ndim == 0 or a.shape[1:] != tail for a in arrays):
            expected = "[" + ", ".join(["T"] + [str(n) for n in tail]) + "]"
            raise ValueError(f"every sequence must have shape {expected} (as the first), got {[a.shape for a in arrays]}")
        lengths = np.asarray([a.shape[0] for a in arrays], np.int32)
        dtype = np.result_type(*[a.dtype for a in arrays])
        obs = np.full((len(arrays), int(lengths.max())) + tail, pad_value, dtype)
        for b, a in enumerate(arrays):
            obs[b, : a.shape[0]] = a
        return cls(obs, lengths)

    @classmethod
    def from_concatenated(cls, obs, lengths, pad_value=0) -> "Sequences":
        """Splits ``obs [sum(lengths), ...]`` (hmmlearn's ``X, lengths``) and pads."""
        obs = np.asarray(obs)
        lengths = np.asarray(lengths)
        if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer) or np.any(lengths < 1):
            raise ValueError("lengths must be a 1-D array of positive integers")
        if int(lengths.sum()) != obs.shape[0]:
            raise ValueError(f"lengths sum to {int(lengths.sum())} but obs has {obs.shape[0]} rows")
        return cls.from_list(np.split(obs, np.cumsum(lengths)[:-1]), pad_value=pad_value)


def step_mask(lengths: Array, t_max: int) -> Array:
    """``[B, T_max]`` True where a step is inside its sequence (jit-safe)."""
    lengths = jnp.asarray(lengths)
    return jnp.arange(t_max, dtype=lengths.dtype)[None, :] < lengths[:, None]


def as_sequences(data, event_ndim: int) -> Sequences:
    """Normalizes raw data to ``Sequences`` with ``obs [B, T, *event]`` (jit-safe).

    A plain array is one sequence. With ``event_ndim=1`` (vector observations), a
    ``[T]`` array (or ``[B, T]`` obs) is read as one feature per step.
    """
    if isinstance(data, Sequences):
        obs, lengths = jnp.asarray(data.obs), jnp.asarray(data.lengths)
        if event_ndim == 1 and obs.ndim == 2:
            obs = obs[..., None]
        return Sequences(obs, lengths.astype(jnp.int32))
    obs = jnp.asarray(data)
    if event_ndim == 1 and obs.ndim == 1:
        obs = obs[:, None]
    return Sequences(obs[None], jnp.full((1,), obs.shape[0], jnp.int32))


def check_sequences(data, event_ndim: int, name: str = "obs") -> Sequences:
    """Validates raw chain data at the public boundary; returns it normalized.

    Checks: ``obs`` numeric with ``event_ndim`` trailing axes after ``[B, T]``;
    ``lengths`` integers in ``[1, T_max]`` of shape ``[B]``; no NaN/inf inside the
    sequences (padding is not checked). Value checks are skipped for tracers.
    """
    if isinstance(data, Sequences):
        obs = _numeric(data.obs, name)
        lengths = data.lengths
        if isinstance(lengths, (list, tuple)):
            lengths = np.asarray(lengths)
        lengths_dtype = getattr(lengths, "dtype", None)
        if lengths_dtype is None or not jnp.issubdtype(lengths_dtype, jnp.integer):
            raise TypeError(f"lengths must be an integer array, got {type(lengths).__name__} of dtype {lengths_dtype}")
        want = (2,) if event_ndim == 0 else (2, 3)
        if obs.ndim not in want:
            raise ValueError(f"{name} of Sequences must have shape [B, T_max{', D' if event_ndim else ''}], got {obs.shape}")
        if jnp.ndim(lengths) != 1 or jnp.shape(lengths)[0] != obs.shape[0]:
            raise ValueError(f"lengths must have shape ({obs.shape[0]},) to match {name} {obs.shape}, got {jnp.shape(lengths)}")
        if validation.is_concrete(lengths):
            lengths_np = np.asarray(lengths)
            if np.any(lengths_np < 1):
                raise ValueError(f"lengths must be >= 1, got min {lengths_np.min()}")
            if np.any(lengths_np > obs.shape[1]):
                raise ValueError(f"lengths must be <= the padded length T_max={obs.shape[1]} of {name}, got max {lengths_np.max()}")
    else:
        obs = _numeric(data, name)
        want = (1,) if event_ndim == 0 else (1, 2)
        if obs.ndim not in want:
            raise ValueError(
                f"{name} must have shape [T{', D' if event_ndim else ''}] for one sequence "
                f"(use jaxem.Sequences for a batch), got {obs.shape}"
            )
        if obs.shape[0] < 1:
            raise ValueError(f"{name} must have at least one step, got shape {obs.shape}")
    seqs = as_sequences(Sequences(obs, data.lengths) if isinstance(data, Sequences) else obs, event_ndim)
    if event_ndim == 1 and seqs.obs.shape[-1] < 1:
        raise ValueError(f"{name} must have at least one feature, got shape {seqs.obs.shape}")
    if validation.is_concrete(seqs) and not bool(jnp.all(jnp.isfinite(valid_values(seqs)))):
        raise ValueError(f"{name} contains NaN or infinite values")
    return seqs


def valid_values(seqs: Sequences) -> np.ndarray:
    """The observations inside the sequences, flattened to ``[n_steps, ...]`` (host)."""
    obs = np.asarray(seqs.obs)
    mask = np.asarray(step_mask(seqs.lengths, obs.shape[1]))
    return obs[mask]


def _numeric(x, name: str) -> Array:
    hint = " (use jaxem.Sequences.from_list for ragged data)"
    return jnp.asarray(validation.as_real_array(x, name, ragged_hint=hint))
