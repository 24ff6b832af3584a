"""Holding some parameters fixed during fitting: ``jaxem.freeze``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src.base import FreezableMStep, Model
from jaxem._src.generic_m_step import expected_log_joint, resolve_mask, select
from jaxem._src.registry import key_of, memoized


class FrozenSpec(NamedTuple):
    """The spec of a frozen model: ``freeze(<model of spec>, mask)``, so that
    ``jaxem.save``/``load`` keep the freeze.

    Attributes:
      model: the spec of the model that was frozen (a ``ModelSpec``, or ``None``).
      mask: the mask in hashable form: field names, or ``(treedef, leaves)`` with
        array leaves as nested tuples (``mask_of`` turns it back).
    """

    model: Any
    mask: Any


def mask_of(spec: FrozenSpec) -> Any:
    """The mask a ``FrozenSpec`` was made from (array leaves as NumPy arrays)."""
    mask = spec.mask
    if isinstance(mask, tuple) and len(mask) == 2 and isinstance(mask[0], jax.tree_util.PyTreeDef):
        structure, leaves = mask
        return jax.tree_util.tree_unflatten(
            structure, [np.asarray(leaf, bool) if isinstance(leaf, tuple) else leaf for leaf in leaves]
        )
    return mask


@memoized
def freeze(model: Model, mask: Any) -> Model:
    """The same model, with the masked parameters held at their current values.

    Every M-step returns the masked entries bit-identical to its input, so
    ``fit``, ``em_step`` and everything else keep them at the values in
    ``init_params`` (pass ``init_params``; ``init`` still draws them at random).

    * Gradient M-steps (``jaxem.gradient_m_step``, ``jaxem.models.mixture``,
      ``jaxem.models.latent_model``) give the masked entries zero gradient, so the
      free ones are optimized with the frozen ones in place.
    * Closed-form M-steps compute the usual update and then restore the masked
      entries. That is the exact conditional maximizer when the other updates do
      not depend on the frozen ones (the mixing weights, or whole components, of an
      exponential-family mixture). Otherwise (e.g. Gaussian means frozen while
      covariances are fitted) the step is kept only if it does not lower Q, so EM
      stays monotone but may stop early; use a gradient M-step for such cases.
      Freeze the mixing weights as a whole (freezing some of them would break
      their sum to one).

    Args:
      model: a jaxem ``Model`` with an ``m_step``.
      mask: a pytree of booleans with the structure of the params (Python bools
        for whole leaves, or boolean arrays of a leaf's shape for single entries),
        or a field name / sequence of field names of a NamedTuple params.

    Returns:
      A ``Model`` whose ``m_step`` keeps the masked entries fixed (the same
      object for the same model and mask, so compiled programs are reused); its
      ``spec`` is a ``FrozenSpec``, so ``jaxem.save``/``load`` keep the freeze.

    Examples:
      >>> counts = np.random.default_rng(0).poisson([[2.0], [9.0]] * 50)   # [100, 1]
      >>> model = jaxem.models.poisson_mixture(2)
      >>> start = jaxem.models.poisson_mixture_params([0.5, 0.5], [[1.0], [5.0]])
      >>> frozen = jaxem.freeze(model, "weights")
      >>> result = jaxem.fit(frozen, counts, key=0, init_params=start)
      >>> np.asarray(result.params.weights).tolist()              # kept as given
      [0.5, 0.5]
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a jaxem Model, got {type(model).__name__}")
    if model.m_step is None:
        raise ValueError("this model has no m_step to freeze")
    spec = FrozenSpec(model.spec, key_of(mask))
    if isinstance(model.m_step, FreezableMStep):  # gradient M-steps: zero gradient for the mask
        return model._replace(m_step=model.m_step.with_frozen(mask), spec=spec)
    inner = model.m_step

    def m_step(data, posterior, params):
        resolved = resolve_mask(mask, params)
        new = select(resolved, params, inner(data, posterior, params))
        q_old = expected_log_joint(posterior, model.log_joint(params, data))
        q_new = expected_log_joint(posterior, model.log_joint(new, data))
        keep = ~(q_new >= q_old)  # also when q_new is NaN
        return jax.tree_util.tree_map(lambda old, updated: jnp.where(keep, old, updated), params, new)

    return model._replace(m_step=m_step, spec=spec)
