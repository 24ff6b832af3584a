"""The overhead of the float32 correction (issue 12) over the plain two products, in one process.

    PYTHONPATH=. python benchmarks/centred_overhead.py --type diag --dtype float32 --n 50000

Compiles one EM step of one restart (the vmapped ``em_update``, ``fit``'s automatic
chunking) twice on the same data and params: as it is, and with the Gaussian
family's ``log_densities`` and ``statistics`` replaced by the plain products
``T(x') @ η`` and ``posteriorᵀ @ T(x')`` (the family code before the fix). The
calls alternate, and the minimum of ``--repeats`` each is printed: unlike two
processes on a loaded machine, both sides see the same load. ``--after T``: at the
params ``T`` EM iterations from the start (more components flagged in float32).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp

import jaxem
from benchmarks._common import blobs
from jaxem._src import chunking
from jaxem._src import update as update_lib
from jaxem._src.families import gaussian_centred


def _plain_log_densities(params, features, covariance, fast_coefficients, offsets=None):
    return features.stats @ fast_coefficients.T.astype(features.stats.dtype)


def _compiled_step(model, batch, features, plain: bool):
    saved = gaussian_centred.log_densities, gaussian_centred.statistics
    if plain:
        statistics = saved[1]
        gaussian_centred.log_densities = _plain_log_densities
        gaussian_centred.statistics = lambda features, posterior, params, covariance: statistics(features, posterior, None, covariance)
    try:
        step = lambda p, f: jax.vmap(lambda q: update_lib.em_update(model, q, f))(p)  # noqa: E731
        return jax.jit(step).lower(batch, features).compile()
    finally:
        gaussian_centred.log_densities, gaussian_centred.statistics = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--type", default="diag")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--after", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    x64 = blobs(args.n, args.d, args.k)
    start = jaxem.init(jaxem.models.gaussian_mixture(args.k, covariance_type=args.type, init="random_from_data"), jax.random.key(0), x64)
    x = jnp.asarray(x64.astype(args.dtype))
    model = chunking.with_chunk_size(jaxem.models.gaussian_mixture(args.k, covariance_type=args.type), "auto", x)
    params = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, x.dtype), start)
    if args.after:
        params = jaxem.fit(model, x, key=0, init_params=params, max_iter=args.after, tol=0.0).params
    features = model.prepare(x)
    batch = jax.tree_util.tree_map(lambda leaf: leaf[None], params)
    steps = {"branch": _compiled_step(model, batch, features, False), "plain": _compiled_step(model, batch, features, True)}
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(args.repeats):
        for name, step in steps.items():
            begin = time.perf_counter()
            jax.block_until_ready(step(batch, features))
            best[name] = min(best[name], time.perf_counter() - begin)
    print(f"{args.type} {args.dtype} N={args.n} D={args.d} K={args.k} after {args.after} iterations, min of {args.repeats}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"branch {best['branch'] * 1e3:.2f} ms, plain two products {best['plain'] * 1e3:.2f} ms, "
          f"ratio {best['branch'] / best['plain']:.3f}")


if __name__ == "__main__":
    main()
