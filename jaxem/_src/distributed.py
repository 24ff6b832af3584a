"""Several processes (``jax.distributed``): each holds its own slice of the items.

``jaxem.shard_rows`` called in every process of a ``jax.distributed`` run with that
process's rows (or sequences) builds one global array over all processes' devices
(``jax.make_array_from_process_local_data``); everything after that (the features'
standardization, k-means++ seeding, the number of observations, the fit itself) is
one ``jit`` program over the global array, so it is computed from all the data, and
every process gets the same, replicated result.

This module makes the processes agree first: every process's data must pass the
model's check, and the slices must have the same structure, trailing shape and
dtype (an HMM's sequences may differ in padded length: they are padded to the
longest). The checks exchange a few integers (``multihost_utils.process_allgather``)
and raise the same ``ValueError`` on every process, so that none is left waiting in
a collective.
"""

from __future__ import annotations

import zlib
from typing import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils

from jaxem._src.sequences import Sequences

# leaf description: n_items, ndim, 4 trailing axes (-1 = absent), dtype number
_MAX_TRAILING = 4


def process_count() -> int:
    """The number of processes of the ``jax.distributed`` run (1 without one)."""
    return jax.process_count()


def all_processes_pass(check: Callable[[], None]) -> None:
    """Runs ``check()`` in every process; if it fails in any, every process raises
    a ``ValueError`` (the failing process its own error, the others one naming it)."""
    error = None
    try:
        check()
    except (ValueError, TypeError) as caught:
        error = caught
    failed = multihost_utils.process_allgather(np.asarray([error is not None], np.int32))
    failed = np.flatnonzero(np.asarray(failed).reshape(-1))
    if error is not None:
        raise error
    if failed.size:
        raise ValueError(f"the data of process {int(failed[0])} failed the model's check (see that process's error)")


def _describe(leaf) -> np.ndarray:
    leaf = np.asarray(leaf)
    if leaf.ndim == 0 or leaf.ndim - 1 > _MAX_TRAILING:
        raise ValueError(f"every field of the data must have 1 to {_MAX_TRAILING + 1} axes, got shape {leaf.shape}")
    trailing = list(leaf.shape[1:]) + [-1] * (_MAX_TRAILING - (leaf.ndim - 1))
    return np.asarray([leaf.shape[0], leaf.ndim] + trailing + [leaf.dtype.num], np.int64)


def agreed_rows(rows):
    """``rows`` (a pytree whose leaves have the items on axis 0) checked against
    every other process's; an HMM's ``Sequences`` padded to the longest padded
    length of all processes.

    Returns:
      ``(rows, counts)``: the (re-padded) local rows and ``[n_processes]`` the
      number of items each process holds.

    Raises:
      ValueError: naming the processes and the field when the slices differ in
        structure, number of axes, trailing shape (the width) or dtype.
    """
    leaves, treedef = jax.tree_util.tree_flatten(rows)
    names = _leaf_names(rows)
    structure = np.asarray([len(leaves), zlib.crc32(str(treedef).encode())], np.int64)
    structures = np.asarray(multihost_utils.process_allgather(structure)).reshape(-1, 2)
    if np.any(structures != structures[0]):
        other = int(np.flatnonzero(np.any(structures != structures[0], axis=1))[0])
        raise ValueError(f"process {other} passed data of another structure than process 0 ({treedef})")
    described = np.stack([_describe(leaf) for leaf in leaves])
    every = np.asarray(multihost_utils.process_allgather(described)).reshape((-1,) + described.shape)
    sequences = isinstance(rows, Sequences)
    for i, name in enumerate(names):
        table = every[:, i]
        if np.any(table[:, 1] != table[0, 1]):
            other = int(np.flatnonzero(table[:, 1] != table[0, 1])[0])
            raise ValueError(f"{name} has {table[other, 1]} axes in process {other} but {table[0, 1]} in process 0")
        trailing = table[:, 2:-1]
        if sequences and name == "obs":
            trailing = trailing[:, 1:]  # the padded length may differ; padded below
        if np.any(trailing != trailing[0]):
            other = int(np.flatnonzero(np.any(trailing != trailing[0], axis=1))[0])
            raise ValueError(
                f"{name} has shape {_shape(table[other])} in process {other} but {_shape(table[0])} in process 0: "
                "every process must pass items of the same width"
            )
        if np.any(table[:, -1] != table[0, -1]):
            other = int(np.flatnonzero(table[:, -1] != table[0, -1])[0])
            raise ValueError(
                f"{name} has dtype {_dtype(table[other, -1])} in process {other} but {_dtype(table[0, -1])} in process 0: every process must pass the same dtype"
            )
    counts = every[:, 0, 0]
    if sequences:
        t_max = int(every[:, names.index("obs"), 2].max())
        obs = np.asarray(rows.obs)
        if obs.shape[1] < t_max:
            pad = [(0, 0), (0, t_max - obs.shape[1])] + [(0, 0)] * (obs.ndim - 2)
            rows = Sequences(np.pad(obs, pad), rows.lengths)
    return rows, counts


def _leaf_names(rows) -> list:
    paths = jax.tree_util.tree_flatten_with_path(rows)[0]
    return [".".join(getattr(key, "name", str(key)) for key in path) or "x" for path, _ in paths]


def _shape(row: np.ndarray) -> str:
    ndim = int(row[1])
    return "[" + ", ".join(["N"] + [str(int(n)) for n in row[2 : 2 + ndim - 1]]) + "]"


_DTYPE_NAMES = {
    np.dtype(name).num: name
    for name in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64")
}


def _dtype(number: int) -> str:
    return _DTYPE_NAMES.get(int(number), f"dtype number {int(number)}")


def global_rows(sharding, rows, n_per_process: int):
    """One global array per leaf of the local ``rows`` (``n_per_process`` items in
    every process), split over ``sharding``'s devices in process order."""
    total = n_per_process * process_count()
    return jax.tree_util.tree_map(
        lambda leaf: jax.make_array_from_process_local_data(sharding, np.asarray(leaf), (total,) + np.shape(leaf)[1:]),
        rows,
    )
