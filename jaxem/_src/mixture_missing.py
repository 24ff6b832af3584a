"""Poisson, Bernoulli and categorical mixtures with missing values (NaN), integrated out exactly.

Used by ``poisson_mixture``, ``bernoulli_mixture`` and ``categorical_mixture`` with
``missing="marginalize"``. Entries are missing at random. The data are prepared
as for the Gaussian mixture (``jaxem/_src/missing.py``: ``x [N, D]`` with 0 where
missing, ``mask [N, D]``); the log-potentials are ``log w_k + log p(x_O | k)``, so
the E-step is still the gradient of their ``logsumexp``, and a row with nothing
observed contributes ``log p = 0`` (its responsibilities are the weights), as in
the Gaussian mixture.

- Poisson, Bernoulli (independent features): a missing entry drops out of the
  product, ``log p(x_O | k) = Σ_d m_d log f(x_d; θ_kd)``, and the M-step is the
  weighted mean over the observed entries, ``θ_kd = Σ_n r_nk m_nd x_nd / Σ_n r_nk m_nd``
  (the elementwise algebra of the HMMs, ``jaxem/_src/hmm_missing_elementwise.py``).
- categorical: the multinomial of the observed cells (``jaxem/_src/count_cells.py``;
  a missing one-hot symbol is a row with nothing observed).

No-NaN data give exactly the complete-data model's log-likelihood and M-step.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from jaxem._src import count_cells
from jaxem._src import missing as missing_lib
from jaxem._src.base import Array, Model, mixture_latent
from jaxem._src.expfam import mixture_weights


def nan_tolerant_check(model: Model):
    """``check`` of the complete-data mixture ``model`` accepting NaN (not inf):
    the observed entries are checked as the complete data are."""

    def check(data, params=None):
        if isinstance(data, missing_lib.MissingData):
            model.check(data.x, params)
            return
        missing_lib.check_data(data)
        model.check(jnp.nan_to_num(missing_lib.prepare(data).x), params)

    return check


def marginalizing_mixture(model: Model, log_densities: Callable, emission_m_step: Callable) -> Model:
    """The complete-data mixture ``model`` on data with NaN entries.

    Args:
      model: the complete-data mixture (gives ``init``, ``check``, ``sample``,
        ``n_parameters``).
      log_densities: ``(params, data: MissingData) -> [N, K]`` log p(x_O | k).
      emission_m_step: ``(data, posterior [N, K], params) -> params`` with new
        component fields (the weights are set here).
    """

    def init(key, data: missing_lib.MissingData):
        return model.init(key, model.prepare(missing_lib.fill_with_column_means(data)))

    def log_joint(params, data: missing_lib.MissingData) -> Array:
        return log_densities(params, data) + jnp.log(params.weights.astype(data.x.dtype))[None, :]

    def m_step(data: missing_lib.MissingData, posterior: Array, params):
        new = emission_m_step(data, posterior, params)
        return new._replace(weights=mixture_weights(jnp.sum(posterior, axis=0), params.weights).astype(params.weights.dtype))

    return Model(
        init=init, log_joint=log_joint, latent=mixture_latent(), m_step=m_step, prepare=missing_lib.prepare,
        check=nan_tolerant_check(model), sample=model.sample, n_parameters=model.n_parameters,
    )


def elementwise(model: Model, field: str, log_density: Callable, maximize: Callable) -> Model:
    """A Poisson or Bernoulli mixture ``model`` on data with NaN: ``field`` is the
    ``[K, D]`` emission param, ``log_density`` / ``maximize`` as in
    ``hmm_missing_elementwise.marginalizing_elementwise_hmm``."""

    def log_densities(params, data):
        theta = getattr(params, field).astype(data.x.dtype)
        return jnp.einsum("nd,nkd->nk", data.mask, log_density(data.x[:, None, :], theta[None, :, :]))

    def emission_m_step(data, posterior, params):
        counts = posterior.T @ data.mask
        totals = posterior.T @ (data.mask * data.x)
        return params._replace(**{field: maximize(counts, totals).astype(getattr(params, field).dtype)})

    return marginalizing_mixture(model, log_densities, emission_m_step)


def categorical(model: Model) -> Model:
    """A categorical mixture ``model`` (``probs [K, S]``) on count rows with NaN cells."""

    def log_densities(params, data):
        return count_cells.log_densities(data.x, data.mask, params.probs)

    def emission_m_step(data, posterior, params):
        probs = params.probs.astype(data.x.dtype)
        totals = count_cells.expected_counts(data.x, data.mask, posterior, probs)
        return params._replace(probs=count_cells.maximize(totals, probs).astype(params.probs.dtype))

    return marginalizing_mixture(model, log_densities, emission_m_step)
