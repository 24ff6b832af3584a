"""Vmapped restarts vs the same restarts one after another, and compile time of fit.

    PYTHONPATH=. python benchmarks/restarts.py [--n 200000] [--restarts 8] [--iters 5] [--compile-only]

Restarts: ``jaxem.fit(..., n_restarts=R, init_params=batch)`` (all R restarts vmapped
in one program) vs R calls of ``jaxem.fit(..., init_params=one)`` (the same compiled
program each time), both ``--iters`` EM iterations (``tol=0``) of a K=32, D=16 full
Gaussian mixture; wall times are the minimum over ``--repeats`` runs. A ratio above
1 means vmapping is faster than running the restarts sequentially.

Compile time: the first call of ``jaxem.fit`` minus the second (identical) call, in
this fresh process: (a) the CLI demo's fit (Old Faithful, K=2 full, 16 restarts,
k-means++ init, max_iter=100), (b) the benchmark's GMM (K=32 full, 8 restarts).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxem  # noqa: E402
from benchmarks._common import best_time, blobs, machine  # noqa: E402


def compile_time(fn):
    """``(wall, cpu)`` seconds of the first call minus the second. CPU time (this
    process, all threads) is less disturbed by other load on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn())
    first = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn())
    second = time.perf_counter() - wall, time.process_time() - cpu
    return first[0] - second[0], first[1] - second[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--restarts", type=int, default=8)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--compile-only", action="store_true", help="only the compile times")
    args = parser.parse_args()
    print(machine())

    faithful = jnp.asarray(jaxem.load_dataset("faithful")[0])
    demo = jaxem.models.gaussian_mixture(2, covariance_type="full")
    t_demo = compile_time(lambda: jaxem.fit(demo, faithful, key=0, n_restarts=16, max_iter=100))
    x64 = blobs(args.n, args.d, args.k)
    big = jaxem.models.gaussian_mixture(args.k, covariance_type="full")
    xb = jnp.asarray(x64.astype("float32"))
    t_big = compile_time(lambda: jaxem.fit(big, xb, key=0, n_restarts=args.restarts, max_iter=args.iters, tol=0.0))
    print("compile time of fit (first call minus second, wall / CPU):")
    print(f"  Old Faithful, K=2 full, 16 restarts, float64: {t_demo[0]:.2f} s / {t_demo[1]:.2f} s")
    print(f"  N={args.n} K={args.k} D={args.d} full, {args.restarts} restarts, float32: {t_big[0]:.2f} s / {t_big[1]:.2f} s\n")
    if args.compile_only:
        return

    model = jaxem.models.gaussian_mixture(args.k, covariance_type="full", init="random_from_data")
    starts64 = [jaxem.init(model, r, x64) for r in range(args.restarts)]
    print(f"N={args.n} D={args.d} K={args.k} full, {args.restarts} restarts x {args.iters} EM iterations")
    print(f"{'dtype':<8} {'sequential s':>13} {'vmapped s':>10} {'ratio':>7} {'max rel. diff of log-lik':>25}")
    for dtype in args.dtypes.split(","):
        x = jax.device_put(jnp.asarray(x64.astype(dtype)))
        starts = [jax.tree_util.tree_map(lambda leaf: leaf.astype(dtype), s) for s in starts64]
        batch = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *starts)

        def sequential():
            return [jaxem.fit(model, x, key=0, init_params=s, max_iter=args.iters, tol=0.0).log_likelihood for s in starts]

        def vmapped():
            return jaxem.fit(model, x, key=0, n_restarts=args.restarts, init_params=batch, max_iter=args.iters, tol=0.0).all_log_likelihoods

        a = np.asarray(jax.block_until_ready(sequential()))
        b = np.asarray(jax.block_until_ready(vmapped()))
        t_seq, t_vmap = [], []
        for _ in range(args.repeats):  # interleaved, so both see the same load
            t_seq.append(best_time(lambda: jax.block_until_ready(sequential()), 1))
            t_vmap.append(best_time(lambda: jax.block_until_ready(vmapped()), 1))
        diff = np.max(np.abs(a - b) / np.abs(a))
        print(f"{dtype:<8} {min(t_seq):13.2f} {min(t_vmap):10.2f} {min(t_seq) / min(t_vmap):7.2f} {diff:25.1e}")
    print(f"\n(finished {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())})")


if __name__ == "__main__":
    main()
