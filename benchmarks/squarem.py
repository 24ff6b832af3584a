"""SQUAREM vs plain EM on slowly converging (heavily overlapping) mixtures.

    PYTHONPATH=. python benchmarks/squarem.py

For each problem both run from the same start to the same tolerance (change in
log-likelihood per sample below ``--tol``); printed: EM-step evaluations (a
SQUAREM cycle costs three), wall time (compiled; min of 3), the final mean
log-likelihood, and its gap to a long plain-EM reference run (tol 1e-13).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxem  # noqa: E402
from benchmarks._common import best_time, machine  # noqa: E402


def overlapping(n, d, gap, seed=0):
    rng = np.random.default_rng(seed)
    half = n // 2
    return np.concatenate([rng.normal(0.0, 1.0, (half, d)), rng.normal(gap, 1.0, (n - half, d))])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--max-iter", type=int, default=20000)
    args = parser.parse_args()
    print(machine())
    problems = [
        ("2 Gaussians 1 sd apart, D=2, K=2 diag", overlapping(10_000, 2, 1.0), 2, "diag"),
        ("2 Gaussians 1 sd apart, D=2, K=2 full", overlapping(10_000, 2, 1.0, seed=1), 2, "full"),
        ("2 Gaussians 1.5 sd apart, D=5, K=3 full", overlapping(10_000, 5, 1.5), 3, "full"),
        ("faithful, K=4 full", np.asarray(jaxem.load_dataset("faithful")[0]), 4, "full"),
    ]
    print(f"tolerance {args.tol:g} per sample; float64\n")
    print(f"{'problem':<42} {'method':<8} {'EM steps':>9} {'ms':>8} {'mean loglik':>13} {'gap to reference':>17}")
    for name, x, k, covariance_type in problems:
        model = jaxem.models.gaussian_mixture(k, covariance_type=covariance_type)
        start = jaxem.init(model, 0, x)
        reference = jaxem.fit(model, x, key=0, init_params=start, max_iter=100_000, tol=1e-13)
        for method in (None, "squarem"):
            def run():
                return jax.block_until_ready(
                    jaxem.fit(model, x, key=0, init_params=start, max_iter=args.max_iter, tol=args.tol, accelerate=method)
                )
            result = run()
            seconds = best_time(run, 3)
            mean = float(result.log_likelihood) / x.shape[0]
            gap = float(reference.log_likelihood - result.log_likelihood) / x.shape[0]
            label = method or "EM"
            print(f"{name:<42} {label:<8} {int(result.n_iter[0]):9d} {seconds * 1e3:8.1f} {mean:13.6f} {gap:17.2e}")
    print(f"\n(finished {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())})")


if __name__ == "__main__":
    main()
