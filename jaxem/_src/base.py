"""The two small types every model is made of: a latent structure and a model.

A *model* is a NamedTuple of pure functions, in the spirit of optax's
``GradientTransformation``. It never holds state: parameters are pytrees passed in
and out, and static settings (number of components, covariance type) are closed
over by the factory that built it, so they are static under ``jax.jit``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

Array = jax.Array
Params = Any  # a pytree (NamedTuple) of arrays
Data = Any  # an array or a model-specific pytree (e.g. prepared features)
LogPotentials = Any  # [N, K] for a mixture; a pytree for a chain
Posterior = Any  # same structure as LogPotentials


class Latent(NamedTuple):
    """The structure of the discrete latent variables; it fixes the log-partition.

    Attributes:
      log_marginal: ``(log_potentials, data) -> [N]``, log p(x_n) for every item
        (a sample for a mixture, a sequence for a chain): the log-partition of the
        log-potentials. Its gradient with respect to ``log_potentials`` is the
        posterior over the latent variables.
      decode: ``(log_potentials, data) -> latent``, the most probable latent values
        (argmax for a mixture, the Viterbi path for a chain).
      marginals: ``posterior -> array``, the user-facing posterior marginals from
        the gradient (the identity for a mixture).
      sizes: ``(log_potentials, data) -> [N]``, the number of observations in each
        item (ones for a mixture, sequence lengths for a chain); used to express
        the convergence tolerance per observation and by ``bic``.
    """

    log_marginal: Callable[[LogPotentials, Data], Array]
    decode: Callable[[LogPotentials, Data], Array]
    marginals: Callable[[Posterior], Array]
    sizes: Callable[[LogPotentials, Data], Array]


def _identity(x):
    return x


def _no_check(data, params=None):
    del data, params


class Model(NamedTuple):
    """A latent-variable model as a bundle of pure functions.

    Attributes:
      init: ``(key, data) -> params``, draws starting parameters (``data`` is the
        output of ``prepare``).
      log_joint: ``(params, data) -> log_potentials``, log p(x, z; θ) for every value
        of the discrete latent z (``[N, K]`` for a mixture).
      latent: the latent structure (``jaxem.mixture_latent()`` for a mixture).
      m_step: ``(data, posterior, params) -> params``, the maximizer of
        Q(θ) = Σ posterior · log_joint(θ), or ``None`` when the model has no closed
        form. ``posterior`` already includes any ``sample_weight``.
      prepare: ``data -> data``, computes once what does not depend on the
        parameters (sufficient-statistic features); it must accept its own output
        and return it unchanged, so that raw and prepared data are both accepted.
      check: ``(data, params=None) -> None``, raises ``ValueError``/``TypeError``
        on bad input. Runs outside ``jit``; value checks are skipped for tracers.
      sample: ``(key, params, n) -> (x, z)``, draws ``n`` items, or ``None``.
      n_parameters: ``params -> int``, the number of free parameters (for
        ``bic``/``aic``), or ``None``.
      spec: how to rebuild the model (factory name and options, set by
        ``jaxem.register_model``), used by ``jaxem.save``/``jaxem.load``; or ``None``.
    """

    init: Callable[[Array, Data], Params]
    log_joint: Callable[[Params, Data], LogPotentials]
    latent: Latent
    m_step: Optional[Callable[[Data, Posterior, Params], Params]] = None
    prepare: Callable[[Data], Data] = _identity
    check: Callable[..., None] = _no_check
    sample: Optional[Callable[[Array, Params, int], Any]] = None
    n_parameters: Optional[Callable[[Params], int]] = None
    spec: Optional[Any] = None


def mixture_latent() -> Latent:
    """The latent structure of a finite mixture: one categorical z per sample.

    The log-partition of a row of ``[N, K]`` log-potentials is ``logsumexp`` over
    ``K``; its gradient is the row's responsibilities.
    """

    def log_marginal(log_potentials, data):
        del data
        return jax.nn.logsumexp(log_potentials, axis=-1)

    def decode(log_potentials, data):
        del data
        return jnp.argmax(log_potentials, axis=-1)

    def sizes(log_potentials, data):
        del data
        return jnp.ones(log_potentials.shape[:1], log_potentials.dtype)

    return Latent(log_marginal=log_marginal, decode=decode, marginals=_identity, sizes=sizes)
