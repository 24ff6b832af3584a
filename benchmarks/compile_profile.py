"""What the demo's first fit compiles: each program's tracing, lowering and XLA
compile time, from JAX's compile log, in a fresh process with no persistent cache.

    PYTHONPATH=. python benchmarks/compile_profile.py [--restarts 16] [--k 2] [--no-progress]

The fit is the README demo's first (``python -m jaxem demo``): Old Faithful,
full covariance, K = 2, 16 restarts, ``max_iter=200``, ``tol=1e-6``, with progress
on (the demo's default), followed by its ``jaxem.bic``. Prints one row per
program and the totals, and the fit's wall and CPU time (including compilation;
on a loaded machine the process's CPU seconds are the steadier figure).
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import re
import time

os.environ.setdefault("JAXEM_COMPILATION_CACHE", "0")

PATTERNS = (
    ("trace", re.compile(r"Finished tracing (\S+) for jit in ([0-9.e-]+) sec")),
    ("lower", re.compile(r"Finished jaxpr to MLIR module conversion jit\((\S+)\) in ([0-9.e-]+) sec")),
    ("compile", re.compile(r"Finished XLA compilation of jit\((\S+)\) in ([0-9.e-]+) sec")),
)


class _Collect(logging.Handler):
    """Per program: wall seconds of each stage from the log line, and the process's
    CPU seconds since the previous log line (the stage's CPU time: little else runs
    while compiling), steadier than wall time on a loaded machine."""

    def __init__(self):
        super().__init__()
        self.rows = collections.OrderedDict()
        self.cpu = time.process_time()

    def emit(self, record):
        message = record.getMessage()
        now = time.process_time()
        for stage, pattern in PATTERNS:
            match = pattern.search(message)
            if match:
                row = self.rows.setdefault(match.group(1), collections.Counter())
                row[stage] += float(match.group(2))
                row["cpu"] += now - self.cpu
                row["programs"] += stage == "compile"
        self.cpu = now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=16)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args()

    import jax
    import numpy as np

    import jaxem

    jax.config.update("jax_log_compiles", True)
    collect = _Collect()  # after the imports: their CPU time is not counted
    for name in ("jax._src.dispatch", "jax._src.interpreters.pxla", "jax._src.compiler", "jax"):
        logger = logging.getLogger(name)
        logger.addHandler(collect)
        logger.propagate = False
    x, _ = jaxem.load_dataset("faithful")
    x = np.asarray(x, jax.dtypes.canonicalize_dtype(np.float64))
    start, cpu_start = time.perf_counter(), time.process_time()
    model = jaxem.models.gaussian_mixture(args.k, covariance_type="full")
    result = jaxem.fit(model, x, key=jax.random.key(0), n_restarts=args.restarts, max_iter=200, tol=1e-6,
                       progress=(lambda info: None) if args.progress else False)
    jax.block_until_ready(result)
    fit_seconds, fit_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    bic = float(jaxem.bic(model, result.params, x))
    total_seconds, total_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"{'program':32s} {'n':>3s} {'trace s':>8s} {'lower s':>8s} {'XLA s':>8s} {'CPU s':>8s}")
    totals = collections.Counter()
    for name, row in collect.rows.items():
        totals.update(row)
        print(f"{name[:32]:32s} {row['programs']:3d} {row['trace']:8.3f} {row['lower']:8.3f} {row['compile']:8.3f} {row['cpu']:8.3f}")
    print(f"{'total':32s} {totals['programs']:3d} {totals['trace']:8.3f} {totals['lower']:8.3f} {totals['compile']:8.3f} "
          f"{totals['cpu']:8.3f}")
    print(f"fit {fit_seconds:.2f} s ({fit_cpu:.2f} s CPU), fit + bic {total_seconds:.2f} s ({total_cpu:.2f} s CPU); "
          f"BIC {bic:.2f}; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
