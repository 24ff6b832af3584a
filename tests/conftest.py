"""Test configuration: float64 available, strict dtype and rank promotion.

x64 is enabled so reference comparisons run in float64; float32 paths are tested
by passing float32 arrays explicitly (jaxem computes in the data's dtype). Strict
promotion (as in equinox's tests) turns silent dtype and broadcasting mistakes
into errors. Four CPU devices (set before JAX starts) let the sharding tests run
in-process; everything else runs on the first device, as usual.
"""

import jax

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


import pytest


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drops compiled programs after each test module. Every XLA executable keeps
    memory mappings alive; thousands of them in one process reach the kernel's
    vm.max_map_count (65530) and XLA then segfaults while compiling."""
    yield
    jax.clear_caches()

