"""The builder of factor-analysis models: one, or a mixture of ``K``.

``factor_model`` wires ``factor_analysis.py``'s pieces into a ``jaxem.Model``: the
latent structure is ``gaussian_latent()`` for one model (potentials ``[N, ...]``)
and ``gaussian_mixture_latent()`` for a mixture (``[N, K, ...]``); parameters are
converted to and from the prepared coordinates around ``log_joint`` and the M-step.
"""

from __future__ import annotations

from typing import Optional

import jax.numpy as jnp

from jaxem._src import factor_analysis as fa
from jaxem._src.base import Model
from jaxem._src.gaussian_latent import GaussianPotentials, gaussian_latent, gaussian_mixture_latent
from jaxem._src.validation import check_n_components


def factor_model(n_factors: int, *, n_components: Optional[int], isotropic: bool, min_noise_variance: float) -> Model:
    """A factor-analysis (``isotropic=False``) or PPCA model; a mixture of them when
    ``n_components`` is an int, a single one when ``None``. Options are checked by
    the public factories (``jaxem.models.factor_analysis`` and friends)."""
    single = n_components is None
    k = 1 if single else n_components

    def to_core(params):
        if single:
            noise = params.noise_variance[None]
            return jnp.ones((1,), params.mean.dtype), params.mean[None], params.loadings[None], noise
        return params

    def from_core(core: fa.Standardized, data: fa.FactorData):
        weights, means, loadings, noise = fa.in_data_units(core, data)
        if isotropic:
            noise = noise[:, 0]
        if single:
            return fa.FactorAnalysisParams(means[0], loadings[0], noise[0])
        return fa.MixtureOfFactorAnalyzersParams(weights, means, loadings, noise)

    def prepare(x):
        return fa.prepare(x, isotropic=isotropic)

    def log_joint(params, data):
        potentials = fa.potentials(fa.standardized(*to_core(params), data), data)
        if single:
            return GaussianPotentials(potentials.h[:, 0], potentials.J[:, 0], potentials.c[:, 0])
        return potentials

    def m_step(data, posterior, params):
        del params
        if single:
            posterior = GaussianPotentials(posterior.h[:, None], posterior.J[:, None], posterior.c[:, None])
        stats = fa.statistics(data, posterior)
        return from_core(fa.maximize(stats, data, isotropic=isotropic, min_noise=min_noise_variance), data)

    def init(key, data):
        return from_core(fa.init(key, data, k, n_factors), data)

    def check(data, params=None):
        x = fa.check_data(data, n_factors)
        check_n_components(k, x.shape[0])
        if params is not None:
            _check_params(params, x.shape[1])

    def _check_params(params, d):
        want = fa.FactorAnalysisParams if single else fa.MixtureOfFactorAnalyzersParams
        if not isinstance(params, want):
            raise TypeError(f"params must be {want.__name__}, got {type(params).__name__}")
        weights, means, loadings, noise = to_core(params)
        noise_shape = (k,) if isotropic else (k, d)
        shapes = {"means": (jnp.shape(means), (k, d)), "loadings": (jnp.shape(loadings), (k, d, n_factors))}
        shapes["noise_variance"] = (jnp.shape(noise), noise_shape)
        for name, (got, expected) in shapes.items():
            if tuple(got) != expected:
                expected, got = (expected[1:], tuple(got)[1:]) if single else (expected, tuple(got))
                raise ValueError(f"params.{name} must have shape {expected} for this model and data, got {got}")
        fa.check_params_values(loadings, noise, means)

    def sample(key, params, n):
        x, (components, z) = fa.sample(key, *to_core(params), n)
        return (x, z) if single else (x, (components, z))

    def n_parameters(params):
        d = to_core(params)[1].shape[-1]
        return fa.n_free_parameters(k, d, n_factors, isotropic)

    return Model(
        init=init,
        log_joint=log_joint,
        latent=gaussian_latent() if single else gaussian_mixture_latent(),
        m_step=m_step,
        prepare=prepare,
        check=check,
        sample=sample,
        n_parameters=n_parameters,
    )
