"""Overhead of fit(progress=...) (host loop over compiled chunks of 10 iterations).

    PYTHONPATH=. python benchmarks/progress_overhead.py [--n 20000] [--repeats 5]

Times the same fixed amount of work (tol=0, so every restart runs max_iter steps)
with progress off and on (printing to /dev/null), after compilation, interleaved,
and reports the median of each.
"""

import argparse
import os
import statistics
import sys
import time

import jax
import numpy as np

import jaxem


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--d", type=int, default=5)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--restarts", type=int, default=16)
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(args.k, args.d))
    x = (centres[rng.integers(args.k, size=args.n)] + rng.normal(size=(args.n, args.d))).astype(np.float32)
    model = jaxem.models.gaussian_mixture(args.k)
    sink = open(os.devnull, "w")

    def run(progress):
        start = time.perf_counter()
        stderr, sys.stderr = sys.stderr, sink
        try:
            result = jaxem.fit(model, x, key=0, n_restarts=args.restarts, max_iter=args.max_iter, tol=0.0, progress=progress)
            jax.block_until_ready(result)
        finally:
            sys.stderr = stderr
        return time.perf_counter() - start

    run(False), run(True)  # compile both
    off, on = [], []
    for _ in range(args.repeats):
        off.append(run(False))
        on.append(run(True))
    a, b = statistics.median(off), statistics.median(on)
    print(f"N={args.n} D={args.d} K={args.k} restarts={args.restarts} iterations={args.max_iter} ({jax.devices()[0].platform})")
    print(f"progress off: {a:.3f} s   on (every 10): {b:.3f} s   overhead {100 * (b - a) / a:+.1f}%")


if __name__ == "__main__":
    main()
