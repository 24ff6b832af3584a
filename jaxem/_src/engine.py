"""The public, checked entry points: ``fit``, ``em_step``, ``posterior``, ...

Each validates its arguments once, outside ``jit`` (``ValueError``/``TypeError``
naming the argument), prepares the data, resolves the options into static
settings (the algorithm, the M-step's row chunks) and calls a pure, compiled
function: ``loop.fit_restarts`` (or the progress driver) for ``fit``,
``update.em_update`` for ``em_step``, ``inference.e_step`` for the rest. The
pieces: ``inference.py`` (the E-step), ``update.py`` (one EM update),
``algorithms.py`` (EM, SQUAREM), ``loop.py`` (the loop, restarts, best restart),
``progress.py`` (the host driver), ``chunking.py`` (the chunked E-step of an
additive M-step).
"""

from __future__ import annotations

import functools
import numbers
import os
from typing import Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import algorithms, chunking, convergence, exported, loop, validation
from jaxem._src import padded_prepare
from jaxem._src import progress as progress_lib
from jaxem._src import update as update_lib
from jaxem._src.base import Array, Model, Params
from jaxem._src.inference import e_step, float_dtype, log_marginals, n_observations
from jaxem._src.loop import FitResult, RunState, run_em  # noqa: F401  (re-exported)

# ----------------------------------------------------------------------------------
# Public, checked entry points.


def as_key(key) -> Array:
    """``key`` as a PRNG key: a key passes unchanged, any integer seed (Python or
    NumPy, e.g. ``np.int64``) becomes ``jax.random.key(seed)``."""
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if not isinstance(key, jax.Array):
        raise TypeError(f"key must be a JAX PRNG key (e.g. jax.random.key(0)) or an int, got {type(key).__name__}")
    return key


def check_inputs(model: Model, data, params=None, sample_weight=None):
    """Checks ``data`` (already through ``validation.as_data``), ``params`` and
    ``sample_weight`` for ``model``; returns the checked ``sample_weight`` (or ``None``).

    Value checks run on concrete arrays also inside a user's ``jax.jit``
    (``validation.on_values``) and are skipped for tracers.
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a jaxem Model, got {type(model).__name__}")
    validation.warn_if_float64_dropped(data, "data")
    validation.warn_if_float64_dropped(params, "params")
    validation.check_precision(params, "params")
    with validation.on_values():
        model.check(data, params)
    if sample_weight is None:
        return None
    prepared = jax.eval_shape(model.prepare, data)
    n = jax.eval_shape(
        lambda p, d: model.latent.log_marginal(model.log_joint(p, d), d),
        params if params is not None else jax.eval_shape(model.init, jax.random.key(0), prepared),
        prepared,
    ).shape[0]
    with validation.on_values():
        return validation.check_sample_weight(sample_weight, n, float_dtype(prepared))


def check_inputs_and_params(model: Model, data, params, sample_weight=None):
    if params is None:
        raise TypeError("params must be the model's parameters, got None")
    return check_inputs(model, data, params, sample_weight)


def em_step(model: Model, params: Params, data, *, sample_weight=None, chunk_size="auto"):
    """One EM iteration: ``(params, data) -> (new_params, log_likelihood)``.

    Pure and jit-compiled (``model`` is static), so it composes with a user's own
    ``jax.jit``, ``jax.vmap`` and ``lax.scan``. ``log_likelihood`` is the total
    log-likelihood of ``params``, before the update.

    Args:
      model: a jaxem ``Model``.
      params: the current parameters.
      data: raw data (e.g. ``[N, D]``) or the output of ``model.prepare(data)``,
        which saves recomputing the features in a user's own loop.
      sample_weight: optional ``[N]`` non-negative weights of the items.
      chunk_size: rows per chunk: the E-step and expected statistics are
        accumulated over row chunks, so extra memory is O(chunk_size · (K + F))
        (exponential-family mixtures only). ``"auto"`` (default): chunks of
        2048-16384 rows whose features take at most ~3 MiB, for
        exponential-family mixtures with more than 32768 rows on one device, else
        unchunked; ``None``: unchunked.

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> params = jaxem.init(model, jax.random.key(0), x)
      >>> new_params, log_lik = jaxem.em_step(model, params, x)   # log_lik: of params
      >>> bool(jaxem.log_likelihood(model, new_params, x) >= log_lik)
      True
      >>> features = model.prepare(x)                             # computed once
      >>> def step(params, _):
      ...     return jaxem.em_step(model, params, features)
      >>> params, log_liks = jax.lax.scan(step, params, None, length=20)
      >>> log_liks.shape, bool(jnp.all(jnp.diff(log_liks) >= -1e-3))
      ((20,), True)
    """
    data = validation.as_data(data)
    sample_weight = check_inputs_and_params(model, data, params, sample_weight)
    update_lib.check_has_m_step(model)
    model = chunking.with_chunk_size(model, chunk_size, data)
    return _em_step(model, params, data, sample_weight)


@functools.partial(jax.jit, static_argnums=0)
def _em_step(model: Model, params, data, sample_weight):
    return update_lib.em_update(model, params, model.prepare(data), sample_weight)


def em_step_with_info(model: Model, params: Params, data, *, sample_weight=None):
    """``em_step`` that also reports what the M-step did to Q.

    The same update as ``em_step`` (in one pass over the rows), plus Q before and
    after the M-step.

    Returns:
      ``(new_params, log_likelihood, info)``: the same ``new_params`` and
      ``log_likelihood`` (of ``params``) as ``jaxem.em_step``, and an ``MStepInfo``
      with ``q_before``, ``q_after`` (``q_after >= q_before`` for every jaxem
      M-step) and ``accepted`` (``False`` when θ_t was kept).

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> params = jaxem.init(model, jax.random.key(0), x)
      >>> new_params, log_lik, info = jaxem.em_step_with_info(model, params, x)
      >>> bool(info.q_after >= info.q_before), bool(info.accepted)
      (True, True)
    """
    update_lib.check_has_m_step(model)
    data = validation.as_data(data)
    sample_weight = check_inputs(model, data, params, sample_weight)
    return _em_step_with_info(model, params, data, sample_weight)


@functools.partial(jax.jit, static_argnums=0)
def _em_step_with_info(model: Model, params, data, sample_weight):
    return update_lib.em_update_with_info(model, params, model.prepare(data), sample_weight)


def init(model: Model, key, data) -> Params:
    """Draws starting parameters with the model's initializer: ``model.init``.

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(3)
      >>> params = jaxem.init(model, jax.random.key(0), x)        # k-means++ seeding
      >>> params.weights.shape, params.means.shape
      ((3,), (3, 2))
    """
    data = validation.as_data(data)
    check_inputs(model, data)
    return jax.jit(model.init)(as_key(key), model.prepare(data))


def fit(
    model: Model,
    data,
    *,
    key,
    n_restarts: int = 1,
    max_iter: int = 100,
    tol: float = 1e-3,
    init_params: Optional[Params] = None,
    sample_weight=None,
    progress=False,
    chunk_size="auto",
    accelerate: Optional[str] = None,
    algorithm: Union[str, Callable[..., algorithms.Algorithm]] = "em",
) -> FitResult:
    """Fits ``model`` by EM, vmapped over random restarts, in one compiled program.

    Each restart runs EM inside a ``lax.while_loop`` until the change in the
    log-likelihood per observation is below ``tol`` or ``max_iter`` steps; all
    restarts run together under ``vmap``, and the one with the highest final
    log-likelihood is returned.

    Args:
      model: a jaxem ``Model``.
      data: raw data (``[N, D]`` for a mixture) or ``model.prepare(data)``.
      key: a PRNG key (``jax.random.key(0)``) or an int seed; one key per restart
        is split from it.
      n_restarts: number of random restarts.
      max_iter: maximum number of EM steps per restart.
      tol: convergence tolerance on the change of the mean log-likelihood per
        observation.
      init_params: optional starting parameters, either one set (then
        ``n_restarts`` must be 1) or a batch with leading axis ``n_restarts``.
      sample_weight: optional ``[N]`` non-negative weights of the items.
      progress: ``False`` (default), ``True`` (print iteration, best
        log-likelihood and restarts converged to stderr every 10 iterations), an
        int ``n`` (print every ``n``), or a callable receiving a
        ``jaxem.Progress`` (every ``progress.every`` iterations if it has that
        attribute, else 10). The same fit then runs in compiled stretches between
        reports.
      chunk_size: rows per chunk: stream the E-step and expected statistics over
        row chunks (extra memory O(chunk_size · (K + F)) instead of O(N · K);
        exponential-family mixtures only); the same result as unchunked up to
        rounding. ``"auto"`` (default): chunks of 2048-16384 rows whose features
        take at most ~3 MiB, for exponential-family mixtures with more than 32768
        rows on one device (O(chunk) temporaries; a chunk stays in cache), else
        unchunked; ``None``: never chunk.
      accelerate: ``None`` (plain EM) or ``"squarem"``: SQUAREM extrapolation
        (Varadhan & Roland 2008) with fall-back to the plain EM step whenever it
        would lower the log-likelihood; ``max_iter`` then counts EM-step
        evaluations (three per SQUAREM step). The same as ``algorithm="squarem"``.
      algorithm: ``"em"`` (default), ``"squarem"``, or a factory
        ``update -> jaxem.Algorithm`` (``jaxem.em``, ``jaxem.squarem`` or your
        own: see ``jaxem/_src/algorithms.py``). Works with ``progress`` and
        ``chunk_size``.

    Returns:
      A ``FitResult``.

    Warns:
      jaxem.ConvergenceWarning: when no restart met ``tol`` within ``max_iter``
        (not inside ``jit``, where the result is traced).

    Examples:
      >>> x, columns = jaxem.load_dataset("faithful")            # [272, 2]
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> result = jaxem.fit(model, x, key=0, n_restarts=2)      # key: an int or jax.random.key(0)
      >>> result.params.means.shape, result.history.shape        # [K, D], [restarts, max_iter]
      ((2, 2), (2, 100))
      >>> np.round(np.sort(np.asarray(result.params.weights)), 2)
      array([0.36, 0.64]...)
      >>> bool(result.converged.any())
      True
    """
    n_restarts = validation.check_positive_int(n_restarts, "n_restarts")
    max_iter = validation.check_positive_int(max_iter, "max_iter")
    tol = validation.check_nonnegative_float(tol, "tol")
    if accelerate not in (None, "squarem"):
        raise ValueError(f"accelerate must be None or 'squarem', got {accelerate!r}")
    make_algorithm = algorithms.resolve("squarem" if accelerate == "squarem" else algorithm)
    key = as_key(key)
    keys = jax.random.split(key, n_restarts)
    data = validation.as_data(data)
    single_init = None
    if init_params is not None:
        expected = jax.eval_shape(model.init, key, jax.eval_shape(model.prepare, data))
        batched = _is_batched(init_params, expected, n_restarts)
        single_init = jax.tree_util.tree_map(lambda leaf: leaf[0], init_params) if batched else init_params
        if not batched:
            if n_restarts != 1:
                raise ValueError(
                    "init_params holds one set of parameters; pass n_restarts=1 or a batch "
                    f"with leading axis n_restarts={n_restarts}"
                )
            init_params = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf)[None], init_params)
    sample_weight = check_inputs(model, data, single_init, sample_weight)
    if init_params is not None and batched:
        check_restarts(model, data, init_params)
    update_lib.check_has_m_step(model)
    model = chunking.with_chunk_size(model, chunk_size, data)
    data, sample_weight = padded_prepare.prepare_padded(model, data, sample_weight)  # one program per bucket
    dtype = float_dtype(data)
    if init_params is not None:  # the loop carries params in the data's dtype
        init_params = jax.tree_util.tree_map(
            lambda leaf: leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf,
            jax.tree_util.tree_map(jnp.asarray, init_params),
        )
    tol = np.asarray(tol, dtype)  # a NumPy scalar: no program compiled to convert it
    statics = dict(make_algorithm=make_algorithm, max_iter=max_iter)
    if progress is not False and progress is not None:
        result = progress_lib.fit_with_reports(model, data, keys, init_params, sample_weight, tol, progress=progress, **statics)
    else:
        result = exported.call("fit_restarts", loop.fit_restarts, model, data, keys, init_params, sample_weight, tol, **statics)
    convergence.warn_if_none_converged(result, max_iter, tol)
    return result


def check_restarts(model: Model, data, init_params) -> None:
    """``model.check`` of every restart of batched ``init_params`` past the first
    (which ``fit`` checks with the data), naming the restart in the error."""
    n_restarts = jax.tree_util.tree_leaves(init_params)[0].shape[0]
    for restart in range(1, n_restarts):
        params = jax.tree_util.tree_map(lambda leaf: leaf[restart], init_params)
        try:
            model.check(data, params)
        except ValueError as error:
            raise ValueError(f"init_params of restart {restart}: {error}") from None


def _is_batched(init_params, expected, n_restarts: int) -> bool:
    got = jax.tree_util.tree_leaves(init_params)
    want = jax.tree_util.tree_leaves(expected)
    if jax.tree_util.tree_structure(init_params) != jax.tree_util.tree_structure(expected):
        raise ValueError("init_params does not have the structure of this model's params")
    if all(jnp.shape(g) == w.shape for g, w in zip(got, want)):
        return False
    if all(jnp.shape(g) == (n_restarts,) + w.shape for g, w in zip(got, want)):
        return True
    raise ValueError(
        "init_params shapes do not match this model and data: got "
        f"{[jnp.shape(g) for g in got]}, expected {[w.shape for w in want]} "
        f"(or with a leading axis of n_restarts={n_restarts})"
    )


def prepare_for(model: Model, params, data):
    """``data`` prepared for scoring under ``params``: each item independently of
    the others (``Model.prepare_for``), else ``model.prepare``."""
    if model.prepare_for is None:
        return model.prepare(data)
    return model.prepare_for(params, data)


@functools.partial(jax.jit, static_argnums=0)
def _posterior(model, params, data):
    data = prepare_for(model, params, data)
    return model.latent.marginals(e_step(model, params, data)[1])


@functools.partial(jax.jit, static_argnums=0)
def _score_samples(model, params, data):
    return log_marginals(model, params, prepare_for(model, params, data))


@functools.partial(jax.jit, static_argnums=0)
def _scores(model, params, data, sample_weight, n_params):
    """``(log-likelihood, BIC, AIC)``: one program for ``log_likelihood``, ``bic``
    and ``aic`` (``n_params`` is 0 for ``log_likelihood``)."""
    data = prepare_for(model, params, data)
    log_lik = e_step(model, params, data, sample_weight)[0]
    n = n_observations(model, params, data, sample_weight).astype(log_lik.dtype)
    p = jnp.asarray(n_params).astype(log_lik.dtype)
    return log_lik, -2.0 * log_lik + p * jnp.log(n), -2.0 * log_lik + 2.0 * p


@functools.partial(jax.jit, static_argnums=0)
def _predict(model, params, data):
    data = prepare_for(model, params, data)
    return model.latent.decode(model.log_joint(params, data), data)


def posterior(model: Model, params: Params, data) -> Array:
    """Posterior marginals of the latent variables: ``[N, K]`` for a mixture.

    Computed as the gradient of the log-likelihood with respect to the
    log-potentials. For a continuous latent, its moments: a
    ``jaxem.GaussianPosterior`` (means, covariances) or, for a linear-Gaussian
    chain, a ``jaxem.GaussianChainPosterior`` (smoothed means, covariances,
    lag-one cross-covariances).

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> result = jaxem.fit(model, x, key=0, n_restarts=2)
      >>> responsibilities = jaxem.posterior(model, result.params, x)   # [N, K]
      >>> responsibilities.shape, bool(jnp.allclose(responsibilities.sum(axis=1), 1.0, atol=1e-5))
      ((272, 2), True)
    """
    data = validation.as_data(data)
    check_inputs_and_params(model, data, params)
    return exported.call("posterior", _posterior, model, params, data)


def log_likelihood(model: Model, params: Params, data, *, sample_weight=None) -> Array:
    """Total log-likelihood ``Σ_n w_n log p(x_n; θ)`` (a scalar).

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> result = jaxem.fit(model, x, key=0, n_restarts=2)
      >>> total = jaxem.log_likelihood(model, result.params, x)
      >>> bool(jnp.isclose(total, result.log_likelihood))
      True
      >>> bool(jnp.isclose(total, jaxem.score_samples(model, result.params, x).sum()))
      True
    """
    data = validation.as_data(data)
    sample_weight = check_inputs_and_params(model, data, params, sample_weight)
    return exported.call("scores", _scores, model, params, data, sample_weight, 0)[0]


def score_samples(model: Model, params: Params, data) -> Array:
    """Log-likelihood of each item, ``[N]`` (each sample, or each sequence).

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> result = jaxem.fit(model, x, key=0, n_restarts=2)
      >>> jaxem.score_samples(model, result.params, x).shape      # log p(x_n) per row
      (272,)
    """
    data = validation.as_data(data)
    check_inputs_and_params(model, data, params)
    return exported.call("score_samples", _score_samples, model, params, data)


def predict(model: Model, params: Params, data) -> Array:
    """The most probable latent values (``[N]`` component labels for a mixture).

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> result = jaxem.fit(model, x, key=0, n_restarts=2)
      >>> labels = jaxem.predict(model, result.params, x)        # [N] in {0, 1}
      >>> sorted(np.unique(np.asarray(labels)).tolist())
      [0, 1]
    """
    data = validation.as_data(data)
    check_inputs_and_params(model, data, params)
    return exported.call("predict", _predict, model, params, data)


def sample(model: Model, params: Params, key, n: int):
    """Draws ``n`` items from the model: returns ``(x, z)``.

    Examples:
      >>> params = jaxem.models.gaussian_mixture_params([0.3, 0.7], [[0.0], [5.0]], [[[1.0]], [[1.0]]])
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> x, z = jaxem.sample(model, params, jax.random.key(0), 1000)
      >>> x.shape, z.shape
      ((1000, 1), (1000,))
      >>> 0.6 < float(jnp.mean(z)) < 0.8                          # about 70% from component 1
      True
    """
    if model.sample is None:
        raise ValueError("this model does not define sample")
    n = validation.check_positive_int(n, "n")
    key = as_key(key)
    _check_sample_size(model, params, key, n)
    return model.sample(key, params, n)


def _check_sample_size(model: Model, params: Params, key, n: int) -> None:
    """``ValueError`` naming ``n`` when the draw would not fit in memory (half the
    machine's RAM) or index past int32, instead of an allocation that aborts."""
    if n > np.iinfo(np.int32).max:
        raise ValueError(f"n must be at most {np.iinfo(np.int32).max} draws per call, got {n}")
    if n < 2**20:  # below a million draws, assume they fit rather than pay a second program
        return
    with jax.ensure_compile_time_eval():  # one draw, op by op, to measure a draw's bytes
        one = model.sample(key, params, 1)
    needed = n * sum(int(np.size(leaf)) * np.dtype(leaf.dtype).itemsize for leaf in jax.tree_util.tree_leaves(one))
    try:
        available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return
    if needed > available:
        raise ValueError(
            f"n={n} draws would take {needed / 2**30:.1f} GiB, more than half of this machine's memory; "
            "draw fewer at a time"
        )


def n_parameters(model: Model, params: Params) -> int:
    """Number of free parameters of the model.

    Examples:
      >>> model = jaxem.models.gaussian_mixture(2)                # 1 weight + 2·2 means + 2·3 covariances
      >>> params = jaxem.models.gaussian_mixture_params([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], [np.eye(2)] * 2)
      >>> jaxem.n_parameters(model, params)
      11
    """
    if model.n_parameters is None:
        raise ValueError("this model does not define n_parameters")
    return int(model.n_parameters(params))


def _criteria(model: Model, params: Params, data):
    """``(BIC, AIC)`` from one check and one compiled program (``_scores``)."""
    data = validation.as_data(data)
    check_inputs_and_params(model, data, params)
    _, bic_value, aic_value = exported.call("scores", _scores, model, params, data, None, n_parameters(model, params))
    return bic_value, aic_value


def bic(model: Model, params: Params, data) -> Array:
    """Bayesian information criterion ``-2 log L + p log n`` (lower is better).

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> bics = {}
      >>> for k in (1, 2, 3):                                      # pick K: the lowest BIC
      ...     model = jaxem.models.gaussian_mixture(k)
      ...     result = jaxem.fit(model, x, key=0, n_restarts=2)
      ...     bics[k] = float(jaxem.bic(model, result.params, x))
      >>> min(bics, key=bics.get)
      2
    """
    return _criteria(model, params, data)[0]


def aic(model: Model, params: Params, data) -> Array:
    """Akaike information criterion ``-2 log L + 2 p`` (lower is better).

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> result = jaxem.fit(model, x, key=0, n_restarts=2)
      >>> p = jaxem.n_parameters(model, result.params)
      >>> bool(jnp.isclose(jaxem.aic(model, result.params, x), -2 * result.log_likelihood + 2 * p))
      True
    """
    return _criteria(model, params, data)[1]


def viterbi(model, params, data) -> Array:
    """The most probable state path of every sequence (max-product / Viterbi).

    Args:
      model: a chain model (e.g. ``jaxem.models.gaussian_hmm``).
      params: its parameters.
      data: one sequence ``[T, ...]`` or ``jaxem.Sequences(obs, lengths)``.

    Returns:
      ``[B, T_max]`` int32 state indices (``B = 1`` for a plain array); steps past a
      sequence's length are ``-1``. Same as ``jaxem.predict`` for a chain model.

    Examples:
      >>> x, _ = jaxem.load_dataset("geyser")                    # [299, 2], one sequence
      >>> model = jaxem.models.gaussian_hmm(2)
      >>> params = jaxem.init(model, jax.random.key(0), x)
      >>> jaxem.viterbi(model, params, x).shape                   # [B, T]
      (1, 299)
      >>> data = jaxem.Sequences.from_list([x[:100], x[100:]])
      >>> paths = jaxem.viterbi(model, params, data)
      >>> paths.shape, int(paths[0, -1])                          # -1 on padded steps
      ((2, 199), -1)
    """
    return predict(model, params, data)
