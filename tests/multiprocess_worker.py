"""One process of a jax.distributed fit on localhost (started by tests/test_multiprocess.py).

    python tests/multiprocess_worker.py PROCESS_ID N_PROCESSES PORT LOCAL_DEVICES OUT.npz [hmm]

Each process loads only its own slice of the rows (and of the sequences), fits
through ``jaxem.shard_rows`` on the global mesh, and saves its ``FitResult``s;
then it checks that slices of another width or dtype are refused.
"""

import sys

import jax

process_id, n_processes, port, local_devices, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.config.update("jax_num_cpu_devices", local_devices)
jax.config.update("jax_enable_x64", True)
jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=n_processes, process_id=process_id)

import numpy as np  # noqa: E402

import jaxem  # noqa: E402
from tests.multiprocess_data import hmm_sequences, mixture_rows  # noqa: E402

saved = {}


def save(prefix, result):
    for name, value in result._asdict().items():
        for i, leaf in enumerate(jax.tree_util.tree_leaves(value)):
            assert leaf.is_fully_replicated, (prefix, name, i, leaf.sharding)
            saved[f"{prefix}.{name}.{i}"] = np.asarray(leaf)


# mixture: a contiguous block of rows per process
x = mixture_rows()
mine = np.array_split(x, n_processes)[process_id]
model = jaxem.models.gaussian_mixture(3)
features = jaxem.shard_rows(model, mine)
save("mixture", jaxem.fit(model, features, key=3, n_restarts=2, max_iter=25, tol=0.0))

with_hmm = sys.argv[6:] == ["hmm"]
# HMM: a contiguous block of sequences per process, of unequal counts and padded lengths
if with_hmm:
    sequences = hmm_sequences()
    blocks = np.array_split(np.arange(len(sequences)), n_processes)
    hmm = jaxem.models.gaussian_hmm(3)
    local = jaxem.Sequences.from_list([sequences[i] for i in blocks[process_id]])
    save("hmm", jaxem.fit(hmm, jaxem.shard_rows(hmm, local), key=4, n_restarts=2, max_iter=12, tol=0.0))

# slices that disagree are refused in every process
errors = []
for bad in (mine[:, :2] if process_id == 1 else mine, mine.astype(np.float32) if process_id == 1 else mine):
    try:
        jaxem.shard_rows(model, bad)
        errors.append("no error")
    except ValueError as error:
        errors.append(str(error))
saved["errors"] = np.asarray(errors)
np.savez(out, **saved)
jax.distributed.shutdown()
