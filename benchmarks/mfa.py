"""Mixture of factor analyzers vs a full-covariance Gaussian mixture: ms per EM step.

    PYTHONPATH=. python benchmarks/mfa.py [--repeats 5] [--dims 64,256] [--n 5000]

Issue 16 says a mixture of factor analyzers (K components, L factors each) should
be much cheaper per iteration than a full-covariance GMM for large D: its E-step
works with D x L loadings and a diagonal noise (a rank-L update, O(N K D L)), the
full GMM with D x D covariances and the D(D+1)/2 second-moment features
(O(N K D²)). For each D: the same data (``--n`` rows, scikit-learn's digits for
D = 64, a synthetic low-rank mixture otherwise), one compiled ``jaxem.em_step``
per model from its own ``jaxem.init``, the minimum of ``--repeats`` calls after
the compile, both models timed alternately in this one process; float32. Prints
ms per step and the ratio full GMM / MFA (above 1: the MFA is cheaper).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np
from sklearn.datasets import load_digits

import jaxem


def data(d: int, n: int) -> np.ndarray:
    if d == 64:
        x = load_digits().data.astype(np.float64)
        return (x + np.random.default_rng(0).uniform(-0.5, 0.5, x.shape)).astype(np.float32)
    rng = np.random.default_rng(d)
    centres = rng.normal(scale=3.0, size=(4, d))
    loadings = rng.normal(size=(4, d, 5))
    z = rng.integers(4, size=n)
    x = centres[z] + np.einsum("ndl,nl->nd", loadings[z], rng.normal(size=(n, 5))) + 0.3 * rng.normal(size=(n, d))
    return x.astype(np.float32)


def step_ms(model, x, repeats: int) -> float:
    params = jaxem.init(model, jax.random.key(0), x)
    prepared = model.prepare(x)
    step = jax.jit(lambda p, data: jaxem.em_step(model, p, data))
    jax.block_until_ready(step(params, prepared))
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(step(params, prepared))
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="64,256")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--components", type=int, default=4)
    parser.add_argument("--factors", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}; jax {jax.__version__}; float32; K = {args.components}, L = {args.factors}")
    print("| D | N | full GMM ms/step | MFA ms/step | full / MFA |")
    print("|---:|---:|---:|---:|---:|")
    for d in (int(v) for v in args.dims.split(",")):
        x = data(d, args.n)
        gmm = jaxem.models.gaussian_mixture(args.components, covariance_type="full")
        mfa = jaxem.models.mixture_of_factor_analyzers(args.components, args.factors)
        full, low = np.inf, np.inf
        for _ in range(2):  # alternate, so both sides see the same load
            full = min(full, step_ms(gmm, x, args.repeats))
            low = min(low, step_ms(mfa, x, args.repeats))
        print(f"| {d} | {x.shape[0]} | {full:.2f} | {low:.2f} | {full / low:.2f} |", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
