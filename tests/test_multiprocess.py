"""A fit over 2 (and 4) jax.distributed processes on localhost with gloo CPU
collectives: each process holds only its slice of the rows (or sequences); every
process gets the single-process fit on all the data (float64, 1e-10)."""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxem
from tests.multiprocess_data import hmm_sequences, mixture_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_processes(tmp_path, n_processes, local_devices, with_hmm):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT, JAXEM_COMPILATION_CACHE="0")
    env.pop("XLA_FLAGS", None)
    outs = [tmp_path / f"process{i}.npz" for i in range(n_processes)]
    workers = [
        subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tests", "multiprocess_worker.py"), str(i), str(n_processes), str(port),
             str(local_devices), str(outs[i])] + (["hmm"] if with_hmm else []),
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for i in range(n_processes)
    ]
    logs = []
    try:
        for worker in workers:
            logs.append(worker.communicate(timeout=600)[0])
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for worker, log in zip(workers, logs):
        assert worker.returncode == 0, log[-3000:]
    return [np.load(out) for out in outs]


# The best restart is not compared: two restarts may reach one optimum with
# permuted labels, so which is "best" can flip on a rounding difference.
COMPARED = ("history", "n_iter", "converged", "all_params", "all_log_likelihoods", "log_likelihood")


def reference(with_hmm):
    """The single-process fits on all the data (one device)."""
    model = jaxem.models.gaussian_mixture(3)
    fits = {"mixture": jaxem.fit(model, mixture_rows(), key=3, n_restarts=2, max_iter=25, tol=0.0)}
    if with_hmm:
        hmm = jaxem.models.gaussian_hmm(3)
        fits["hmm"] = jaxem.fit(hmm, jaxem.Sequences.from_list(hmm_sequences()), key=4, n_restarts=2, max_iter=12, tol=0.0)
    return fits


def check(results, with_hmm):
    for prefix, fit in reference(with_hmm).items():
        for name in COMPARED:
            for i, leaf in enumerate(jax.tree_util.tree_leaves(getattr(fit, name))):
                for saved in results:
                    np.testing.assert_allclose(
                        saved[f"{prefix}.{name}.{i}"], np.asarray(leaf), rtol=1e-10, atol=1e-12, err_msg=f"{prefix}.{name}.{i}"
                    )
    for saved in results:
        width, dtype = [str(e) for e in saved["errors"]]
        assert "x has shape [N, 2] in process 1 but [N, 3] in process 0" in width and "same width" in width, width
        assert "dtype float32 in process 1" in dtype and "float64 in process 0" in dtype, dtype
    for saved in results[1:]:  # every process holds the same FitResult, bit for bit
        for name in saved.files:
            np.testing.assert_array_equal(saved[name], results[0][name])


@pytest.mark.slow
def test_two_processes_fit_a_mixture_as_one(tmp_path):
    check(run_processes(tmp_path, 2, local_devices=2, with_hmm=False), with_hmm=False)


@pytest.mark.slow
@pytest.mark.parametrize("n_processes, local_devices", [(2, 2), (4, 1)])
def test_processes_fit_a_mixture_and_an_hmm_as_one(tmp_path, n_processes, local_devices):
    check(run_processes(tmp_path, n_processes, local_devices, with_hmm=True), with_hmm=True)
