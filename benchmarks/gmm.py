"""Gaussian mixture EM: jaxem vs scikit-learn, same data, same start, same iterations.

    PYTHONPATH=. python benchmarks/gmm.py [--n 200000] [--d 16] [--k 32] [--iters 5]

For each covariance type (full, diag) and dtype (float32, float64) both libraries
run ``--iters`` EM iterations from the same starting parameters on the same data,
in this one process, and the script prints:

- ms per iteration. scikit-learn: its own per-iteration work, ``_e_step`` then
  ``_m_step``, timed in a loop (exactly what ``GaussianMixture.fit`` does per
  iteration). jaxem: the wall time of a whole ``jaxem.fit(..., init_params=start,
  max_iter=iters, tol=0)`` call (already compiled) divided by ``iters``; this
  includes building the features and the final log-likelihood, so it is
  conservative. "EM step alone" is jaxem's per-iteration cost without that
  once-per-fit work, the one comparable with scikit-learn's loop: (time of a fit
  of ``2 * iters`` iterations minus time of a fit of ``iters``) / ``iters``. Each
  is the minimum over ``--repeats`` runs (the machine is shared).
- GFLOP/s: a nominal count of ``4 N K F`` flops per iteration (the two matrix
  products of the exponential-family form, F = dim T(x)), the same count for both
  libraries, divided by the time: a ratio of GFLOP/s is the speed ratio.
- peak memory. scikit-learn: the peak of NumPy allocations during one iteration
  (``tracemalloc``, which NumPy reports to). jaxem: what XLA plans for the compiled
  fit (``memory_analysis``: temporaries; the features ``N x F`` are an argument).
- the largest difference in mean log-likelihood per sample between the two traces.
- the matrix-multiply bound: the two bare products of one iteration,
  ``[N, F] @ [F, K]`` and ``[K, N] @ [N, F]`` on random arrays of the case's shapes
  and dtype, timed alone (minimum of 10) with XLA (``jax.jit``) and with NumPy
  (OpenBLAS); "x bound" is jaxem's time over the faster of the two.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxem  # noqa: E402
from benchmarks import _peers  # noqa: E402
from benchmarks._common import best_time, blobs, machine, mib, xla_memory  # noqa: E402


def sklearn_start(params, covariance_type, dtype):
    u = np.asarray(params.precisions_cholesky).astype(dtype)
    return np.asarray(params.weights).astype(dtype), np.asarray(params.means).astype(dtype), u


def run_sklearn(x, params, covariance_type, iters, repeats):
    from sklearn.mixture import GaussianMixture

    k = params.means.shape[0]
    weights, means, factor = sklearn_start(params, covariance_type, x.dtype)
    precisions = np.einsum("kij,klj->kil", factor, factor) if covariance_type == "full" else factor * factor
    gm = GaussianMixture(
        k, covariance_type=covariance_type, max_iter=1, tol=0.0, init_params="random_from_data",
        weights_init=weights, means_init=means, precisions_init=precisions,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(x)  # sets up the fitted attributes; reset to the start below

    def reset():
        weights, means, factor = sklearn_start(params, covariance_type, x.dtype)
        gm.weights_, gm.means_, gm.precisions_cholesky_ = weights, means, factor

    trace = []

    def loop():
        reset()
        trace.clear()
        for _ in range(iters):
            log_prob_norm, log_resp = gm._e_step(x)
            gm._m_step(x, log_resp)
            trace.append(float(log_prob_norm))

    seconds = best_time(loop, repeats)
    reset()
    tracemalloc.start()
    log_prob_norm, log_resp = gm._e_step(x)
    gm._m_step(x, log_resp)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds / iters, np.asarray(trace), peak


def matmul_bound(n, k, n_features, dtype, repeats=10):
    """``(xla_seconds, numpy_seconds)`` of the two bare products of one EM iteration."""
    rng = np.random.default_rng(0)
    stats = rng.normal(size=(n, n_features)).astype(dtype)
    coefficients = rng.normal(size=(k, n_features)).astype(dtype)
    posterior = rng.uniform(size=(n, k)).astype(dtype)
    both = jax.jit(lambda s, c, r: (s @ c.T, r.T @ s))
    args = [jnp.asarray(a) for a in (stats, coefficients, posterior)]
    jax.block_until_ready(both(*args))
    xla = best_time(lambda: jax.block_until_ready(both(*args)), repeats)
    numpy = best_time(lambda: (stats @ coefficients.T, posterior.T @ stats), repeats)
    return xla, numpy


def run_jaxem(x, params, covariance_type, iters, repeats, chunk_size="auto"):
    k = params.means.shape[0]
    model = jaxem.models.gaussian_mixture(k, covariance_type=covariance_type)
    x = jax.device_put(jnp.asarray(x))
    start = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, x.dtype), params)

    def call(max_iter=iters):
        return jaxem.fit(model, x, key=0, init_params=start, max_iter=max_iter, tol=0.0, chunk_size=chunk_size)

    result = jax.block_until_ready(call())
    jax.block_until_ready(call(2 * iters))
    # EM steps alone: a fit of 2 * iters steps minus one of iters steps (same setup);
    # the two are timed alternately, so a disturbance hits both alike.
    single, double = [], []
    for _ in range(repeats):
        single.append(best_time(lambda: jax.block_until_ready(call()), 1))
        double.append(best_time(lambda: jax.block_until_ready(call(2 * iters)), 1))
    seconds = min(single)
    step_seconds = min(double) - seconds
    features = model.prepare(x)
    # The XLA memory plan needed the private ``engine._fit`` (gone since the
    # compile-once refactor): the column reads nan until a public hook exists.
    memory = {}
    n_features = features.stats.shape[1]
    return seconds / iters, np.asarray(result.history[0]) / x.shape[0], memory, n_features, step_seconds / iters


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sklearn-repeats", type=int, default=2)
    parser.add_argument("--types", default="full,diag")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--peers", action="store_true", help="also time pomegranate and gmmx (the bench extra)")
    args = parser.parse_args()
    print(machine())
    if args.peers:
        print(_peers.describe(_peers.GMM_PEERS))
    print(f"N={args.n} D={args.d} K={args.k}, {args.iters} EM iterations from the same start\n")
    x64 = blobs(args.n, args.d, args.k)
    header = (
        f"{'case':<14} {'library':<22} {'ms/iter':>9} {'speed-up':>9} {'GFLOP/s':>8} "
        f"{'peak memory':>24} {'max |Δ mean loglik|':>20}"
    )
    print(header)
    print("-" * len(header))
    for covariance_type in args.types.split(","):
        model64 = jaxem.models.gaussian_mixture(args.k, covariance_type=covariance_type, init="random_from_data")
        start = jaxem.init(model64, jax.random.key(0), x64)
        for dtype in args.dtypes.split(","):
            x = x64.astype(dtype)
            case = f"{covariance_type} {dtype}"
            sk_time, sk_trace, sk_peak = run_sklearn(x, start, covariance_type, args.iters, args.sklearn_repeats)
            rows = [("jaxem (default)", "auto"), ("jaxem chunk_size=None", None)]
            results = []
            for name, chunk_size in rows:
                results.append((name,) + run_jaxem(x, start, covariance_type, args.iters, args.repeats, chunk_size))
            n_features = results[0][4]
            flops = 4.0 * args.n * args.k * n_features
            bound = matmul_bound(args.n, args.k, n_features, dtype)
            print(f"{case:<14} {'scikit-learn':<22} {sk_time * 1e3:9.1f} {1.0:9.2f} {flops / sk_time / 1e9:8.1f} "
                  f"{mib(sk_peak) + ' (numpy)':>24} {'':>20}")
            for name, seconds, trace, memory, _, step in results:
                diff = np.max(np.abs(trace - sk_trace))
                temp = mib(memory.get("temp", float("nan"))) + " (XLA temp)"
                print(f"{'':<14} {name:<22} {seconds * 1e3:9.1f} {sk_time / seconds:9.2f} "
                      f"{flops / seconds / 1e9:8.1f} {temp:>24} {diff:20.2e}   {seconds / min(bound):.1f}x bound")
                print(f"{'':<14} {'  EM step alone':<22} {step * 1e3:9.1f} {sk_time / step:9.2f} "
                      f"{flops / step / 1e9:8.1f} {'':>24} {'':>20}   {step / min(bound):.1f}x bound")
            for name, seconds in zip(("bare products, XLA", "bare products, NumPy"), bound):
                print(f"{'':<14} {name:<22} {seconds * 1e3:9.1f} {sk_time / seconds:9.2f} {flops / seconds / 1e9:8.1f}")
            if args.peers:
                runs = _peers.gmm_peer_runs(x, start, covariance_type, args.iters, args.repeats)
                _peers.print_runs(runs, results[0][1], results[0][2], sk_time, "scikit-learn")
    print(f"\n(finished {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())})")


if __name__ == "__main__":
    main()
