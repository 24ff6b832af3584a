"""Constraints for the gradient M-step: bijections to unconstrained space.

Declare one per leaf of your params (``None`` for unconstrained) in a pytree of the
same structure, and pass it as ``constraints=`` to ``jaxem.gradient_m_step``,
``jaxem.models.mixture`` or ``jaxem.models.latent_model``.
"""

from jaxem._src.constraints import (
    Constraint,
    cholesky,
    constrain_tree,
    identity,
    n_free_parameters,
    positive,
    simplex,
    unconstrain_tree,
    unit_interval,
)

__all__ = [
    "Constraint",
    "cholesky",
    "constrain_tree",
    "identity",
    "n_free_parameters",
    "positive",
    "simplex",
    "unconstrain_tree",
    "unit_interval",
]
