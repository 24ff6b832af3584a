"""The EM engine: the E-step is the gradient of a log-partition.

For a model with log-potentials ``φ = log p(x, z; θ)`` (one entry per value of the
discrete latent ``z``), the log marginal ``log p(x; θ) = log Σ_z exp φ`` is a
log-partition, and its gradient with respect to ``φ`` is the posterior
``p(z | x; θ)``. So the E-step is a single ``jax.value_and_grad`` call; no model
writes a responsibilities formula or a backward pass.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxem._src import validation
from jaxem._src.base import Array, Model, Params


class EMState(NamedTuple):
    """What the EM loop carries from one iteration to the next (one restart).

    Attributes:
      params: the current parameters.
      mean_log_likelihood: log-likelihood per observation of the parameters before
        the last update (``-inf`` before the first iteration).
      n_iter: number of EM steps taken.
      converged: whether the last change in ``mean_log_likelihood`` was below tol.
      history: ``[max_iter]`` total log-likelihood at each iteration, NaN after the
        loop stopped.
    """

    params: Params
    mean_log_likelihood: Array
    n_iter: Array
    converged: Array
    history: Array


class FitResult(NamedTuple):
    """What ``fit`` reports (a pytree).

    Attributes:
      params: the parameters of the best restart.
      log_likelihood: total log-likelihood of exactly ``params``.
      history: ``[n_restarts, max_iter]`` log-likelihood traces; entry ``t`` is the
        log-likelihood of the parameters before update ``t``; NaN after a restart
        stopped.
      n_iter: ``[n_restarts]`` EM steps taken by each restart.
      converged: ``[n_restarts]`` whether each restart met the tolerance.
      all_params: every restart's final parameters (leading axis ``n_restarts``).
      all_log_likelihoods: ``[n_restarts]`` total log-likelihood of each restart's
        final parameters.
      best_restart: index of the restart returned in ``params``.
    """

    params: Params
    log_likelihood: Array
    history: Array
    n_iter: Array
    converged: Array
    all_params: Params
    all_log_likelihoods: Array
    best_restart: Array


# ----------------------------------------------------------------------------------
# Pure, unchecked building blocks (safe inside jit / vmap / scan / grad).


def _log_marginals(model: Model, params, data) -> Array:
    log_potentials = model.log_joint(params, data)
    return model.latent.log_marginal(log_potentials, data)


def e_step(model: Model, params, data, sample_weight=None):
    """The E-step: ``(total log-likelihood, posterior)`` by one autodiff call.

    ``posterior`` has the structure of ``model.log_joint``'s output (``[N, K]``
    responsibilities for a mixture) and includes ``sample_weight`` when given.
    ``data`` must already be prepared (``model.prepare``).
    """
    log_potentials = model.log_joint(params, data)

    def total_log_likelihood(log_potentials):
        per_item = model.latent.log_marginal(log_potentials, data)
        if sample_weight is not None:
            per_item = per_item * sample_weight.astype(per_item.dtype)
        return jnp.sum(per_item)

    return jax.value_and_grad(total_log_likelihood)(log_potentials)


def _em_step(model: Model, params, data, sample_weight=None, chunk_size=None):
    if model.m_step is None:
        raise ValueError(
            "this model has no m_step; give it a closed-form m_step or a generic "
            "(gradient-based) one"
        )
    data = model.prepare(data)
    if chunk_size is not None:  # statistics accumulated over row chunks
        from jaxem._src import chunking

        return chunking.em_step(model, params, data, sample_weight, chunk_size=chunk_size)
    log_likelihood, posterior = e_step(model, params, data, sample_weight)
    return model.m_step(data, posterior, params), log_likelihood


_em_step_jit = jax.jit(_em_step, static_argnums=(0, 4))


def _n_observations(model: Model, params, data, sample_weight) -> Array:
    # Only the shape of the log-potentials is used, so XLA drops their computation.
    sizes = model.latent.sizes(model.log_joint(params, data), data)
    if sample_weight is not None:
        sizes = sizes * sample_weight.astype(sizes.dtype)
    return jnp.sum(sizes)


def initial_state(params, dtype, max_iter: int) -> EMState:
    """The ``EMState`` before the first iteration (one restart)."""
    return EMState(
        params=params,
        mean_log_likelihood=jnp.asarray(-jnp.inf, dtype),
        n_iter=jnp.asarray(0, jnp.int32),
        converged=jnp.asarray(False),
        history=jnp.full((max_iter,), jnp.nan, dtype),
    )


def keep_going(state: EMState, stop) -> Array:
    """Whether EM goes on: fewer than ``stop`` steps, not converged, not NaN."""
    return (state.n_iter < stop) & ~state.converged & ~jnp.isnan(state.mean_log_likelihood)


def em_loop(model: Model, state: EMState, data, n_obs, *, stop, tol, sample_weight=None, chunk_size=None) -> EMState:
    """EM steps from ``state`` in a ``lax.while_loop`` until ``keep_going`` fails
    (one restart; ``data`` prepared, ``n_obs`` its number of observations)."""

    def body(state: EMState):
        new_params, log_likelihood = _em_step(model, state.params, data, sample_weight, chunk_size)
        mean = log_likelihood / n_obs.astype(state.mean_log_likelihood.dtype)
        converged = jnp.abs(mean - state.mean_log_likelihood) < tol
        history = state.history.at[state.n_iter].set(log_likelihood)
        return EMState(new_params, mean, state.n_iter + 1, converged, history)

    return jax.lax.while_loop(lambda state: keep_going(state, stop), body, state)


def run_em(model: Model, params, data, *, max_iter: int, tol, sample_weight=None, chunk_size=None) -> EMState:
    """Runs EM from ``params`` in a ``lax.while_loop`` (one restart; pure, unchecked).

    Stops when the change in log-likelihood per observation falls below ``tol``,
    when the log-likelihood becomes NaN, or after ``max_iter`` steps.
    """
    data = model.prepare(data)
    n_obs = _n_observations(model, params, data, sample_weight)
    dtype = jax.eval_shape(lambda p: e_step(model, p, data, sample_weight)[0], params).dtype
    state = initial_state(params, dtype, max_iter)
    return em_loop(model, state, data, n_obs, stop=max_iter, tol=tol, sample_weight=sample_weight, chunk_size=chunk_size)


@functools.partial(jax.jit, static_argnames=("model", "max_iter", "chunk_size", "accelerate"))
def _fit(model: Model, data, keys, init_params, sample_weight, tol, *, max_iter: int, chunk_size=None, accelerate=None) -> FitResult:
    if init_params is None:
        init_params = jax.vmap(model.init, in_axes=(0, None))(keys, data)
    runner = run_em
    if accelerate == "squarem":
        from jaxem._src.squarem import run_squarem as runner
    run = functools.partial(runner, model, data=data, max_iter=max_iter, tol=tol, sample_weight=sample_weight, chunk_size=chunk_size)
    states = _over_restarts(run, init_params)

    def final_log_likelihood(params):
        if chunk_size is not None:
            from jaxem._src import chunking

            return chunking.log_likelihood(model, params, data, sample_weight, chunk_size=chunk_size)
        return e_step(model, params, data, sample_weight)[0]

    return best_restart(states, _over_restarts(final_log_likelihood, states.params))


def best_restart(states: EMState, final: Array) -> FitResult:
    """The ``FitResult`` of vmapped ``states`` given each restart's final
    log-likelihood ``final [R]`` (NaN counts as the worst)."""
    best = jnp.argmax(jnp.where(jnp.isnan(final), -jnp.inf, final))
    return FitResult(
        params=jax.tree_util.tree_map(lambda leaf: leaf[best], states.params),
        log_likelihood=final[best],
        history=states.history,
        n_iter=states.n_iter,
        converged=states.converged,
        all_params=states.params,
        all_log_likelihoods=final,
        best_restart=best,
    )


def _over_restarts(fn, batch):
    """``jax.vmap(fn)(batch)``, without the vmap for a single restart (a vmapped
    while-loop of batch size 1 was measured ~1.5x slower on a CPU)."""
    if jax.tree_util.tree_leaves(batch)[0].shape[0] == 1:
        one = fn(jax.tree_util.tree_map(lambda leaf: leaf[0], batch))
        return jax.tree_util.tree_map(lambda leaf: leaf[None], one)
    return jax.vmap(fn)(batch)


# ----------------------------------------------------------------------------------
# Public, checked entry points.


def _as_key(key) -> Array:
    if isinstance(key, int) and not isinstance(key, bool):
        return jax.random.key(key)
    if not isinstance(key, jax.Array):
        raise TypeError(f"key must be a JAX PRNG key (e.g. jax.random.key(0)) or an int, got {type(key).__name__}")
    return key


def _checked(model: Model, data, params=None, sample_weight=None):
    if not isinstance(model, Model):
        raise TypeError(f"model must be a jaxem Model, got {type(model).__name__}")
    model.check(data, params)
    if sample_weight is None:
        return None
    prepared = jax.eval_shape(model.prepare, data)
    n = jax.eval_shape(
        lambda p, d: model.latent.log_marginal(model.log_joint(p, d), d),
        params if params is not None else jax.eval_shape(model.init, jax.random.key(0), prepared),
        prepared,
    ).shape[0]
    return validation.check_sample_weight(sample_weight, n, _float_dtype(prepared))


def _checked_params(model: Model, data, params, sample_weight=None):
    if params is None:
        raise TypeError("params must be the model's parameters, got None")
    return _checked(model, data, params, sample_weight)


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

    Example:
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> params = jaxem.init(model, jax.random.key(0), x)
      >>> params, log_lik = jaxem.em_step(model, params, x)
    """
    sample_weight = _checked_params(model, data, params, sample_weight)
    chunk_size = _check_chunk_size(model, chunk_size, data)
    return _em_step_jit(model, params, data, sample_weight, chunk_size)


def init(model: Model, key, data) -> Params:
    """Draws starting parameters with the model's initializer: ``model.init``."""
    _checked(model, data)
    return jax.jit(model.init)(_as_key(key), model.prepare(data))


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
        attribute, else 10). The same EM then runs in compiled chunks between
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
        evaluations (three per SQUAREM cycle). See ``jaxem/_src/squarem.py``.

    Returns:
      A ``FitResult``.

    Example:
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> result = jaxem.fit(model, x, key=jax.random.key(0), n_restarts=16)
      >>> result.params.means, result.log_likelihood
    """
    n_restarts = validation.check_positive_int(n_restarts, "n_restarts")
    max_iter = validation.check_positive_int(max_iter, "max_iter")
    tol = validation.check_nonnegative_float(tol, "tol")
    if accelerate not in (None, "squarem"):
        raise ValueError(f"accelerate must be None or 'squarem', got {accelerate!r}")
    key = _as_key(key)
    keys = jax.random.split(key, n_restarts)
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
    sample_weight = _checked(model, data, single_init, sample_weight)
    chunk_given = chunk_size
    chunk_size = _check_chunk_size(model, chunk_size, data)
    data = model.prepare(data)
    dtype = _float_dtype(data)
    if init_params is not None:  # the loop carries params in the data's dtype
        init_params = jax.tree_util.tree_map(
            lambda leaf: leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf,
            jax.tree_util.tree_map(jnp.asarray, init_params),
        )
    tol = jnp.asarray(tol, dtype)
    if progress is not False and progress is not None:
        if accelerate is not None or (chunk_size is not None and not _auto(chunk_given)):
            raise ValueError("progress cannot be combined with accelerate or an explicit chunk_size yet")
        from jaxem._src import progress as progress_lib

        return progress_lib.fit_in_chunks(model, data, keys, init_params, sample_weight, tol, max_iter=max_iter, progress=progress)
    return _fit(model, data, keys, init_params, sample_weight, tol, max_iter=max_iter, chunk_size=chunk_size, accelerate=accelerate)


def _auto(chunk_size) -> bool:
    return isinstance(chunk_size, str) and chunk_size == "auto"


def _check_chunk_size(model: Model, chunk_size, data):
    if chunk_size is None:
        return None
    from jaxem._src import chunking

    if isinstance(chunk_size, str) and chunk_size == "auto":
        return chunking.auto_chunk_size(model, data)

    chunking.check_chunkable(model)
    return validation.check_positive_int(chunk_size, "chunk_size")


def _float_dtype(data):
    """The dtype of the first floating leaf of (prepared) data: the compute dtype."""
    for leaf in jax.tree_util.tree_leaves(data):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.dtype
    return jnp.asarray(0.0).dtype


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


@functools.partial(jax.jit, static_argnums=0)
def _posterior(model, params, data):
    data = model.prepare(data)
    return model.latent.marginals(e_step(model, params, data)[1])


@functools.partial(jax.jit, static_argnums=0)
def _score_samples(model, params, data):
    return _log_marginals(model, params, model.prepare(data))


@functools.partial(jax.jit, static_argnums=0)
def _log_likelihood(model, params, data, sample_weight):
    return e_step(model, params, model.prepare(data), sample_weight)[0]


@functools.partial(jax.jit, static_argnums=0)
def _predict(model, params, data):
    data = model.prepare(data)
    return model.latent.decode(model.log_joint(params, data), data)


def posterior(model: Model, params: Params, data) -> Array:
    """Posterior marginals of the latent variables: ``[N, K]`` for a mixture.

    Computed as the gradient of the log-likelihood with respect to the
    log-potentials.
    """
    _checked_params(model, data, params)
    return _posterior(model, params, data)


def log_likelihood(model: Model, params: Params, data, *, sample_weight=None) -> Array:
    """Total log-likelihood ``Σ_n w_n log p(x_n; θ)`` (a scalar)."""
    sample_weight = _checked_params(model, data, params, sample_weight)
    return _log_likelihood(model, params, data, sample_weight)


def score_samples(model: Model, params: Params, data) -> Array:
    """Log-likelihood of each item, ``[N]`` (each sample, or each sequence)."""
    _checked_params(model, data, params)
    return _score_samples(model, params, data)


def predict(model: Model, params: Params, data) -> Array:
    """The most probable latent values (``[N]`` component labels for a mixture)."""
    _checked_params(model, data, params)
    return _predict(model, params, data)


def sample(model: Model, params: Params, key, n: int):
    """Draws ``n`` items from the model: returns ``(x, z)``."""
    if model.sample is None:
        raise ValueError("this model does not define sample")
    n = validation.check_positive_int(n, "n")
    return model.sample(_as_key(key), params, n)


def n_parameters(model: Model, params: Params) -> int:
    """Number of free parameters of the model."""
    if model.n_parameters is None:
        raise ValueError("this model does not define n_parameters")
    return int(model.n_parameters(params))


def _n_observations_checked(model, params, data) -> Array:
    prepared = model.prepare(data)
    return _n_observations(model, params, prepared, None)


def bic(model: Model, params: Params, data) -> Array:
    """Bayesian information criterion ``-2 log L + p log n`` (lower is better)."""
    log_lik = log_likelihood(model, params, data)
    n = _n_observations_checked(model, params, data).astype(log_lik.dtype)
    return -2.0 * log_lik + n_parameters(model, params) * jnp.log(n)


def aic(model: Model, params: Params, data) -> Array:
    """Akaike information criterion ``-2 log L + 2 p`` (lower is better)."""
    log_lik = log_likelihood(model, params, data)
    return -2.0 * log_lik + 2.0 * n_parameters(model, params)

