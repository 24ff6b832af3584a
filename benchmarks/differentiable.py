"""Differentiable fits: the implicit-function-theorem gradient against unrolled EM.

    PYTHONPATH=. python benchmarks/differentiable.py [--repeats 3]

The gradient of a held-out log-likelihood with respect to ``reg_covar`` and the
training rows' ``sample_weight`` of a full-covariance Gaussian mixture (K = 3) on
scikit-learn's wine data (standardized, 90 training rows, 13 features), float32
and float64, in this one process:

* ``jaxem.fit_differentiable``: EM forward in a while loop, the adjoint solved by
  VJPs of one EM update (``jax.value_and_grad``, jitted);
* ``jax.grad`` through ``lax.scan`` of ``em_step``, unrolled for as many steps as
  the forward loop took (its memory grows with the steps).

Reported: ms per value-and-gradient (compiled beforehand, minimum of repeats), the
compile time apart, the ratio, and how far the two gradients are apart.
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_wine  # noqa: E402

import jaxem  # noqa: E402

K = 3


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def case(dtype, repeats):
    x = load_wine().data
    x = (x - x.mean(0)) / x.std(0)
    order = np.random.default_rng(0).permutation(len(x))
    train, test = jnp.asarray(x[order[:90]], dtype), jnp.asarray(x[order[90:]], dtype)
    start = jaxem.init(jaxem.models.gaussian_mixture(K), 0, train)  # k-means++: a whole fit is left to take
    weights = jnp.ones(train.shape[0], dtype)
    reg = jnp.asarray(0.05, dtype)

    def held_out(model, params):
        return jaxem.log_likelihood(model, params, test) / test.shape[0]

    def implicit(reg, weights):
        model = jaxem.models.gaussian_mixture(K, reg_covar=reg)
        fitted = jaxem.fit_differentiable(model, train, start, sample_weight=weights, max_iter=5000)
        return held_out(model, fitted.params), fitted.n_iter

    n_iter = int(jax.jit(implicit)(reg, weights)[1])

    def unrolled(reg, weights):
        model = jaxem.models.gaussian_mixture(K, reg_covar=reg)
        prepared = model.prepare(train)

        def body(params, _):
            return jaxem.em_step(model, params, prepared, sample_weight=weights)[0], None

        return held_out(model, jax.lax.scan(body, start, None, length=n_iter)[0])

    rows = {}
    for name, fn in (("implicit (fit_differentiable)", lambda r, w: implicit(r, w)[0]), ("unrolled lax.scan", unrolled)):
        compiled = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(reg, weights))
        compile_s = time.perf_counter() - t0
        seconds = best_of(lambda: compiled(reg, weights), repeats)
        rows[name] = (seconds, compile_s, compiled(reg, weights)[1])
    (t_ift, c_ift, g_ift), (t_unr, c_unr, g_unr) = rows.values()
    diff = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30)) for a, b in zip(g_ift, g_unr))
    name = jnp.dtype(dtype).name
    print(f"{name}: forward EM steps {n_iter}")
    print(f"  implicit: {1e3 * t_ift:8.1f} ms per value_and_grad (compile {c_ift:.1f} s)")
    print(f"  unrolled: {1e3 * t_unr:8.1f} ms per value_and_grad (compile {c_unr:.1f} s)")
    print(f"  ratio unrolled / implicit: {t_unr / t_ift:.2f}x; gradients apart (max relative): {diff:.1e}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("Differentiable fit: GMM K=3 full, wine 90 x 13, d held-out log-lik / d (reg_covar, sample_weight)")
    for dtype in (jnp.float32, jnp.float64):
        case(dtype, args.repeats)


if __name__ == "__main__":
    main()
