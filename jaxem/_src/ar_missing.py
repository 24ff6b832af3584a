"""Autoregressive HMMs with missing values (NaN): the rule for missing lags.

Used by ``ar_hmm(..., missing="marginalize")``. A step of an AR-HMM of order
``p`` has the emission ``log N(x_t; A_k [x_t-1..x_t-p] + b_k, Σ_k)``, conditional on
its lags. jaxem's rule: **a step contributes an emission only when it and its
``p`` lags are fully observed; every other step is conditioned on, exactly as the
first ``p`` steps of a sequence are** (no emission, no statistics; the states
still run through it, so the transitions stay those of the whole chain).

Why not integrate a missing value out: a missing ``x_t`` is the response of step
``t`` and a regressor of the next ``p`` steps, so integrating it couples those
states with a Gaussian over ``x_t`` that depends on the state path; over a run of
gaps the exact posterior is a mixture with one term per path (a switching linear
dynamical system), which no closed-form E-step has. Dropping the affected
emissions keeps the likelihood a product of exact conditional densities of the
observed data (``log p(x_t | lags)`` for every kept step), the E-step one gradient
of the forward recursion and the M-step the complete-data weighted least
squares, so EM stays exact and monotone for that objective. What it gives up is
the information in partially observed steps and their neighbours. The step's
encoding is the complete-data ``lagged`` (``jaxem/_src/families/autoregressive.py``)
with every missing or incomplete step filled with the mean of the complete ones
and its flag cleared; the model stays on the exponential-family path (chunking,
streaming).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxem._src import validation
from jaxem._src.component import Component
from jaxem._src.families.autoregressive import lagged


def complete_steps(obs, mask):
    """``[B, T]`` True where a step is inside its sequence and has no NaN."""
    return mask & ~jnp.any(jnp.isnan(obs), axis=-1)


def emitting_steps(complete, order: int):
    """``[B, T]`` True where a step and its ``order`` lags are all complete."""
    t = complete.shape[1]
    kept = complete & (jnp.arange(t)[None, :] >= order)
    for j in range(1, order + 1):
        kept = kept & jnp.concatenate([jnp.zeros_like(complete[:, :j]), complete[:, : t - j]], axis=1)
    return kept


def missing_lags(component: Component, order: int) -> Component:
    """The AR ``component`` with NaN steps handled by the rule above."""

    def encode(obs, mask):
        x = validation.to_float(obs)
        complete = complete_steps(x, mask)
        encoded = lagged(jnp.where(jnp.isnan(x), jnp.zeros_like(x), x), complete, order)
        flag = emitting_steps(complete, order).astype(encoded.dtype)
        return jnp.concatenate([encoded[..., :-1], flag[..., None]], axis=-1)

    return component._replace(encode=encode)
