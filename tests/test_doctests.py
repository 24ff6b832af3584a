"""Every public function's docstring has a ``>>>`` example, and every example runs.

The public API is what ``jaxem``, ``jaxem.models``, ``jaxem.constraints``,
``jaxem.priors`` and ``jaxem.sklearn`` list in ``__all__``. Each docstring's examples run as one doctest
in a namespace holding only ``jax``, ``jnp``, ``np`` and ``jaxem``, so an example that
uses a name it does not define fails here, as it would when pasted.

Examples that compile a fit (most of them: a few seconds each on a CPU, minutes in
all) are marked slow; `.ci/run` runs them (`-m slow tests/test_doctests.py`). The
check that every function has an example, and the examples that fit nothing, run by
default.
"""

import doctest
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxem
import jaxem.constraints
import jaxem.models
import jaxem.priors
import jaxem.sklearn

MODULES = (jaxem, jaxem.models, jaxem.constraints, jaxem.priors, jaxem.sklearn)


def _public_objects():
    for module in MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{module.__name__}.{name}", obj


PUBLIC = dict(_public_objects())
FUNCTIONS = sorted(name for name, obj in PUBLIC.items() if inspect.isfunction(obj))
FINDER = doctest.DocTestFinder(recurse=False)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _doctest(name):
    globs = {"jax": jax, "jnp": jnp, "np": np, "jaxem": jaxem}
    tests = [t for t in FINDER.find(PUBLIC[name], name, globs=globs) if t.examples]
    return tests[0] if tests else None


@pytest.mark.parametrize("name", FUNCTIONS)
def test_public_function_has_an_example(name):
    assert _doctest(name) is not None, f"{name}'s docstring has no >>> example"


def _compiles_a_fit(test):
    return any(word in example.source for example in test.examples for word in ("fit", "em_step", "init(", "sample("))


RUNNABLE = sorted(n for n in PUBLIC if _doctest(n) is not None)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow if _compiles_a_fit(_doctest(n)) else ()) for n in RUNNABLE]
)
def test_example_runs(name):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(_doctest(name), out=print)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"
