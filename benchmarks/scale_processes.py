"""Beyond one process: jax.distributed fits, HMM streaming from a memmap, one long
sequence over devices (the figures of benchmarks/RESULTS.md, "scale beyond one process").

    PYTHONPATH=. python benchmarks/scale_processes.py [--rows 400000] [--processes 1,2,4]

1. rows/s of a Gaussian-mixture fit (K=8, D=8, full, float32) over 1, 2, 4
   ``jax.distributed`` processes on localhost (gloo CPU collectives), each holding
   N / P rows, and every process's peak RSS. ms/iter = (t(6 iters) - t(2 iters)) / 4,
   timed in process 0 (all processes run the same program). On a 2-core machine
   this shows correctness and overhead, not speed-up: P processes share 2 cores.
2. HMM streaming: ``fit_streaming`` of a Gaussian HMM (K=4, D=4, float32) over a
   memmap of concatenated sequences (``sequence_chunks``), steps/s per pass, against
   ``fit`` on the same data in memory.
3. One long sequence: one EM step of a Gaussian HMM (K=4) on T steps, the sequential
   recursion on one device against ``parallel=True`` on one device and split over 4
   host devices (``shard_steps``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def process_child(process_id: int, n_processes: int, port: str, n: int) -> dict:
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if n_processes > 1:
        jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=n_processes, process_id=process_id)
    import numpy as np

    import jaxem
    from benchmarks._common import blobs_lowmem

    x = blobs_lowmem(n, 8, 8, "float32")
    model = jaxem.models.gaussian_mixture(8, covariance_type="full", init="random_from_data")
    # init_params must be the same in every process: drawn from the same rows with the same key
    start = jax.tree_util.tree_map(np.asarray, jaxem.init(model, 0, x[:5000]))
    mine = np.array_split(x, n_processes)[process_id]
    del x
    features = jaxem.shard_rows(model, mine)

    def fit(iters):
        result = jaxem.fit(model, features, key=0, init_params=start, max_iter=iters, tol=0.0)
        return float(result.log_likelihood)

    times = {}
    for iters in (2, 6):
        fit(iters)
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            log_lik = fit(iters)
            best = min(best, time.perf_counter() - t0)
        times[iters] = best
    per_iter = (times[6] - times[2]) / 4
    return {"ms_per_iter": per_iter * 1e3, "rows_per_s": n / per_iter, "rss": _rss(), "log_lik": log_lik}


def hmm_streaming(n_sequences: int, length: int) -> dict:
    import jax
    import numpy as np

    import jaxem

    rng = np.random.default_rng(0)
    states = np.cumsum(rng.random(n_sequences * length) < 0.05) % 4
    obs = (np.eye(4)[states] * 3 + rng.normal(size=(states.size, 4))).astype(np.float32)
    lengths = np.full(n_sequences, length)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "obs.npy"), obs)
        disk = np.load(os.path.join(tmp, "obs.npy"), mmap_mode="r")
        model = jaxem.models.gaussian_hmm(4, covariance_type="diag")
        data = jaxem.Sequences(obs.reshape(n_sequences, length, 4), lengths.astype(np.int32))
        start = jaxem.init(model, 0, jaxem.Sequences(data.obs[:50], data.lengths[:50]))
        chunks = jaxem.sequence_chunks(disk, lengths, 250)

        def streamed(iters):
            return jax.block_until_ready(jaxem.fit_streaming(model, chunks, init_params=start, max_iter=iters, tol=0.0))

        def memory(iters):
            return jax.block_until_ready(jaxem.fit(model, data, key=0, init_params=start, max_iter=iters, tol=0.0))

        out = {}
        for name, fn in (("streaming", streamed), ("in memory", memory)):
            fn(1)
            times = {}
            for iters in (1, 4):
                t0 = time.perf_counter()
                fn(iters)
                times[iters] = time.perf_counter() - t0
            per_iter = (times[4] - times[1]) / 3
            out[name] = {"ms_per_iter": per_iter * 1e3, "steps_per_s": n_sequences * length / per_iter}
        a, b = streamed(3), memory(3)
        out["rel_diff"] = float(abs(a.log_likelihood - b.log_likelihood) / abs(b.log_likelihood))
    return out


def long_sequence(t: int) -> dict:
    import jax

    jax.config.update("jax_num_cpu_devices", 4)
    import numpy as np

    import jaxem

    rng = np.random.default_rng(0)
    states = np.cumsum(rng.random(t) < 0.01) % 4
    obs = (np.eye(4)[states] * 3 + rng.normal(size=(t, 4))).astype(np.float32)
    sequential = jaxem.models.gaussian_hmm(4, covariance_type="diag")
    parallel = jaxem.models.gaussian_hmm(4, covariance_type="diag", parallel=True)
    params = jaxem.init(sequential, 0, obs[:5000])
    cases = {
        "sequential, 1 device": (sequential, sequential.prepare(obs)),
        "parallel, 1 device": (parallel, parallel.prepare(obs)),
        "parallel, 4 devices (shard_steps)": (parallel, jaxem.shard_steps(parallel, obs)),
    }
    out = {}
    for name, (model, data) in cases.items():
        jax.block_until_ready(jaxem.em_step(model, params, data))
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            _, log_lik = jax.block_until_ready(jaxem.em_step(model, params, data))
            best = min(best, time.perf_counter() - t0)
        out[name] = {"ms": best * 1e3, "log_lik": float(log_lik)}
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_processes(n_processes: int, n: int) -> list:
    port = str(free_port())
    env = dict(os.environ, PYTHONPATH=ROOT)
    workers = [
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", json.dumps(["process", i, n_processes, port, n])],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(n_processes)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=1200)
        if worker.returncode:
            raise RuntimeError("\n".join(err.strip().splitlines()[-25:]))
        results.append(json.loads(out.split("RESULT", 1)[1]))
    return results


def child(args) -> None:
    kind, *rest = json.loads(args)
    result = {"process": process_child, "hmm": hmm_streaming, "long": long_sequence}[kind](*rest)
    print("RESULT" + json.dumps(result))


def run_child(*spec) -> dict:
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", json.dumps(list(spec))],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
    )
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return json.loads(done.stdout.split("RESULT", 1)[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--hmm-sequences", type=int, default=2000)
    parser.add_argument("--hmm-length", type=int, default=200)
    parser.add_argument("--long-steps", type=int, default=100_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    from benchmarks._common import machine, mib

    print(machine())
    print(f"load average at start: {os.getloadavg()}")
    print(f"\n1. Gaussian mixture K=8 D=8 full float32, N={args.rows}, jax.distributed on localhost (gloo)")
    print(f"{'processes':>9} {'ms/iter':>9} {'rows/s':>12} {'vs 1 process':>13} {'peak RSS per process':>22} {'log-lik':>14}")
    base = None
    for p in [int(s) for s in args.processes.split(",")]:
        results = run_processes(p, args.rows)
        r = results[0]
        base = r["rows_per_s"] if base is None else base
        rss = max(x["rss"] for x in results)
        print(f"{p:>9} {r['ms_per_iter']:9.1f} {r['rows_per_s']:12.3g} {r['rows_per_s'] / base:12.2f}x {mib(rss):>22} {r['log_lik']:14.6g}")
    print(f"\n2. HMM streaming: Gaussian diag K=4 D=4 float32, {args.hmm_sequences} x T={args.hmm_length} from a memmap, batches of 250")
    r = run_child("hmm", args.hmm_sequences, args.hmm_length)
    for name in ("streaming", "in memory"):
        print(f"{name:>10}: {r[name]['ms_per_iter']:8.1f} ms/pass {r[name]['steps_per_s']:10.3g} steps/s")
    print(f"streaming / in memory time: {r['streaming']['ms_per_iter'] / r['in memory']['ms_per_iter']:.2f}x; log-lik rel. diff {r['rel_diff']:.1e}")
    print(f"\n3. One long sequence, T={args.long_steps}, Gaussian diag K=4 float32, one em_step (best of 3)")
    r = run_child("long", args.long_steps)
    first = next(iter(r.values()))["ms"]
    for name, v in r.items():
        print(f"{name:>34}: {v['ms']:9.1f} ms ({v['ms'] / first:.2f}x the sequential)  log-lik {v['log_lik']:.8g}")
    print(f"\nload average at end: {os.getloadavg()}; (finished {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())})")


if __name__ == "__main__":
    main()
