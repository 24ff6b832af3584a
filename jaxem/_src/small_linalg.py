"""Cholesky factors and triangular solves of many small matrices, in plain ``jnp``.

For the per-step ``L × L`` / ``D × D`` systems of the state-space models, batched
over time: a loop over the (static, small) matrix size of vectorized operations,
no LAPACK custom call. jaxlib's CPU LAPACK kernels split a large batch over a
thread pool and wait for it; two such calls running at once (independent
operations of one program) were seen to deadlock on a 2-core machine. These
functions have no such call, and autodiff goes through them as through any
``jnp`` code. Cost: O(n) operations per function, each over the whole batch.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxem._src.base import Array


def cholesky(a: Array) -> Array:
    """``[..., n, n]`` the lower Cholesky factor of symmetric positive definite ``a``
    (its lower triangle is read), column by column.

    Examples:
      >>> a = jnp.array([[4.0, 2.0], [2.0, 5.0]])
      >>> bool(jnp.allclose(cholesky(a), jnp.linalg.cholesky(a)))
      True
    """
    n = a.shape[-1]
    rows = jnp.arange(n)
    factor = jnp.zeros_like(a)
    for j in range(n):
        column = a[..., :, j] - jnp.einsum("...ik,...k->...i", factor, factor[..., j, :])
        pivot = jnp.sqrt(column[..., j])
        column = jnp.where(rows >= j, column / pivot[..., None], jnp.zeros_like(column))
        factor = factor.at[..., :, j].set(column)
    return factor


def solve_lower(factor: Array, b: Array) -> Array:
    """``[..., n, r]`` ``factor⁻¹ b`` for lower-triangular ``factor [..., n, n]``
    (forward substitution).

    Examples:
      >>> l = jnp.array([[2.0, 0.0], [1.0, 3.0]])
      >>> solve_lower(l, jnp.array([[2.0], [7.0]]))[:, 0].tolist()
      [1.0, 2.0]
    """
    x = jnp.zeros_like(b)
    for i in range(factor.shape[-1]):
        row = b[..., i, :] - jnp.einsum("...k,...kr->...r", factor[..., i, :], x)
        x = x.at[..., i, :].set(row / factor[..., i, i][..., None])
    return x


def cho_solve(factor: Array, b: Array) -> Array:
    """``[..., n, r]`` ``(factor factorᵀ)⁻¹ b``: forward then backward substitution.

    Examples:
      >>> a = jnp.array([[4.0, 2.0], [2.0, 5.0]])
      >>> bool(jnp.allclose(cho_solve(cholesky(a), jnp.eye(2)) @ a, jnp.eye(2), atol=1e-6))
      True
    """
    y = solve_lower(factor, b)
    x = jnp.zeros_like(y)
    for i in reversed(range(factor.shape[-1])):
        row = y[..., i, :] - jnp.einsum("...k,...kr->...r", factor[..., :, i], x)
        x = x.at[..., i, :].set(row / factor[..., i, i][..., None])
    return x
