"""The cost of the float32 numerics fix (issue 12) on benchmarks/gmm.py's cases.

    git archive main | tar -x -C /tmp/jaxem-main   # the code to compare against
    PYTHONPATH=. python benchmarks/numerics_cost.py --main /tmp/jaxem-main [--n 200000]

Runs ``benchmarks.gmm.run_jaxem`` (a compiled ``jaxem.fit`` of ``--iters`` EM
iterations from the same start, and the EM step alone) for each case, once with
``--main``'s ``jaxem`` and once with this checkout's, in alternating subprocesses
(``--rounds`` times each), and prints the minimum ms per iteration of each side and
their ratio (this checkout / main; 1.10 = 10 % slower), with the load average.

With ``--step-repeats R`` it instead times one compiled EM step directly (the
vmapped ``em_update`` of one restart, as ``fit`` runs it, with ``fit``'s automatic
chunking), the minimum of ``R`` calls: on a loaded machine the difference of two
fits ("step alone") scatters by several times, the minimum of many short calls
much less.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(args) -> None:
    import jax

    from benchmarks._common import blobs
    from benchmarks.gmm import run_jaxem

    import jaxem

    x64 = blobs(args.n, args.d, args.k)
    out = {}
    for covariance_type in args.types.split(","):
        model64 = jaxem.models.gaussian_mixture(args.k, covariance_type=covariance_type, init="random_from_data")
        start = jaxem.init(model64, jax.random.key(0), x64)
        for dtype in args.dtypes.split(","):
            if args.step_repeats:
                step = step_seconds(x64.astype(dtype), start, covariance_type, args.step_repeats, args.step_after)
                out[f"{covariance_type} {dtype}"] = (step * 1e3, step * 1e3)
                continue
            seconds, _, _, _, step = run_jaxem(x64.astype(dtype), start, covariance_type, args.iters, args.repeats)
            out[f"{covariance_type} {dtype}"] = (seconds * 1e3, step * 1e3)
    print("RESULT " + json.dumps({"jaxem": jaxem.__file__, "times": out}))


def step_seconds(x, params, covariance_type, repeats, after=0):
    """The minimum over ``repeats`` calls of one compiled EM step of one restart, at
    ``params`` or (``after`` > 0) at the params ``after`` EM iterations from them."""
    import time

    import jax
    import jax.numpy as jnp

    import jaxem
    from jaxem._src import chunking
    from jaxem._src import update as update_lib

    k = params.means.shape[0]
    x = jax.device_put(jnp.asarray(x))
    model = chunking.with_chunk_size(jaxem.models.gaussian_mixture(k, covariance_type=covariance_type), "auto", x)
    features = model.prepare(x)
    params = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, x.dtype), params)
    if after:
        params = jaxem.fit(model, x, key=0, init_params=params, max_iter=after, tol=0.0).params
    batch = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, x.dtype)[None], params)
    step = jax.jit(lambda p, f: jax.vmap(lambda q: update_lib.em_update(model, q, f))(p)).lower(batch, features).compile()
    jax.block_until_ready(step(batch, features))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(step(batch, features))
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--main", help="a directory holding main's jaxem package")
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--types", default="full,diag")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--step-repeats", type=int, default=0, help="time the EM step directly, min of this many calls")
    parser.add_argument("--step-after", type=int, default=0, help="with --step-repeats: time the step at the params this many EM iterations from the start")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    passed = [a for a in sys.argv[1:] if not a.startswith("--main") and a != args.main]
    best = {"main": {}, "branch": {}}
    for _ in range(args.rounds):
        for side, path in (("main", args.main), ("branch", HERE)):
            env = dict(os.environ, PYTHONPATH=f"{path}{os.pathsep}{HERE}")
            run = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--worker", *passed], env=env, capture_output=True, text=True, check=True
            )
            line = next(row for row in run.stdout.splitlines() if row.startswith("RESULT "))
            result = json.loads(line[len("RESULT ") :])
            for case, times in result["times"].items():
                old = best[side].get(case, (float("inf"), float("inf")))
                best[side][case] = tuple(min(a, b) for a, b in zip(old, times))
    what = f"EM step alone (after {args.step_after} iterations), min of {args.step_repeats} calls" if args.step_repeats else f"{args.iters} iterations"
    print(f"N={args.n} D={args.d} K={args.k}, {what}, minima of {args.rounds} alternating rounds")
    print(f"load average at the end: {os.getloadavg()}")
    print(f"{'case':<16} {'main fit':>10} {'branch fit':>11} {'ratio':>6}   {'main step':>10} {'branch step':>12} {'ratio':>6}")
    for case, (fit_main, step_main) in best["main"].items():
        fit_branch, step_branch = best["branch"][case]
        print(f"{case:<16} {fit_main:10.1f} {fit_branch:11.1f} {fit_branch / fit_main:6.2f}   "
              f"{step_main:10.1f} {step_branch:12.1f} {step_branch / step_main:6.2f}")


if __name__ == "__main__":
    main()
