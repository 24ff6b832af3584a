"""Shared helpers of the benchmarks: data, timing (min of repeats), memory, machine."""

from __future__ import annotations

import os
import platform
import time

import numpy as np


def machine() -> str:
    """One line describing the CPU, core count, memory and library versions."""
    import jax
    import sklearn

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB; Python {platform.python_version()}, "
        f"jax {jax.__version__}, numpy {np.__version__}, scikit-learn {sklearn.__version__}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def blobs(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """``[n, d]`` float64 draws from ``k`` random, overlapping anisotropic Gaussians."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 3.0
    mixing = rng.normal(size=(k, d, d)) * 0.4 + np.eye(d)[None]
    labels = rng.integers(0, k, size=n)
    noise = rng.normal(size=(n, d))
    return centres[labels] + np.einsum("nij,nj->ni", mixing[labels], noise)


def best_time(fn, repeats: int = 3) -> float:
    """Minimum wall time (s) of ``fn()`` over ``repeats`` calls (the machine is
    shared, so the minimum is the least disturbed run)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def xla_memory(compiled) -> dict:
    """Bytes XLA plans for a compiled program: arguments, outputs and temporaries."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return {}
    return {
        "argument": analysis.argument_size_in_bytes,
        "output": analysis.output_size_in_bytes,
        "temp": analysis.temp_size_in_bytes,
    }


def mib(n_bytes) -> str:
    return f"{n_bytes / 2**20:,.0f} MiB"


def blobs_lowmem(n: int, d: int, k: int, dtype="float32", seed: int = 0, block: int = 250_000) -> np.ndarray:
    """Like ``blobs`` (same kind of data) but generated block by block in ``dtype``,
    so that 10⁷ rows need no more memory than the result."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 3.0
    mixing = rng.normal(size=(k, d, d)) * 0.4 + np.eye(d)[None]
    out = np.empty((n, d), dtype)
    for start in range(0, n, block):
        m = min(block, n - start)
        labels = rng.integers(0, k, size=m)
        noise = rng.normal(size=(m, d))
        out[start : start + m] = centres[labels] + np.einsum("nij,nj->ni", mixing[labels], noise)
    return out
