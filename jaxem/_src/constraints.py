"""Parameter constraints as bijections to unconstrained space.

A gradient M-step optimizes unconstrained arrays ``u`` and reads the parameters as
``constrain(u)``; it starts from ``unconstrain(params)``. A user declares one
``Constraint`` per leaf of the params, in a pytree of the same structure (``None``
means unconstrained):

    >>> from jaxem import constraints
    >>> declared = StudentTParams(loc=None, scale=constraints.positive(), df=constraints.positive(1.0))

Every constraint acts on the trailing axes of its leaf (``simplex`` on the last
axis, ``cholesky`` on the last two), so the same declaration serves one
component's params and the ``[K, ...]`` stack of all components.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxem._src.base import Array


class Constraint(NamedTuple):
    """A bijection between a constrained set and unconstrained arrays.

    Attributes:
      constrain: ``u -> value``, from unconstrained ``u`` (same shape).
      unconstrain: ``value -> u``, its inverse.
      n_free: ``shape -> int``, the number of free parameters of a value of that
        shape (for ``bic``/``aic``).
    """

    constrain: Callable[[Array], Array]
    unconstrain: Callable[[Array], Array]
    n_free: Callable[[tuple], int]


def _size(shape) -> int:
    return int(math.prod(shape))


def identity() -> Constraint:
    """No constraint: the real line.

    Examples:
      >>> from jaxem.constraints import identity
      >>> float(identity().constrain(jnp.array(-3.0)))
      -3.0
    """
    return Constraint(lambda u: u, lambda x: x, _size)


def _inverse_softplus(y: Array) -> Array:
    # softplus⁻¹(y) = y + log(1 - exp(-y)), stable for small and large y.
    y = jnp.maximum(y, jnp.finfo(y.dtype).tiny)
    return y + jnp.log(-jnp.expm1(-y))


def positive(floor: float = 0.0) -> Constraint:
    """Values ``> floor`` via ``floor + softplus(u)`` (scales, rates, degrees of freedom).

    Args:
      floor: a lower bound kept off by the bijection (e.g. a variance floor).

    Examples:
      >>> from jaxem.constraints import positive
      >>> c = positive()
      >>> np.asarray(c.constrain(c.unconstrain(jnp.array([0.5, 3.0])))).round(4).tolist()
      [0.5, 3.0]
    """
    floor = float(floor)

    def constrain(u):
        return floor + jax.nn.softplus(u)

    def unconstrain(x):
        return _inverse_softplus(x - floor)

    return Constraint(constrain, unconstrain, _size)


def unit_interval() -> Constraint:
    """Values in ``(0, 1)`` via the logistic sigmoid (independent probabilities).

    Examples:
      >>> from jaxem.constraints import unit_interval
      >>> float(unit_interval().constrain(jnp.array(0.0)))
      0.5
    """

    def unconstrain(p):
        tiny = jnp.finfo(p.dtype).tiny
        return jnp.log(jnp.maximum(p, tiny)) - jnp.log(jnp.maximum(1.0 - p, tiny))

    return Constraint(jax.nn.sigmoid, unconstrain, _size)


def simplex() -> Constraint:
    """Probability vectors along the last axis via ``softmax`` (inverse: ``log``).

    The unconstrained vector has one redundant degree of freedom (a constant shift),
    which gradient methods handle without harm; ``n_free`` counts ``S - 1`` per vector.

    Examples:
      >>> from jaxem.constraints import simplex
      >>> w = simplex().constrain(jnp.array([0.0, 1.0, 2.0]))
      >>> round(float(w.sum()), 6), bool(jnp.all(w > 0))
      (1.0, True)
    """

    def unconstrain(p):
        return jnp.log(jnp.maximum(p, jnp.finfo(p.dtype).tiny))

    def n_free(shape):
        return _size(shape) - _size(shape[:-1])

    return Constraint(lambda u: jax.nn.softmax(u, axis=-1), unconstrain, n_free)


def cholesky(*, lower: bool = True, floor: float = 0.0) -> Constraint:
    """Triangular factors with a positive diagonal, ``[..., D, D]``.

    ``constrain`` keeps the strict triangle of ``u`` and maps its diagonal through
    ``floor + softplus``; the other triangle is ignored (zero in the output). A
    covariance ``L Lᵀ`` (or a precision ``U Uᵀ``) built from it is positive
    definite.

    Args:
      lower: lower (``True``) or upper triangular factors.
      floor: a lower bound on the diagonal entries.

    Examples:
      >>> from jaxem.constraints import cholesky
      >>> c = cholesky()
      >>> l = c.constrain(jnp.array([[0.0, 9.0], [0.5, -1.0]]))  # the upper triangle is ignored
      >>> float(l[0, 1]), bool(jnp.all(jnp.diag(l) > 0))
      (0.0, True)
    """
    diag = positive(floor)

    def triangle(a):
        return jnp.tril(a, -1) if lower else jnp.triu(a, 1)

    def constrain(u):
        d = jnp.diagonal(u, axis1=-2, axis2=-1)
        return triangle(u) + _diag_embed(diag.constrain(d))

    def unconstrain(factor):
        d = jnp.diagonal(factor, axis1=-2, axis2=-1)
        return triangle(factor) + _diag_embed(diag.unconstrain(d))

    def n_free(shape):
        d = shape[-1]
        return _size(shape[:-2]) * d * (d + 1) // 2

    return Constraint(constrain, unconstrain, n_free)


def _diag_embed(d: Array) -> Array:
    eye = jnp.eye(d.shape[-1], dtype=d.dtype)
    return d[..., :, None] * eye.reshape((1,) * (d.ndim - 1) + eye.shape)


# ----------------------------------------------------------------------------------
# Pytrees of constraints.


def _is_constraint_leaf(c) -> bool:
    return c is None or isinstance(c, Constraint)


def _map(fn, declared, params):
    if declared is None:
        declared = jax.tree_util.tree_map(lambda _: None, params)
    return jax.tree_util.tree_map(
        lambda c, leaf: fn(identity() if c is None else c, leaf), declared, params, is_leaf=_is_constraint_leaf
    )


def constrain_tree(declared: Any, unconstrained: Any) -> Any:
    """Applies each leaf's ``constrain`` (``declared`` may be ``None``: identity).

    Examples:
      >>> from jaxem import constraints
      >>> declared = {"mu": None, "s": constraints.positive()}
      >>> u = constraints.unconstrain_tree(declared, {"mu": jnp.array(-1.0), "s": jnp.array(2.0)})
      >>> p = constraints.constrain_tree(declared, u)
      >>> float(p["mu"]), round(float(p["s"]), 4)
      (-1.0, 2.0)
    """
    return _map(lambda c, u: c.constrain(u), declared, unconstrained)


def unconstrain_tree(declared: Any, params: Any) -> Any:
    """Applies each leaf's ``unconstrain`` (``declared`` may be ``None``: identity).

    Examples:
      >>> from jaxem import constraints
      >>> declared = {"p": constraints.unit_interval()}
      >>> u = constraints.unconstrain_tree(declared, {"p": jnp.array(0.5)})
      >>> float(u["p"])                                           # logit(0.5)
      0.0
    """
    return _map(lambda c, x: c.unconstrain(x), declared, params)


def n_free_parameters(declared: Any, params: Any) -> int:
    """Total number of free parameters of ``params`` under ``declared``.

    Examples:
      >>> from jaxem import constraints
      >>> declared = {"w": constraints.simplex(), "mu": None}
      >>> constraints.n_free_parameters(declared, {"w": jnp.ones(3) / 3, "mu": jnp.zeros(3)})
      5
    """
    counts = _map(lambda c, x: c.n_free(tuple(jnp.shape(x))), declared, params)
    return int(sum(jax.tree_util.tree_leaves(counts)))
