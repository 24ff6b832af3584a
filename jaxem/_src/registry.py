"""Model specifications: a model factory's registered name plus the options it got.

A model is a bundle of closures, which cannot be written to a file; what can be is
how to rebuild it. ``register_model(name)`` wraps a factory so that every model it
returns carries ``spec = ModelSpec(name, options)`` (all arguments, defaults
included), and ``build(spec)`` calls the factory again.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable, NamedTuple

_FACTORIES: dict[str, Callable] = {}


class ModelSpec(NamedTuple):
    """How to rebuild a model: ``factory(**dict(options))``.

    Attributes:
      factory: the registered name of the factory (e.g. ``"gaussian_mixture"``).
      options: ``((argument name, value), ...)`` sorted by name, with lists turned
        into tuples so that the spec (hence the model) stays hashable.
    """

    factory: str
    options: tuple

    def as_dict(self) -> dict:
        return dict(self.options)


def hashable(value):
    """Arrays, lists and tuples (recursively) as tuples, so that a value is hashable
    (and can be written as JSON); NumPy/JAX scalars as Python numbers."""
    if hasattr(value, "shape") and hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(hashable(v) for v in value)
    return value


def register_model(name: str):
    """Decorator registering a model factory under ``name`` for ``jaxem.save``/``load``.

    The factory's arguments must be plain values (numbers, strings, booleans,
    ``None``, and lists/tuples of them), so that they can be written as JSON.

    Example:
      >>> @jaxem.register_model("my_mixture")
      ... def my_mixture(n_components, *, scale=1.0):
      ...     return jaxem.Model(...)
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")

    def decorate(factory: Callable) -> Callable:
        existing = getattr(_FACTORIES.get(name), "__wrapped__", factory)
        if (existing.__module__, existing.__qualname__) != (factory.__module__, factory.__qualname__):
            raise ValueError(f"another model factory is already registered as {name!r}")
        signature = inspect.signature(factory)

        @functools.wraps(factory)
        def build_with_spec(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            model = factory(*args, **kwargs)
            options = tuple(sorted((k, hashable(v)) for k, v in bound.arguments.items()))
            return model._replace(spec=ModelSpec(name, options))

        _FACTORIES[name] = build_with_spec
        return build_with_spec

    return decorate


def build(spec: ModelSpec):
    """Rebuilds the model a ``ModelSpec`` describes."""
    if spec.factory not in _FACTORIES:
        raise ValueError(
            f"no model factory registered as {spec.factory!r} (known: {sorted(_FACTORIES)}); "
            "import the module that registers it first"
        )
    return _FACTORIES[spec.factory](**spec.as_dict())
