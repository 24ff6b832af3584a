"""What one exponential family gives the generic mixture and HMM builders.

A ``Component`` bundles a family of densities (its ``ExpFamily``: prepare,
coefficients, maximizer) with what a model needs besides: the type of its
prepared features, the params fields it owns and their zeros, the checks of data
values and of params shapes, the draw and the parameter count.
``jaxem.component_mixture`` and ``jaxem.component_hmm`` consume it, so a new
family is one file (``jaxem/_src/families/``) plus the registration of its
factories.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax.numpy as jnp

from jaxem._src import validation
from jaxem._src.base import Array
from jaxem._src.expfam import ExpFamily


class Role(NamedTuple):
    """How error messages name the data and the latent values of a model.

    Attributes:
      data: the name of the data argument (``"x"`` for a mixture, ``"obs"`` for a chain).
      latent: the plural of the latent values (``"components"``, ``"states"``); the
        model's option is ``n_<latent>``.
    """

    data: str
    latent: str


MIXTURE_ROLE = Role("x", "components")
CHAIN_ROLE = Role("obs", "states")


def to_float_zero_padded(obs: Array, mask: Array) -> Array:
    """HMM encoding: ``obs [B, T, D]`` as floats, padded steps (``mask [B, T]``
    False) set to 0."""
    x = validation.to_float(obs)
    return jnp.where(mask[..., None], x, jnp.zeros_like(x))


def rows_of(data, role: Role) -> tuple[Array, int, int]:
    """Raw mixture data checked as ``[N, D]`` rows: ``(x, N, D)``."""
    x = validation.as_rows(data, role.data)
    return x, x.shape[0], x.shape[1]


def no_check(*args) -> None:
    del args


def x_of(features) -> Array:
    """The ``x`` field of prepared features (the family's data as floats)."""
    return features.x


def width_of_x(features) -> int:
    """``D``, the last axis of the ``x`` field of prepared features."""
    return features.x.shape[-1]


class Component(NamedTuple):
    """One family of component (mixture) or emission (HMM) densities.

    Shapes: ``K`` components or states, ``D`` features (``n_features``), ``n`` draws.

    Attributes:
      family: the ``ExpFamily`` (prepare, coefficients, maximize, per_row). Its
        ``prepare`` returns ``features_type`` and refuses another type.
      features_type: the NamedTuple type of the family's prepared features.
      zeros: ``(k, d, dtype) -> dict`` of the component fields of params, zeros of
        the right shapes (a template for the maximizer).
      n_features: ``features -> D``, the number of features of prepared data.
      check_data: ``(data, role) -> (checked, N, D)`` raw mixture data checked
        (shapes always, values when concrete).
      check_values: ``(values, name) -> None`` raises on bad data values (e.g.
        negative counts); gets concrete values only.
      check_params: ``(params, k, d, role) -> None`` raises on bad component
        fields (``d`` is ``None`` when unknown).
      draw: ``(key, params, labels [n]) -> x [n, ...]``, one draw per label.
      n_parameters: ``params -> int``, free parameters of the K components.
      seed_points: ``features -> [N, P]``, the points a mixture's k-means++ seeds on.
      check_evaluable: ``(params, checked_data) -> None``, raises when params cannot
        be evaluated on the data (run by the mixture on concrete data).
      event_ndim: HMM observations: 1 for vectors ``[T, D]``, 0 for symbols ``[T]``.
      encode: ``(obs [B, T, ...], mask [B, T]) -> x``, raw HMM observations as
        the family's input, finite on padded steps.
      init_states: ``(key, features, lengths, template) -> params``, the HMM's
        starting emissions, or ``None`` for k-means on the pooled steps.
    """

    family: ExpFamily
    features_type: type
    zeros: Callable[[int, int, Any], dict]
    n_features: Callable[[Any], int] = width_of_x
    check_data: Callable = rows_of
    check_values: Callable = no_check
    check_params: Callable = no_check
    draw: Optional[Callable] = None
    n_parameters: Optional[Callable[[Any], int]] = None
    seed_points: Callable = x_of
    check_evaluable: Callable = no_check
    event_ndim: int = 1
    encode: Callable = to_float_zero_padded
    init_states: Optional[Callable] = None


def is_prepared(data, features_type: type, name: str = "x") -> bool:
    """Whether ``data`` is prepared features of ``features_type``.

    ``False`` for raw data (an array, a list, a plain tuple such as ``(x, y)``);
    ``ValueError`` naming ``name`` for another NamedTuple, i.e. data prepared by
    another family (e.g. a Bernoulli mixture's features given to a Poisson mixture).
    """
    if isinstance(data, features_type):
        return True
    if isinstance(data, tuple) and type(data) is not tuple:
        raise ValueError(
            f"{name} is {type(data).__name__}, prepared for another model; pass the raw data "
            f"or {features_type.__name__} prepared by this model"
        )
    return False


def check_params_type(params, params_type: type) -> None:
    """``TypeError`` unless ``params`` is a ``params_type``."""
    if not isinstance(params, params_type):
        raise TypeError(f"params must be {params_type.__name__}, got {type(params).__name__}")


def check_field_shape(params, field: str, k: int, d: Optional[int], role: Role) -> None:
    """``ValueError`` unless ``params.<field>`` is ``[K, D]`` (any D when ``d`` is None)."""
    shape = tuple(jnp.shape(getattr(params, field)))
    if len(shape) == 2 and shape[0] == k and (d is None or shape[1] == d):
        return
    expected = (k, "D" if d is None else d)
    if role == CHAIN_ROLE:
        raise ValueError(f"params.{field} must have shape {expected} for n_states={k} and obs, got {shape}")
    raise ValueError(
        f"params.{field} has shape {shape}, expected {expected} for n_{role.latent}={k}"
        + ("" if d is None else f" and {role.data} with {d} features")
    )


def matrix_field(field: str, **value_checks) -> dict:
    """``zeros`` and ``check_params`` of a ``Component`` whose params are one
    ``[K, D]`` field named ``field`` (``Component(**matrix_field("rates"), ...)``).

    ``value_checks`` (``simplex``, ``positive``, ``unit``: see
    ``validation.check_param_values``) state the field's constraint; concrete
    values are always checked finite.
    """

    def zeros(k: int, d: int, dtype) -> dict:
        return {field: jnp.zeros((k, d), dtype)}

    def check_params(params, k: int, d: Optional[int], role: Role) -> None:
        check_field_shape(params, field, k, d, role)
        validation.check_param_values(getattr(params, field), field, **value_checks)

    return {"zeros": zeros, "check_params": check_params}
