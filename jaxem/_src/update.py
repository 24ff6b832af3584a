"""One EM update: the E-step (autodiff of the log-partition) and the M-step.

``em_map(model, data)`` is the EM map ``F: params -> (new_params, objective)``
that every fitting algorithm (``algorithms.py``) iterates; the objective is the
log-likelihood, plus ``model.log_prior`` for a model with a prior (MAP-EM). For an ``AdditiveMStep``
the E-step returns the log-likelihood and the additive expected statistics (in row
chunks when the M-step says so, ``chunking.py``) and the M-step maximizes from
them; for a plain ``m_step`` it is the posterior and the M-step. Pure and
unchecked; ``data`` is prepared.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxem._src import chunking
from jaxem._src.algorithms import params_changed
from jaxem._src.base import Array, Data, Model
from jaxem._src.generic_m_step import expected_log_joint
from jaxem._src.inference import e_step


class MStepInfo(NamedTuple):
    """What one M-step did to the Q-function (see ``em_step_with_info``); for a
    model with a prior, Q + log prior (what its MAP M-step maximizes).

    Attributes:
      q_before: Q(θ_t; θ_t), the expected complete-data log-likelihood at the old
        params under their own posterior.
      q_after: Q(θ_{t+1}; θ_t).
      accepted: ``False`` when the M-step kept θ_t unchanged (for the gradient
        M-step: no inner iterate had a higher Q, so θ_t was kept).
    """

    q_before: Array
    q_after: Array
    accepted: Array


def check_has_m_step(model: Model) -> None:
    if model.m_step is None:
        raise ValueError(
            "this model has no m_step; give it a closed-form m_step or a generic "
            "(gradient-based) one (jaxem.gradient_m_step)"
        )


def em_update(model: Model, params, data: Data, sample_weight: Optional[Array] = None):
    """``(new_params, log_likelihood of params)``: one EM step."""
    additive = model.additive
    if additive is not None:
        log_likelihood, statistics = chunking.log_likelihood_and_statistics(model, params, data, sample_weight)
        return additive.maximize(statistics, data, params), log_likelihood
    log_likelihood, posterior = e_step(model, params, data, sample_weight)
    return model.m_step(data, posterior, params), log_likelihood


def log_prior(model: Model, params) -> Array:
    """``model.log_prior(params)``, or 0 for a model without a prior (a scalar)."""
    if model.log_prior is None:
        return jnp.zeros((), jax.tree_util.tree_leaves(params)[0].dtype)
    return model.log_prior(params)


def em_map(model: Model, data: Data, sample_weight: Optional[Array] = None):
    """The EM map ``params -> (new_params, objective of params)`` on ``data``: the
    objective is the log-likelihood plus ``model.log_prior`` (if any), which EM
    never lowers."""

    def update(params):
        new_params, log_likelihood = em_update(model, params, data, sample_weight)
        if model.log_prior is None:
            return new_params, log_likelihood
        return new_params, log_likelihood + model.log_prior(params).astype(log_likelihood.dtype)

    return update


def total_log_likelihood(model: Model, params, data: Data, sample_weight: Optional[Array] = None) -> Array:
    """``Σ_n w_n log p(x_n; θ)``, over row chunks when the M-step is chunked."""
    additive = model.additive
    if additive is not None and additive.chunk_size is not None:
        return chunking.log_likelihood_and_statistics(model, params, data, sample_weight)[0]
    return e_step(model, params, data, sample_weight)[0]


def em_update_with_info(model: Model, params, data: Data, sample_weight: Optional[Array] = None):
    """``(new_params, log_likelihood, MStepInfo)``: ``em_update`` in one pass over
    the rows, with Q before and after the M-step."""
    log_likelihood, posterior = e_step(model, params, data, sample_weight)
    new_params = model.m_step(data, posterior, params)
    q_before = expected_log_joint(posterior, model.log_joint(params, data))
    q_after = expected_log_joint(posterior, model.log_joint(new_params, data))
    if model.log_prior is not None:  # MAP-EM maximizes Q + log prior
        q_before = q_before + model.log_prior(params).astype(q_before.dtype)
        q_after = q_after + model.log_prior(new_params).astype(q_after.dtype)
    return new_params, log_likelihood, MStepInfo(q_before, q_after, params_changed(new_params, params))
