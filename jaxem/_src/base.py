"""The small types every model is made of: a latent structure, an M-step, a model.

A *model* is a NamedTuple of pure functions, in the spirit of optax's
``GradientTransformation``. It never holds state: parameters are pytrees passed in
and out, and static settings (number of components, covariance type) are closed
over by the factory that built it, so they are static under ``jax.jit``.

Each function field has a ``Protocol`` naming its signature. Shapes use ``N`` items
(rows of a mixture, sequences of a chain), ``K`` latent values, ``F`` features.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, NamedTuple, Optional, Protocol, TypeVar

import jax
import jax.numpy as jnp

from jaxem._src import display

Array = jax.Array
PyTree = Any
Params = TypeVar("Params")  # a pytree (NamedTuple) of arrays, one model's parameters
Data = Any  # an array or a model-specific pytree (e.g. prepared features)
LogPotentials = Any  # [N, K] for a mixture; ChainPotentials for a chain
Posterior = Any  # same structure as LogPotentials
Statistics = Any  # additive expected statistics, e.g. [K, F]


# ----------------------------------------------------------------------------------
# Protocols of the function fields.


class LogMarginalFn(Protocol):
    def __call__(self, log_potentials: LogPotentials, data: Data) -> Array: ...  # [N]


class DecodeFn(Protocol):
    def __call__(self, log_potentials: LogPotentials, data: Data) -> Array: ...


class MarginalsFn(Protocol):
    def __call__(self, posterior: Posterior) -> Array: ...


class InitFn(Protocol):
    def __call__(self, key: Array, data: Data) -> Any: ...


class LogJointFn(Protocol):
    def __call__(self, params: Any, data: Data) -> LogPotentials: ...


class MStepFn(Protocol):
    def __call__(self, data: Data, posterior: Posterior, params: Any) -> Any: ...


class PrepareFn(Protocol):
    def __call__(self, data: Data) -> Data: ...


class CheckFn(Protocol):
    def __call__(self, data: Data, params: Any = None) -> None: ...


class SampleFn(Protocol):
    def __call__(self, key: Array, params: Any, n: int) -> tuple[Any, Array]: ...


class StatisticsFn(Protocol):
    def __call__(self, data: Data, posterior: Posterior, params: Any = None) -> Statistics: ...


class MaximizeFn(Protocol):
    def __call__(self, statistics: Statistics, data: Data, params: Any) -> Any: ...


class RowsFn(Protocol):
    def __call__(self, data: Data, start: Array, size: int) -> Data: ...


# ----------------------------------------------------------------------------------
# The types.


class Latent(NamedTuple):
    """The structure of the latent variables: it fixes the log-partition.

    The log-potentials are ``log p(x, z; θ)`` as a function of the latent ``z``; the
    log marginal ``log p(x; θ)`` is their log-partition, and its gradient with
    respect to the log-potentials is the posterior (expected sufficient
    statistics of ``z``). That is the whole E-step (``jaxem.e_step``).

    Discrete latents: a mixture's log-potentials are ``[N, K]`` and the
    log-partition ``logsumexp`` (``mixture_latent``); a chain's are
    ``ChainPotentials`` and the log-partition the normalized forward recursion
    (``chain_latent``). A continuous latent plugs in the same way: a Gaussian
    latent's potentials are in information form ``(h [N, L], J [N, L, L], c [N])``,
    ``log p(x, z) = hᵀz − ½ zᵀJz + c``, with log-partition
    ``½ hᵀJ⁻¹h − ½ log det J + (L/2) log 2π + c`` (a Cholesky factor of J, never
    an inverse); its gradients with respect to ``h`` and ``J`` are ``E[z | x]`` and
    ``−½ E[zzᵀ | x]``. A linear-Gaussian chain's log-partition is the Kalman
    filter, whose gradient gives the smoothed moments. ``marginals`` turns that
    gradient into what ``jaxem.posterior`` reports (means and covariances), and
    ``decode`` returns the posterior mode.

    Attributes:
      log_marginal: ``(log_potentials, data) -> [N]``, log p(x_n) for every item
        (a sample for a mixture, a sequence for a chain): the log-partition.
      decode: ``(log_potentials, data) -> latent``, the most probable latent values
        (argmax for a mixture, the Viterbi path for a chain).
      marginals: ``posterior -> array``, the user-facing posterior marginals from
        the gradient (the identity for a mixture, the smoothed marginals
        ``[B, T, K]`` for a chain).
      sizes: ``(log_potentials, data) -> [N]``, the number of observations in each
        item (ones for a mixture, sequence lengths for a chain); used to express
        the convergence tolerance per observation and by ``bic``.
    """

    log_marginal: LogMarginalFn
    decode: DecodeFn
    marginals: MarginalsFn
    sizes: LogMarginalFn


@functools.lru_cache(maxsize=256)
def _takes_params(statistics) -> bool:
    """Whether a ``statistics`` function accepts a third (params) argument."""
    try:
        parameters = inspect.signature(statistics).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3 or any(p.kind == p.VAR_POSITIONAL for p in parameters)


class AdditiveMStep(NamedTuple):
    """An M-step that sees the data only through additive expected statistics.

    For an exponential family the M-step needs only ``Σ_n posterior_n T(x_n)``
    (``[K, F]``), a sum over items. So the items can be processed in row chunks
    (``chunk_size``), sharded over devices, or streamed from disk, and the sums
    added (``jaxem/_src/chunking.py``, ``sharding.py``, ``streaming.py``): these are
    properties of this M-step, not options of the engine.

    Attributes:
      statistics: ``(data, posterior, params=None) -> statistics``, the expected
        statistics of the items in ``data`` (summed over them); ``params`` are those
        of the E-step, so that a family can take them about its current means
        (``maximize`` then gets the same params; ``None``: plain statistics).
      maximize: ``(statistics, data, params) -> params``, the closed-form maximizer
        (``data`` is only read for its shared fields, e.g. a standardization).
      rows: ``(data, start, size) -> data``, the items ``start:start+size`` of
        prepared data: the per-row fields sliced, the shared ones kept.
      per_row: names of the prepared fields that hold one entry per row.
      prepare_like: ``(raw, reference) -> data``, raw rows prepared in the
        coordinates of ``reference`` (prepared data), so that the statistics of
        separately prepared chunks add up.
      chunk_size: rows per chunk of the E-step, or ``None`` for one pass; set at
        the public boundary (``fit(..., chunk_size=)``), static under ``jit``.
      zero_rows_are_empty: whether an item whose per-row fields are all zero
        contributes nothing (an HMM's sequence of length 0), so that data can be
        padded to equal shards over devices (``jaxem.shard_rows``).
    """

    statistics: StatisticsFn
    maximize: MaximizeFn
    rows: RowsFn
    per_row: tuple
    prepare_like: Callable[[Any, Data], Data]
    chunk_size: Optional[int] = None
    zero_rows_are_empty: bool = False

    def __call__(self, data: Data, posterior: Posterior, params):
        """The M-step as a plain ``m_step(data, posterior, params)``."""
        return self.maximize(self.expected_statistics(data, posterior, params), data, params)

    def expected_statistics(self, data: Data, posterior: Posterior, params=None):
        """``statistics(data, posterior, params)``, or ``statistics(data, posterior)``
        for a user's two-argument ``statistics`` (written before ``params`` was added)."""
        if params is None or not _takes_params(self.statistics):
            return self.statistics(data, posterior)
        return self.statistics(data, posterior, params)

    def n_rows(self, data: Data) -> int:
        """The number of rows of prepared ``data``."""
        return getattr(data, self.per_row[0]).shape[0]


class FreezableMStep(NamedTuple):
    """An M-step that can hold a mask of parameters fixed (``jaxem.freeze``).

    Gradient M-steps are of this type: the masked entries get zero gradient and
    keep their value exactly, so the free ones are optimized with the frozen ones
    in place.

    Attributes:
      m_step: ``(data, posterior, params) -> params``, the M-step itself.
      with_frozen: ``mask -> FreezableMStep``, the same M-step holding ``mask``
        fixed (``None``, a boolean pytree like the params, or field names).
    """

    m_step: MStepFn
    with_frozen: Callable[[Any], "FreezableMStep"]

    def __call__(self, data: Data, posterior: Posterior, params):
        return self.m_step(data, posterior, params)


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
        of the latent z (``[N, K]`` for a mixture).
      latent: the latent structure (``jaxem.mixture_latent()`` for a mixture).
      m_step: ``(data, posterior, params) -> params``, the maximizer of
        Q(θ) = Σ posterior · log_joint(θ), or ``None`` when the model has none.
        ``posterior`` already includes any ``sample_weight``. An
        ``AdditiveMStep`` (exponential families) is also such a function, and
        declares that chunking, sharding and streaming apply.
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
      log_prior: ``params -> scalar``, the log prior density of the params (up
        to a constant), or ``None``. With it EM is MAP-EM: the M-step maximizes
        Q + log_prior, and the fit ascends log-likelihood + log_prior
        (``jaxem/_src/priors.py``).
      prepare_for: ``(params, data) -> data``, ``prepare`` for scoring under
        ``params`` (``posterior``, ``score_samples``, ...): any standardization is
        taken from ``params``, never from the other rows, so that each item is
        scored independently; or ``None`` when ``prepare`` already is.
    """

    init: InitFn
    log_joint: LogJointFn
    latent: Latent
    m_step: Optional[MStepFn] = None
    prepare: PrepareFn = _identity
    check: CheckFn = _no_check
    sample: Optional[SampleFn] = None
    n_parameters: Optional[Callable[[Any], int]] = None
    spec: Optional[Any] = None
    log_prior: Optional[Callable[[Any], Array]] = None
    prepare_for: Optional[Callable[[Any, Data], Data]] = None

    __repr__ = display.model_repr

    @property
    def additive(self) -> Optional[AdditiveMStep]:
        """The M-step if it works from additive expected statistics, else ``None``."""
        return self.m_step if isinstance(self.m_step, AdditiveMStep) else None


def mixture_latent() -> Latent:
    """The latent structure of a finite mixture: one categorical z per sample.

    The log-partition of a row of ``[N, K]`` log-potentials is ``logsumexp`` over
    ``K``; its gradient is the row's responsibilities.

    Examples:
      >>> latent = jaxem.mixture_latent()
      >>> log_potentials = jnp.log(jnp.array([[0.2, 0.6], [0.1, 0.1]]))   # [N, K]
      >>> total = lambda lp: latent.log_marginal(lp, None).sum()   # Σ_n log Σ_k exp(lp[n, k])
      >>> np.asarray(jax.grad(total)(log_potentials)).round(3).tolist()   # the responsibilities
      [[0.25, 0.75], [0.5, 0.5]]
    """
    return _MIXTURE_LATENT


def _mixture_log_marginal(log_potentials, data):
    del data
    return jax.nn.logsumexp(log_potentials, axis=-1)


def _mixture_decode(log_potentials, data):
    del data
    return jnp.argmax(log_potentials, axis=-1)


def _mixture_sizes(log_potentials, data):
    del data
    return jnp.ones(log_potentials.shape[:1], log_potentials.dtype)


_MIXTURE_LATENT = Latent(
    log_marginal=_mixture_log_marginal, decode=_mixture_decode, marginals=_identity, sizes=_mixture_sizes
)
