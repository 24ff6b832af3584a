"""Model specifications and model identity.

A model is a bundle of closures, which cannot be written to a file; what can be is
how to rebuild it. ``register_model(name)`` wraps a factory so that every model it
returns carries ``spec = ModelSpec(name, options)`` (all arguments, defaults
included), and ``build(spec)`` calls the factory again.

Identity. A model is a static argument of every jitted function, hashed and
compared as a tuple of its functions, so two models built separately compared
unequal and every call of a factory (a notebook cell run again, a loop over K)
compiled everything anew. Registered factories and ``memoized`` ones (the user
models ``mixture`` and ``latent_model``) therefore return the *same* model object
for the same arguments (compared with their types, so ``2`` and ``2.0`` differ):
equal options give equal models, and the compiled programs are reused.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, NamedTuple

import jax

_FACTORIES: dict[str, Callable] = {}
_BUILT: dict[Any, Any] = {}  # (factory, typed arguments) -> the model built from them


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

    Examples:
      >>> @jaxem.register_model("doc_poisson_mixture")
      ... def doc_poisson_mixture(n_components, *, label="counts"):
      ...     return jaxem.models.poisson_mixture(n_components)
      >>> model = doc_poisson_mixture(2)
      >>> model is doc_poisson_mixture(2)                         # equal options: the same model
      True
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
            options = tuple(sorted((k, hashable(v)) for k, v in bound.arguments.items()))

            def build_model():
                return factory(*args, **kwargs)._replace(spec=ModelSpec(name, options))

            return _built_once((name, typed(options)), build_model)

        _FACTORIES[name] = build_with_spec
        return build_with_spec

    return decorate


def typed(value):
    """``value`` with the type of every scalar in it, as a hashable key (so that
    ``2``, ``2.0`` and ``True`` are different keys, as they are different options)."""
    if isinstance(value, tuple):
        return tuple(typed(v) for v in value)
    return (type(value), value)


def _built_once(key, build_model: Callable[[], Any]):
    """The model for ``key``: built by ``build_model`` the first time, the same
    object afterwards. Arguments that cannot be hashed are not memoized."""
    try:
        hash(key)
    except TypeError:
        return build_model()
    if key not in _BUILT:
        _BUILT[key] = build_model()
    return _BUILT[key]


def memoized(factory: Callable) -> Callable:
    """Decorator: ``factory`` returns the same model object for equal arguments
    (functions compare by identity; unhashable arguments, e.g. a dict of
    constraints, are compared by their pytree structure and leaves)."""
    signature = inspect.signature(factory)

    @functools.wraps(factory)
    def build_once(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        key = (factory.__module__, factory.__qualname__, typed(tuple(sorted((k, key_of(v)) for k, v in bound.arguments.items()))))
        return _built_once(key, lambda: factory(*args, **kwargs))

    return build_once


def key_of(value):
    """A hashable stand-in for an argument: itself if hashable, else its pytree
    structure and (hashable) leaves."""
    try:
        hash(value)
        return value
    except TypeError:
        leaves, structure = jax.tree_util.tree_flatten(value, is_leaf=lambda leaf: leaf is None)
        return (structure, tuple(hashable(leaf) for leaf in leaves))


def build(spec: ModelSpec):
    """Rebuilds the model a ``ModelSpec`` describes."""
    if spec.factory not in _FACTORIES:
        raise ValueError(
            f"no model factory registered as {spec.factory!r} (known: {sorted(_FACTORIES)}); "
            "import the module that registers it first"
        )
    return _FACTORIES[spec.factory](**spec.as_dict())
