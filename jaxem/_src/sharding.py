"""Several devices: the items (a mixture's rows, an HMM's sequences) sharded over a
mesh axis, the statistics reduced by XLA.

``shard_rows`` places the data on a device mesh with the items split over one mesh
axis (``NamedSharding(mesh, PartitionSpec("data"))``) and prepares them there, with
the per-item fields of the features split the same way and the shared fields (a
Gaussian's ``shift`` and ``scale``) replicated. Every jaxem function (``fit``,
``em_step``, ``log_likelihood``...) then runs unchanged: ``jit`` propagates the
input sharding, each device computes the log-potentials and posterior of its own
items (an HMM's forward recursion runs per shard of sequences), and the sums over
items (the additive expected statistics and the log-likelihood) become all-reduces
inserted by XLA. The parameters, statistics and the M-step are small and
replicated. Any model with an ``AdditiveMStep`` works: every exponential-family
mixture and every HMM built by ``component_hmm``.

Padding. The items must split evenly over the devices. An HMM's batch is padded
with sequences of length 0, which contribute nothing to any likelihood, statistic,
seeding or count (``AdditiveMStep.zero_rows_are_empty``); a mixture's rows cannot
be padded without weights, so their number must be a multiple of the devices.

Several processes (``jax.distributed``): each process calls ``shard_rows`` with its
own slice of the raw items; they are checked against each other
(``distributed.py``) and become one global array over all processes' devices, so the
features' standardization, the seeding and the fit are computed from all the data
and every process gets the same result. See docs/scale.md.
"""

from __future__ import annotations

from typing import Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxem._src import chunking, distributed, validation
from jaxem._src.base import AdditiveMStep, Model
from jaxem._src.hmm import ChainData
from jaxem._src.sequences import Sequences


def data_mesh(devices=None, axis_name: str = "data") -> Mesh:
    """A one-axis mesh over ``devices`` (default: all devices, of every process).

    Examples:
      >>> mesh = jaxem.data_mesh()                                  # all devices, one axis "data"
      >>> mesh.axis_names
      ('data',)
    """
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (axis_name,))


def shard_rows(model: Model, data, *, mesh: Optional[Mesh] = None, axis_name: str = "data"):
    """Prepared features of ``data`` with their items split across devices.

    Args:
      model: a model with an ``AdditiveMStep`` (every exponential-family mixture,
        every HMM of ``component_hmm``): its ``per_row`` fields are split, the
        others replicated.
      data: raw data (``[N, D]`` rows; an HMM's ``jaxem.Sequences``) or, in one
        process, ``model.prepare(data)``. In a ``jax.distributed`` run: this
        process's own raw items, the same number in every process for a mixture.
        A mixture's ``N`` must be a multiple of the number of devices on
        ``axis_name``; an HMM's batch is padded with sequences of length 0.
      mesh: a ``jax.sharding.Mesh`` (default: ``data_mesh()``, all devices).
      axis_name: the mesh axis the items are split over.

    Returns:
      Prepared features to pass to ``jaxem.fit`` / ``em_step`` in place of ``data``.

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> features = jaxem.shard_rows(model, x)                   # rows split over jax.devices()
      >>> result = jaxem.fit(model, features, key=0, n_restarts=2)
      >>> result.params.means.shape
      (2, 2)
    """
    mesh = data_mesh(axis_name=axis_name) if mesh is None else mesh
    if axis_name not in mesh.axis_names:
        raise ValueError(f"axis_name {axis_name!r} is not an axis of the mesh {mesh.axis_names}")
    additive = chunking.check_chunkable(model, "shard_rows")
    data = validation.as_data(data)
    n_processes = distributed.process_count()
    if n_processes > 1:
        distributed.all_processes_pass(lambda: model.check(data))
    else:
        model.check(data)
    prepared_shape = jax.eval_shape(model.prepare, data)
    prepared = type(data) is type(prepared_shape)
    if prepared and n_processes > 1:
        raise ValueError(
            "in a jax.distributed run, pass every process's raw data to shard_rows (not prepared features), "
            "so that the features' standardization is computed from all processes' data"
        )
    n_devices = validation.check_positive_int(mesh.shape[axis_name], "number of devices")
    if n_devices % n_processes:
        raise ValueError(f"the {n_devices} devices on axis {axis_name!r} do not split evenly over {n_processes} processes")
    rows_sharding = NamedSharding(mesh, PartitionSpec(axis_name))
    replicated = NamedSharding(mesh, PartitionSpec())
    placement = _placement(prepared_shape, additive.per_row, rows_sharding, replicated)
    if prepared:
        rows = _row_fields(data, additive.per_row)
    else:
        rows = item_rows(data, prepared_shape)
    counts = np.asarray([_n_items(rows)])
    if n_processes > 1:
        rows, counts = distributed.agreed_rows(rows)
    per_process = _padded_count(additive, counts, n_devices // n_processes, axis_name)
    rows = _pad(rows, per_process)
    if n_processes > 1:
        placed = distributed.global_rows(rows_sharding, rows, per_process)
    else:
        placed = jax.tree_util.tree_map(lambda leaf: jax.device_put(leaf, rows_sharding), rows)
    if prepared:
        features = _with_nested(data, placed)
        return jax.tree_util.tree_map(jax.device_put, features, placement)
    return jax.jit(model.prepare, out_shardings=placement)(placed)


def item_rows(data, prepared_shape):
    """Raw data as a pytree whose leaves all have the items on axis 0: an HMM's
    ``Sequences`` (a plain array, one sequence, becomes a batch of one), a
    mixture's rows as they are."""
    if isinstance(prepared_shape, ChainData):
        if isinstance(data, Sequences):
            return Sequences(np.asarray(data.obs), np.asarray(data.lengths, np.int32))
        obs = np.asarray(data)
        return Sequences(obs[None], np.asarray([obs.shape[0]], np.int32))
    return jax.tree_util.tree_map(np.asarray, data)


def _n_items(rows) -> int:
    return int(np.shape(jax.tree_util.tree_leaves(rows)[0])[0])


def _padded_count(additive: AdditiveMStep, counts: np.ndarray, local_devices: int, axis_name: str) -> int:
    """The number of items every process holds after padding (``counts``: before)."""
    most = int(np.max(counts))
    target = -(-most // local_devices) * local_devices
    if additive.zero_rows_are_empty:
        return target
    if len(counts) > 1 and np.any(counts != counts[0]):
        raise ValueError(
            f"every process must pass the same number of rows; they hold {[int(n) for n in counts]} "
            "(split the rows evenly, e.g. drop the remainder or give sample_weight=0 to padding rows)"
        )
    if most != target:
        raise ValueError(
            f"the number of rows ({int(np.sum(counts))}) must be a multiple of the number of devices on "
            f"axis {axis_name!r} ({local_devices * len(counts)}); drop or add rows, or give sample_weight=0 to padding rows"
        )
    return target


def _pad(rows, n: int):
    """Every leaf padded with zeros to ``n`` items on axis 0 (empty items)."""

    def pad(leaf):
        leaf = np.asarray(leaf) if not isinstance(leaf, jax.Array) else leaf
        missing = n - leaf.shape[0]
        if missing == 0:
            return leaf
        return np.concatenate([np.asarray(leaf), np.zeros((missing,) + leaf.shape[1:], leaf.dtype)])

    return jax.tree_util.tree_map(pad, rows)


def _leaf_name(path) -> str:
    return ".".join(getattr(key, "name", str(key)) for key in path)


def _placement(prepared_shape, per_row: tuple, rows, replicated):
    """A sharding per leaf of the prepared data: ``rows`` for the ``per_row``
    fields (dotted names reach into nested NamedTuples), ``replicated`` otherwise."""
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: rows if _leaf_name(path) in per_row else replicated, prepared_shape
    )


def _row_fields(features, per_row: tuple) -> dict:
    """``{dotted name: array}`` of the per-row fields of prepared features."""
    return {name: chunking.row_field(features, name) for name in per_row}


def _with_nested(features, placed: dict):
    """``features`` with its (possibly nested, dotted) fields replaced by ``placed``."""
    for name, value in placed.items():
        outer, _, inner = name.partition(".")
        if inner:
            value = _with_nested(getattr(features, outer), {inner: value})
        features = features._replace(**{outer: value})
    return features


def shard_steps(model: Model, sequence, *, mesh: Optional[Mesh] = None, axis_name: str = "data"):
    """Prepared features of ONE long sequence with its steps split across devices.

    For an HMM built with ``parallel=True`` (e.g. ``jaxem.models.gaussian_hmm(K,
    parallel=True)``), whose log-partition is a ``lax.associative_scan`` of the
    ``T`` per-step transfer matrices (``chain.parallel_log_marginal``): XLA splits
    the scan over the devices, each computing the products of its own block of
    steps and the blocks exchanging their partial products (the exact messages
    between blocks, no approximation); the gradient (the E-step) is split the same
    way. The result equals the sequential recursion to rounding. The sequential
    recursion (``parallel=False``) has no parallelism over time, so there, and
    for many sequences, shard the sequences with ``shard_rows`` instead. The
    steps are padded to a multiple of the devices (padded steps are ignored).

    Args:
      model: an HMM of ``component_hmm`` (``parallel=True`` to gain anything).
      sequence: one sequence ``[T, ...]``, a ``Sequences`` batch of one, or its
        prepared ``ChainData`` (one process).
      mesh / axis_name: as in ``shard_rows``; the steps are split over ``axis_name``.

    Returns:
      ``ChainData`` to pass to ``jaxem.fit`` / ``em_step`` / ``posterior``.

    Examples:
      >>> import jaxem, numpy as np
      >>> model = jaxem.models.gaussian_hmm(2, parallel=True)
      >>> obs = np.random.default_rng(0).normal(size=(1000, 2))
      >>> data = jaxem.shard_steps(model, obs)
      >>> result = jaxem.fit(model, data, key=0, max_iter=3)
    """
    mesh = data_mesh(axis_name=axis_name) if mesh is None else mesh
    if axis_name not in mesh.axis_names:
        raise ValueError(f"axis_name {axis_name!r} is not an axis of the mesh {mesh.axis_names}")
    if distributed.process_count() > 1:
        raise ValueError("shard_steps runs in one process; in a jax.distributed run, shard sequences with shard_rows")
    additive = chunking.check_chunkable(model, "shard_steps")
    data = validation.as_data(sequence)
    model.check(data)
    features = jax.jit(model.prepare)(data)
    if not isinstance(features, ChainData):
        raise ValueError("shard_steps needs a chain model (an HMM): for a mixture's rows, use shard_rows")
    if features.lengths.shape[0] != 1:
        raise ValueError(f"shard_steps takes one sequence, got a batch of {features.lengths.shape[0]}: use shard_rows")
    n_devices = mesh.shape[axis_name]
    steps = NamedSharding(mesh, PartitionSpec(None, axis_name))
    replicated = NamedSharding(mesh, PartitionSpec())

    def place(path, leaf):
        if _leaf_name(path) not in additive.per_row or leaf.ndim < 2:
            return jax.device_put(leaf, replicated)
        missing = -leaf.shape[1] % n_devices
        padded = np.pad(np.asarray(leaf), [(0, 0), (0, missing)] + [(0, 0)] * (leaf.ndim - 2))
        return jax.device_put(padded, steps)

    return jax.tree_util.tree_map_with_path(place, features)
