"""HMMs with independent per-feature emissions (Poisson, Bernoulli) and missing
values (NaN): a missing entry drops out of the product over features.

Used by ``poisson_hmm(..., missing="marginalize")`` and
``bernoulli_hmm(..., missing="marginalize")``. With the observed mask ``m [B, T, D]``,
the emission of state ``k`` at step ``t`` is ``Σ_d m_td log f(x_td; θ_kd)`` (0 for a
step with nothing observed), and the M-step of either family is a weighted mean
over the observed entries only, ``θ_kd = Σ_t γ_tk m_td x_td / Σ_t γ_tk m_td``, with
the families' tiny pseudo-counts so that a feature never observed in a state keeps
a finite value. The data are prepared as in ``jaxem/_src/hmm_missing.py``.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src.base import Array, Model
from jaxem._src.chain import ChainPotentials
from jaxem._src.expfam import tiny_count
from jaxem._src.hmm import normalized_counts
from jaxem._src.hmm_missing import MissingChainData, imputed_init, nan_tolerant_check, prepare


def poisson_log_density(x: Array, rates: Array) -> Array:
    """Elementwise ``log Poisson(x; rates)``."""
    return x * jnp.log(rates) - rates - jax.scipy.special.gammaln(x + 1.0)


def poisson_maximize(counts: Array, totals: Array) -> Array:
    eps = tiny_count(counts.dtype)
    return (totals + eps) / (counts + eps)


def bernoulli_log_density(x: Array, probs: Array) -> Array:
    """Elementwise ``log Bernoulli(x; probs)``, probs clipped to ``[eps, 1 - eps]``."""
    machine_eps = float(jnp.finfo(probs.dtype).eps)
    probs = jnp.clip(probs, machine_eps, 1.0 - machine_eps)
    return x * jnp.log(probs) + (1.0 - x) * jnp.log1p(-probs)


def bernoulli_maximize(counts: Array, totals: Array) -> Array:
    eps = tiny_count(counts.dtype)
    machine_eps = float(jnp.finfo(counts.dtype).eps)
    return jnp.clip((totals + eps) / (counts + 2.0 * eps), machine_eps, 1.0 - machine_eps)


def marginalizing_elementwise_hmm(
    model: Model,
    field: str,
    log_density: Callable[[Array, Array], Array],
    maximize: Callable[[Array, Array], Array],
    transition_mask: Optional[Array],
) -> Model:
    """The complete-data HMM ``model`` (Poisson or Bernoulli) on data with NaN.

    Args:
      model: the complete-data model (gives ``init``, the params check,
        ``latent``, ``sample``, ``n_parameters``).
      field: the emission field of the params (``"rates"``, ``"probs"``), ``[K, D]``.
      log_density: ``(x [..., D], theta [..., D]) -> [..., D]`` elementwise log density.
      maximize: ``(counts [K, D], totals [K, D]) -> theta [K, D]``, from the
        observed-entry expected counts and expected sums.
      transition_mask: the model's allowed transitions, or ``None``.
    """
    mask = None if transition_mask is None else jnp.asarray(np.asarray(transition_mask))

    def log_joint(params, data: MissingChainData) -> ChainPotentials:
        dtype = data.x.dtype
        theta = getattr(params, field).astype(dtype)
        per_feature = log_density(data.x[:, :, None, :], theta[None, None, :, :])  # [B, T, K, D]
        return ChainPotentials(
            log_initial=jnp.log(params.initial_probs.astype(dtype)),
            log_transition=jnp.log(params.transition_matrix.astype(dtype)),
            log_emission=jnp.einsum("btd,btkd->btk", data.mask, per_feature),
        )

    def m_step(data: MissingChainData, posterior: ChainPotentials, params):
        marginals = posterior.log_emission  # [B, T, K], 0 on padding
        counts = jnp.einsum("btk,btd->kd", marginals, data.mask)
        totals = jnp.einsum("btk,btd->kd", marginals, data.mask * data.x)
        dtype = params.initial_probs.dtype
        return params._replace(
            **{field: maximize(counts, totals).astype(getattr(params, field).dtype)},
            initial_probs=normalized_counts(posterior.log_initial, mask=params.initial_probs > 0).astype(dtype),
            transition_matrix=normalized_counts(posterior.log_transition, mask=mask).astype(dtype),
        )

    return model._replace(
        init=imputed_init(model), log_joint=log_joint, m_step=m_step, prepare=prepare, prepare_for=None,
        check=nan_tolerant_check(model),
    )
