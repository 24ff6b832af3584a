"""Several devices: data sharded over the sample axis, statistics reduced by XLA.

``shard_rows`` places the prepared features on a device mesh with the rows split
over one mesh axis (``NamedSharding(mesh, PartitionSpec("data"))``) and the shared
fields (a Gaussian's ``shift`` and ``scale``) replicated. Every jaxem function
(``fit``, ``em_step``, ``log_likelihood``...) then runs unchanged: ``jit`` propagates
the input sharding, each device computes the log-potentials and posterior of its
own rows, and the sums over rows (the expected statistics ``posteriorᵀ @ T(x)`` and
the log-likelihood) become all-reduces inserted by XLA. The parameters, ``[K, F]``
statistics and the M-step are small and replicated.

Several hosts: start every process with ``jax.distributed.initialize()`` (or with
its coordinator address, number of processes and process id), build a mesh over
``jax.devices()`` (all hosts' devices), and give each process its own rows, e.g.
``jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), local_x)``;
prepare with a standardization common to all hosts (``reference=``) and fit as
usual. Each process then sees the same replicated result.
"""

from __future__ import annotations

from typing import Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxem._src import chunking, validation
from jaxem._src.base import Model


def data_mesh(devices=None, axis_name: str = "data") -> Mesh:
    """A one-axis mesh over ``devices`` (default: all devices).

    Examples:
      >>> mesh = jaxem.data_mesh()                                  # all devices, one axis "data"
      >>> mesh.axis_names
      ('data',)
    """
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (axis_name,))


def shard_rows(model: Model, data, *, mesh: Optional[Mesh] = None, axis_name: str = "data"):
    """Prepared features of ``data`` with their rows split across devices.

    Args:
      model: a model with an ``AdditiveMStep`` (every exponential-family
        mixture): its ``per_row`` fields are split, the others replicated.
      data: raw ``[N, D]`` data or ``model.prepare(data)``. ``N`` must be a
        multiple of the number of devices on ``axis_name``.
      mesh: a ``jax.sharding.Mesh`` (default: ``data_mesh()``, all devices).
      axis_name: the mesh axis the rows are split over.

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
    model.check(data)
    features = jax.jit(model.prepare)(data)
    n = additive.n_rows(features)
    n_devices = mesh.shape[axis_name]
    if n % n_devices:
        raise ValueError(
            f"the number of rows ({n}) must be a multiple of the number of devices on "
            f"axis {axis_name!r} ({n_devices}); drop or add rows, or give sample_weight=0 to padding rows"
        )
    validation.check_positive_int(n_devices, "number of devices")
    rows = NamedSharding(mesh, PartitionSpec(axis_name))
    replicated = NamedSharding(mesh, PartitionSpec())
    placed = {
        name: jax.device_put(value, rows if name in additive.per_row else replicated)
        for name, value in features._asdict().items()
    }
    return features._replace(**placed)
