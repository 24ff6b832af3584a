"""LGSSM EM per iteration: jaxem (sequential and parallel-in-time) against dynamax.

    PYTHONPATH=. python benchmarks/lgssm.py [--t 10000] [--states 4] [--obs 8] [--repeats 5] [--dtypes float64]
    PYTHONPATH=. python benchmarks/lgssm.py --dtypes float32      # x64 off (dynamax needs it so)

Same data (one sequence sampled from a random stable LGSSM), same start, same
dimensions, no biases or inputs, in one process. One EM iteration is, for jaxem,
``jaxem.em_step`` on prepared data, jitted (the gradient of the square-root
information filter's log-partition, then the closed-form M-step); for dynamax
1.0.3, exactly the step its ``LinearGaussianSSM.fit_em`` scans: ``vmap(e_step)``
(covariance-form Kalman filter + RTS smoother, expected statistics) then
``m_step``, jitted. Both are compiled before timing; reported: the minimum over
``--repeats`` rounds, jaxem sequential, jaxem parallel and dynamax interleaved in
every round. Before timing, the script checks that both compute the same thing:
the log-likelihood at the start and the parameters after three EM steps
(``reg_covar=0`` for jaxem, so its M-step is the plain one).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax

# float64 unless only float32 is asked for: dynamax (through TFP) mixes dtypes when
# x64 is on and its inputs are float32, so float32 runs in a process of its own.
jax.config.update("jax_enable_x64", "float32" not in " ".join(sys.argv) or "float64" in " ".join(sys.argv))

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxem  # noqa: E402
from jaxem.models import LGSSMParams  # noqa: E402


def truth_and_start(n_states: int, d: int, seed: int = 0):
    """A random stable LGSSM (the data) and a different start (both float64)."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n_states, n_states))
    f = 0.95 * f / np.max(np.abs(np.linalg.eigvals(f)))
    a = rng.normal(size=(d, d)) * 0.2
    truth = LGSSMParams(
        np.zeros(n_states), np.eye(n_states), f, np.zeros((n_states, 0)), 0.1 * np.eye(n_states),
        rng.normal(size=(d, n_states)), np.zeros((d, 0)), 0.3 * np.eye(d) + a @ a.T,
    )  # fmt: skip
    start = LGSSMParams(
        np.zeros(n_states), np.eye(n_states), 0.9 * np.eye(n_states), np.zeros((n_states, 0)), 0.1 * np.eye(n_states),
        rng.normal(size=(d, n_states)), np.zeros((d, 0)), 0.5 * np.eye(d),
    )  # fmt: skip
    return truth, start


def to_dynamax(params: LGSSMParams):
    from dynamax.linear_gaussian_ssm.models import (
        ParamsLGSSM,
        ParamsLGSSMDynamics,
        ParamsLGSSMEmissions,
        ParamsLGSSMInitial,
    )

    return ParamsLGSSM(
        initial=ParamsLGSSMInitial(mean=params.initial_mean, cov=params.initial_covariance),
        dynamics=ParamsLGSSMDynamics(
            weights=params.dynamics, bias=None, input_weights=params.dynamics_input, cov=params.dynamics_covariance
        ),
        emissions=ParamsLGSSMEmissions(
            weights=params.emission, bias=None, input_weights=params.emission_input, cov=params.emission_covariance
        ),
    )


def dynamax_em_step(n_states: int, d: int, emissions):
    """dynamax's EM iteration (the body of ``fit_em``'s scan), jitted: params -> (params, log-lik)."""
    from dynamax.linear_gaussian_ssm import LinearGaussianSSM

    model = LinearGaussianSSM(n_states, d, has_dynamics_bias=False, has_emissions_bias=False)
    _, props = model.initialize(jax.random.PRNGKey(0))

    @jax.jit
    def step(params, batch):
        stats, lls = jax.vmap(lambda y: model.e_step(params, y))(batch)
        new, _ = model.m_step(params, props, stats, None)
        return new, jnp.sum(lls)

    batch = emissions[None]
    return lambda params: step(params, batch)


def jaxem_em_step(n_states: int, x, parallel: bool):
    model = jaxem.models.lgssm(n_states, reg_covar=0.0, parallel=parallel)
    prepared = model.prepare(x)
    step = jax.jit(lambda p, data: jaxem.em_step(model, p, data))  # data an argument: not folded as a constant
    return lambda p: step(p, prepared)


def timed(fn, arg):
    start = time.perf_counter()
    jax.block_until_ready(fn(arg))
    return time.perf_counter() - start


def case(t: int, n_states: int, d: int, dtype, repeats: int):
    truth, start64 = truth_and_start(n_states, d)
    x64, _ = jaxem.sample(jaxem.models.lgssm(n_states), truth, jax.random.key(0), t)
    x = np.asarray(x64, dtype)
    start = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), start64)
    steps = {
        "jaxem sequential": (jaxem_em_step(n_states, x, False), start),
        "jaxem parallel": (jaxem_em_step(n_states, x, True), start),
        "dynamax": (dynamax_em_step(n_states, d, jnp.asarray(x)), to_dynamax(start)),
    }
    # Same computation: the log-likelihood at the start, the parameters after 3 steps.
    compile_s, after = {}, {}
    for name, (step, p) in steps.items():
        began = time.perf_counter()
        jax.block_until_ready(step(p))
        compile_s[name] = time.perf_counter() - began
        print(f"  {name}: compiled and run once in {compile_s[name]:.1f} s", flush=True)
        lls = []
        for _ in range(3):
            p, ll = step(p)
            lls.append(float(ll))
        after[name] = (lls, p)
    dyn_lls, dyn = after["dynamax"]
    for name in ("jaxem sequential", "jaxem parallel"):
        lls, p = after[name]
        apart_ll = max(abs(a - b) for a, b in zip(lls, dyn_lls)) / t
        apart_h = float(jnp.max(jnp.abs(p.emission - dyn.emissions.weights)))
        apart_r = float(jnp.max(jnp.abs(p.emission_covariance - dyn.emissions.cov)))
        print(f"  check {name} vs dynamax: log-lik apart {apart_ll:.1e} per step; after 3 steps H apart {apart_h:.1e}, R apart {apart_r:.1e}")
    best = {name: float("inf") for name in steps}
    for _ in range(repeats):
        for name, (step, p) in steps.items():
            best[name] = min(best[name], timed(step, p))
    ref = best["dynamax"]
    print(f"\nLGSSM EM iteration, T = {t}, L = {n_states}, D = {d}, {np.dtype(dtype).name}, min of {repeats}")
    print("| implementation | ms / iteration | vs dynamax | (compile + first s) |")
    print("|---|---:|---:|---:|")
    for name, seconds in best.items():
        ratio = ref / seconds
        word = "1" if name == "dynamax" else (f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower")
        print(f"| {name} | {1e3 * seconds:.1f} | {word} | {compile_s[name]:.1f} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--t", type=int, default=10000)
    parser.add_argument("--states", type=int, default=4)
    parser.add_argument("--obs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtypes", default="float64")
    args = parser.parse_args()
    import dynamax

    print(jax.devices()[0].platform, "jax", jax.__version__, "dynamax", dynamax.__version__, "load", os.getloadavg())
    for name in args.dtypes.split(","):
        case(args.t, args.states, args.obs, np.dtype(name), args.repeats)
    print("load", os.getloadavg())


if __name__ == "__main__":
    main()
