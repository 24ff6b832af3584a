"""The cost of a prior: one EM step with and without a conjugate prior.

    PYTHONPATH=. python benchmarks/priors.py [--n 200000] [--repeats 5]

Both sides run in the same process on the same data and params, compiled
(``jaxem.em_step``, min of ``--repeats``, the two sides alternating): a Gaussian mixture (full, K = 8, D = 8)
with and without ``priors.weak_gaussian`` plus a Dirichlet on the weights, and a
Gaussian HMM (diag, K = 8, D = 4) with and without ``priors.hmmlearn_gaussian``.
The prior only adds ``[K, F]`` pseudo-statistics to the M-step, so the ratio
should be ~1 whatever N.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

import jaxem
from benchmarks._common import best_time, blobs, machine
from jaxem import priors


def step_times(plain, with_prior, params, x, repeats):
    """``(ML, MAP)`` min wall times of one compiled ``em_step``, the two sides
    alternating (the machine is shared: neither side gets the quieter minutes)."""

    def runner(model):
        def run():
            jax.block_until_ready(jaxem.em_step(model, params, x))

        run()  # compile
        return run

    runs = [runner(plain), runner(with_prior)]
    times = [[], []]
    for _ in range(repeats):
        for side, run in enumerate(runs):
            times[side].append(best_time(run, 1))
    return min(times[0]), min(times[1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    print(f"| case | ML step | MAP step | MAP / ML |\n|---|---:|---:|---:|")

    x = blobs(args.n, 8, 8).astype(np.float32)
    plain = jaxem.models.gaussian_mixture(8, covariance_type="full")
    prior = priors.MixturePrior(weights=2.0, components=priors.weak_gaussian(x, "full"))
    with_prior = jaxem.models.gaussian_mixture(8, covariance_type="full", prior=prior)
    params = jaxem.init(plain, jax.random.key(0), x)
    ml, map_ = step_times(plain, with_prior, params, x, args.repeats)
    print(f"| GMM full, N = {args.n}, K = 8, D = 8, f32 | {ml * 1e3:.1f} ms | {map_ * 1e3:.1f} ms | {map_ / ml:.2f} |")

    obs = blobs(args.n // 2, 4, 8).astype(np.float32)
    plain = jaxem.models.gaussian_hmm(8, covariance_type="diag")
    hmm_prior = priors.hmmlearn_gaussian(8, 4, "diag", transmat_prior=2.0, means_weight=1.0, covars_weight=3.0)
    with_prior = jaxem.models.gaussian_hmm(8, covariance_type="diag", prior=hmm_prior)
    params = jaxem.init(plain, jax.random.key(0), obs)
    ml, map_ = step_times(plain, with_prior, params, obs, args.repeats)
    print(f"| HMM diag, T = {args.n // 2}, K = 8, D = 4, f32 | {ml * 1e3:.1f} ms | {map_ * 1e3:.1f} ms | {map_ / ml:.2f} |")


if __name__ == "__main__":
    main()
