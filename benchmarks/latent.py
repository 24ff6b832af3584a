"""Continuous latents: factor analysis vs scikit-learn, LGSSM EM per iteration.

    PYTHONPATH=. python benchmarks/latent.py [--repeats 3] [--quick]

1. Factor analysis against ``sklearn.decomposition.FactorAnalysis`` (float64, its
   only precision; jaxem also in float32), in this one process, same data, same
   start and the same tolerance: scikit-learn starts from ψ = 1 (its default) and
   its first step sets the loadings to the top principal directions scaled by
   ``sqrt(max(λ − 1, 0))``; jaxem starts from exactly those loadings and ψ = 1.
   scikit-learn stops when the total log-likelihood rises by less than
   ``tol · N``, jaxem when the mean per sample rises by less than ``tol``: the
   same rule. Reported: seconds per fit (jaxem compiled beforehand; the compile
   time is printed apart), iterations, final mean log-likelihood, the ratio.
   scikit-learn's algorithm is not EM (an SVD per iteration), so iteration counts
   differ; both run to the same tolerance.
2. LGSSM EM: ms per ``jaxem.em_step`` (compiled, minimum of repeats) for one long
   sequence and for many short ones, float32 and float64. The comparison with
   dynamax (and of the parallel-in-time form) is ``benchmarks/lgssm.py``.
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_wine  # noqa: E402
from sklearn.decomposition import FactorAnalysis  # noqa: E402

import jaxem  # noqa: E402
from jaxem.models import FactorAnalysisParams  # noqa: E402


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        jax.block_until_ready(out) if isinstance(out, jax.Array) else None
        times.append(time.perf_counter() - start)
    return min(times), out


def pca_start(x, n_factors):
    """scikit-learn's first step from ψ = 1: loadings from the top principal directions."""
    n = x.shape[0]
    centred = x - x.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    eig = s[:n_factors] ** 2 / n
    loadings = vt[:n_factors].T * np.sqrt(np.maximum(eig - 1.0, 0.0))
    return FactorAnalysisParams(x.mean(0), loadings, np.ones(x.shape[1]))


def factor_analysis_case(name, x, n_factors, tol, repeats):
    n = x.shape[0]
    sk_time, sk = best_of(lambda: FactorAnalysis(n_factors, tol=tol * n, max_iter=100000).fit(x), repeats)
    model = jaxem.models.factor_analysis(n_factors)
    rows = []
    for dtype in (np.float64, np.float32):
        data = x.astype(dtype)
        start = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype), pca_start(x, n_factors))

        def run():
            return jaxem.fit(model, data, key=0, init_params=start, max_iter=100000, tol=tol)

        compile_start = time.perf_counter()
        jax.block_until_ready(run().log_likelihood)
        first = time.perf_counter() - compile_start
        seconds, result = best_of(lambda: run(), repeats)
        rows.append((np.dtype(dtype).name, seconds, int(result.n_iter[0]), float(result.log_likelihood) / n, first - seconds))
    print(f"\nFactor analysis, {name}: N = {n}, D = {x.shape[1]}, L = {n_factors}, tol = {tol:g} per sample")
    print("| library | s per fit | iterations | mean log-lik | vs scikit-learn | (compile s) |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| scikit-learn f64 | {sk_time:.3f} | {sk.n_iter_} | {sk.score(x):.6f} | 1 | |")
    for dtype, seconds, iters, ll, compile_s in rows:
        ratio = sk_time / seconds
        word = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
        print(f"| jaxem {dtype} | {seconds:.3f} | {iters} | {ll:.6f} | {word} | {compile_s:.1f} |")


def lgssm_case(n_sequences, t, n_states, d, repeats):
    rng = np.random.default_rng(0)
    truth = jaxem.models.LGSSMParams(
        np.zeros(n_states), np.eye(n_states), 0.95 * np.eye(n_states), np.zeros((n_states, 0)), 0.1 * np.eye(n_states),
        rng.normal(size=(d, n_states)), np.zeros((d, 0)), 0.5 * np.eye(d),
    )  # fmt: skip
    model = jaxem.models.lgssm(n_states)
    xs = [np.asarray(jaxem.sample(model, truth, jax.random.key(b), t)[0]) for b in range(n_sequences)]
    data64 = jaxem.Sequences.from_list(xs)
    print(f"\nLGSSM EM step: {n_sequences} x T = {t}, L = {n_states}, D = {d}")
    print("| dtype | jaxem ms / iteration | dynamax |")
    print("|---|---:|---|")
    for dtype in (np.float32, np.float64):
        data = jaxem.Sequences(data64.obs.astype(dtype), data64.lengths)
        params = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype), truth)
        prepared = model.prepare(data)
        jitted = jax.jit(lambda p, d: jaxem.em_step(model, p, d))  # data an argument: not folded as a constant

        def step(p):
            return jitted(p, prepared)

        jax.block_until_ready(step(params))
        seconds, _ = best_of(lambda: jax.block_until_ready(step(params)[1]), repeats)
        print(f"| {np.dtype(dtype).name} | {1e3 * seconds:.1f} | {dynamax_note()} |")


def dynamax_note():
    try:
        import dynamax  # noqa: F401
    except ImportError:
        return "not installed (bench extra); skipped"
    return "installed: see benchmarks/lgssm.py"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small cases only")
    args = parser.parse_args()
    print(jax.devices()[0].platform, jax.__version__)
    wine = load_wine().data
    wine = (wine - wine.mean(0)) / wine.std(0)
    factor_analysis_case("wine (standardized)", wine, 2, 1e-6, args.repeats)
    if not args.quick:
        rng = np.random.default_rng(0)
        w = rng.normal(size=(50, 5))
        x = rng.normal(size=(20000, 5)) @ w.T + rng.normal(size=(20000, 50)) * np.sqrt(rng.uniform(0.5, 2.0, 50))
        factor_analysis_case("synthetic", x, 5, 1e-6, args.repeats)
    lgssm_case(1, 10000 if args.quick else 100000, 4, 4, args.repeats)
    lgssm_case(100, 100 if args.quick else 1000, 4, 4, args.repeats)


if __name__ == "__main__":
    main()
