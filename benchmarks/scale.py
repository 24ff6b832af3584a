"""Time and memory per EM iteration from N = 10⁴ to 10⁷ rows (chunked).

    PYTHONPATH=. python benchmarks/scale.py [--sizes 1e4,1e5,1e6,1e7] [--chunk-size 4096]
    PYTHONPATH=. python benchmarks/scale.py --beyond-one-process   # benchmarks/scale_processes.py

K=32, D=16, full covariance, float32. Each size runs in its own subprocess so that
its peak resident memory (``ru_maxrss``) is its own. Reported per size:

- prepare s: building the features T(x) once (``jax.jit(model.prepare)``, compiled
  beforehand; one timed call);
- ms/iter: ``(t(fit, 6 iterations) - t(fit, 2 iterations)) / 4`` on the prepared
  features, minimum of 2 runs each (so feature building, the final log-likelihood
  and dispatch cancel out), and ns per row;
- features: the size of T(x), N x F (F = 153); XLA temp: the temporaries XLA plans
  for the compiled fit (with chunking O(chunk · (K + F)), independent of N);
- peak RSS: the subprocess's peak resident memory (data + features + runtime),
  once right after building the features ("after prepare") and at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def one_size(n: int, chunk_size: int | None) -> dict:
    import jax
    import jax.numpy as jnp

    import jaxem
    from jaxem._src import algorithms, chunking, loop
    from benchmarks._common import best_time, blobs_lowmem, xla_memory

    k, d = 32, 16
    x = blobs_lowmem(n, d, k, "float32")
    model = jaxem.models.gaussian_mixture(k, covariance_type="full", init="random_from_data")
    start = jaxem.init(model, 0, x[: min(n, 20_000)])
    x = jnp.asarray(x)
    prepare = jax.jit(model.prepare).lower(x).compile()
    start_time = time.perf_counter()  # one call only: a second would hold two feature matrices
    features = jax.block_until_ready(prepare(x))
    t_prepare = time.perf_counter() - start_time
    rss_prepare = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    del x

    def fit(iters):
        return jaxem.fit(model, features, key=0, init_params=start, max_iter=iters, tol=0.0, chunk_size=chunk_size)

    times = {}
    for iters in (2, 6):
        jax.block_until_ready(fit(iters))
        times[iters] = best_time(lambda: jax.block_until_ready(fit(iters)), 2)
    per_iter = (times[6] - times[2]) / 4
    batch = jax.tree_util.tree_map(lambda leaf: leaf[None], start)
    chunked = chunking.with_chunk_size(model, chunk_size, features)
    compiled = loop.fit_restarts.lower(
        chunked, features, jax.random.split(jax.random.key(0), 1), batch, None, jnp.asarray(0.0, jnp.float32),
        make_algorithm=algorithms.em, max_iter=4,
    ).compile()
    return {
        "n": n,
        "chunk_size": chunk_size,
        "prepare_s": t_prepare,
        "ms_per_iter": per_iter * 1e3,
        "ns_per_row": per_iter / n * 1e9,
        "features_bytes": features.stats.nbytes,
        "xla_temp_bytes": xla_memory(compiled).get("temp", float("nan")),
        "prepare_rss_bytes": rss_prepare,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e4,1e5,1e6,1e7")
    parser.add_argument("--chunk-size", type=int, default=4096, help="rows per chunk (4096: what chunk_size=\"auto\" picks here)")
    parser.add_argument("--unchunked-up-to", type=float, default=1e6, help="also run without chunking up to this N")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--beyond-one-process", action="store_true", help="run benchmarks/scale_processes.py instead")
    args, rest = parser.parse_known_args()
    if args.beyond_one_process:
        from benchmarks import scale_processes

        sys.argv = [scale_processes.__file__] + rest
        scale_processes.main()
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.child:
        n, chunk = json.loads(args.child)
        print("RESULT" + json.dumps(one_size(n, chunk)))
        return
    from benchmarks._common import machine, mib

    print(machine())
    print("K=32 D=16 full float32")
    print(f"{'N':>10} {'chunk':>7} {'prepare s':>10} {'ms/iter':>9} {'ns/row':>7} {'features':>11} {'XLA temp':>10} {'RSS after prepare':>18} {'peak RSS':>10}")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for size in args.sizes.split(","):
        n = int(float(size))
        chunks = [args.chunk_size] + ([None] if n <= args.unchunked_up_to else [])
        for chunk in chunks:
            done = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child", json.dumps([n, chunk])],
                cwd=root, env=dict(os.environ, PYTHONPATH=root), capture_output=True, text=True,
            )
            if done.returncode:
                print(f"{n:>10} {str(chunk):>7} failed: {done.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(done.stdout.split("RESULT", 1)[1])
            print(f"{n:>10} {str(chunk):>7} {r['prepare_s']:10.2f} {r['ms_per_iter']:9.1f} {r['ns_per_row']:7.1f} "
                  f"{mib(r['features_bytes']):>11} {mib(r['xla_temp_bytes']):>10} {mib(r['prepare_rss_bytes']):>18} {mib(r['peak_rss_bytes']):>10}")
    print(f"\n(finished {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())})")


if __name__ == "__main__":
    main()
