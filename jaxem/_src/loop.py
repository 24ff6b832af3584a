"""The one loop: any algorithm, in ``lax.while_loop``, vmapped over restarts.

``run`` steps an ``Algorithm`` until the change of the objective per observation
falls below ``tol``, the objective becomes NaN, or ``stop`` EM-map evaluations;
the stopping rule and the history are written here once, for every algorithm.
``run`` takes and returns a ``RunState``, so a fit can be resumed where it stopped
(the progress driver does that between reports). ``fit_restarts`` is the whole
compiled fit: starting params, every restart under ``vmap``, the final
log-likelihood of each, the best restart.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxem._src import display
from jaxem._src import update as update_lib
from jaxem._src.algorithms import Algorithm, em
from jaxem._src.base import Array, Model
from jaxem._src.inference import n_observations


class RunState(NamedTuple):
    """What the loop carries for one restart.

    Attributes:
      state: the algorithm's carried state (``EMState``, ``SquaremState``).
      mean_log_likelihood: the objective per observation at the start of the last
        step (``-inf`` before the first).
      n_iter: EM-map evaluations so far (EM steps; three per SQUAREM step).
      converged: whether the last change of ``mean_log_likelihood`` was below tol.
      history: ``[max_iter]`` the objective (log-likelihood, plus the log prior
        for a model with one) after each evaluation, NaN after the loop stopped.
    """

    state: Any
    mean_log_likelihood: Array
    n_iter: Array
    converged: Array
    history: Array


class FitResult(NamedTuple):
    """What ``fit`` reports (a pytree).

    Attributes:
      params: the parameters of the best restart.
      log_likelihood: total log-likelihood of exactly ``params``.
      history: ``[n_restarts, max_iter]`` traces of the objective EM ascends; entry
        ``t`` is that of the parameters before update ``t``; NaN after a restart
        stopped. The objective is the log-likelihood, or for a model with a prior
        (MAP-EM) the log posterior ``log-likelihood + log_prior`` (up to a constant).
      n_iter: ``[n_restarts]`` EM steps taken by each restart.
      converged: ``[n_restarts]`` whether each restart met the tolerance.
      all_params: every restart's final parameters (leading axis ``n_restarts``).
      all_log_likelihoods: ``[n_restarts]`` total log-likelihood of each restart's
        final parameters.
      best_restart: index of the restart returned in ``params`` (the highest
        log-likelihood, or log posterior for a model with a prior).
      log_prior: the model's log prior density at ``params`` (up to a constant;
        0 for a model without a prior). ``bic``/``aic`` use ``log_likelihood`` alone.
    """

    params: Any
    log_likelihood: Array
    history: Array
    n_iter: Array
    converged: Array
    all_params: Any
    all_log_likelihoods: Array
    best_restart: Array
    log_prior: Optional[Array] = None

    __repr__ = display.fit_result_repr


def start(algorithm: Algorithm, params, dtype, max_iter: int) -> RunState:
    """The ``RunState`` before the first step (one restart)."""
    return RunState(
        state=algorithm.init(params),
        mean_log_likelihood=jnp.asarray(-jnp.inf, dtype),
        n_iter=jnp.asarray(0, jnp.int32),
        converged=jnp.asarray(False),
        history=jnp.full((max_iter,), jnp.nan, dtype),
    )


def keep_going(run_state: RunState, stop) -> Array:
    """Whether the loop goes on: fewer than ``stop`` evaluations, not converged, not NaN."""
    return (run_state.n_iter < stop) & ~run_state.converged & ~jnp.isnan(run_state.mean_log_likelihood)


def run(algorithm: Algorithm, run_state: RunState, n_obs: Array, *, stop, tol) -> RunState:
    """Steps ``algorithm`` from ``run_state`` until ``keep_going`` fails (one restart)."""
    offsets = jnp.arange(algorithm.evaluations, dtype=jnp.int32)

    def body(run_state: RunState) -> RunState:
        state, info = algorithm.step(run_state.state)
        mean = info.objective / n_obs.astype(run_state.mean_log_likelihood.dtype)
        converged = jnp.abs(mean - run_state.mean_log_likelihood) < tol
        history = run_state.history.at[run_state.n_iter + offsets].set(info.trace, mode="drop")
        return RunState(state, mean, run_state.n_iter + algorithm.evaluations, converged, history)

    return jax.lax.while_loop(lambda run_state: keep_going(run_state, stop), body, run_state)


def best_restart(algorithm: Algorithm, run_states: RunState, final: Array, final_log_prior: Optional[Array] = None) -> FitResult:
    """The ``FitResult`` of vmapped ``run_states`` given each restart's final
    log-likelihood ``final [R]`` and log prior ``final_log_prior [R]`` (zeros when
    ``None``), ranked by their sum (NaN counts as the worst)."""
    if final_log_prior is None:
        final_log_prior = jnp.zeros_like(final)
    objective = final + final_log_prior
    best = jnp.argmax(jnp.where(jnp.isnan(objective), -jnp.inf, objective))
    all_params = jax.vmap(algorithm.params)(run_states.state)
    return FitResult(
        params=jax.tree_util.tree_map(lambda leaf: leaf[best], all_params),
        log_likelihood=final[best],
        history=run_states.history,
        n_iter=run_states.n_iter,
        converged=run_states.converged,
        all_params=all_params,
        all_log_likelihoods=final,
        best_restart=best,
        log_prior=final_log_prior[best],
    )


def over_restarts(fn: Callable, batch):
    """``jax.vmap(fn)(batch)``, without the vmap for a single restart (a vmapped
    while-loop of batch size 1 was measured ~1.5x slower on a CPU)."""
    if jax.tree_util.tree_leaves(batch)[0].shape[0] == 1:
        one = fn(jax.tree_util.tree_map(lambda leaf: leaf[0], batch))
        return jax.tree_util.tree_map(lambda leaf: leaf[None], one)
    return jax.vmap(fn)(batch)


def _log_likelihood_dtype(model: Model, params, data):
    return jax.eval_shape(lambda p: update_lib.total_log_likelihood(model, p, data), params).dtype


def starting_params(model: Model, data, keys, init_params):
    """``init_params`` (a batch), or ``model.init`` drawn with each key."""
    if init_params is None:
        return jax.vmap(model.init, in_axes=(0, None))(keys, data)
    return init_params


def restart_states(model: Model, make_algorithm, data, keys, init_params, sample_weight, max_iter: int):
    """``(algorithm, [R] RunStates before the first step, n_obs)``."""
    algorithm = make_algorithm(update_lib.em_map(model, data, sample_weight))
    params = starting_params(model, data, keys, init_params)
    one = jax.tree_util.tree_map(lambda leaf: leaf[0], params)
    n_obs = n_observations(model, one, data, sample_weight)
    dtype = _log_likelihood_dtype(model, one, data)
    return algorithm, jax.vmap(lambda p: start(algorithm, p, dtype, max_iter))(params), n_obs


def finish(model: Model, algorithm: Algorithm, data, run_states: RunState, sample_weight) -> FitResult:
    """The best restart, ranked by the log-likelihood (plus log prior) of each
    restart's final params."""
    final = over_restarts(
        lambda state: update_lib.total_log_likelihood(model, algorithm.params(state), data, sample_weight),
        run_states.state,
    )
    log_priors = over_restarts(lambda state: update_lib.log_prior(model, algorithm.params(state)).astype(final.dtype), run_states.state)
    return best_restart(algorithm, run_states, final, log_priors)


@functools.partial(jax.jit, static_argnames=("model", "make_algorithm", "max_iter"))
def fit_restarts(model: Model, data, keys, init_params, sample_weight, tol, *, make_algorithm, max_iter: int) -> FitResult:
    """The whole fit as one compiled program (arguments checked and prepared)."""
    algorithm, run_states, n_obs = restart_states(model, make_algorithm, data, keys, init_params, sample_weight, max_iter)
    run_states = over_restarts(lambda s: run(algorithm, s, n_obs, stop=max_iter, tol=tol), run_states)
    return finish(model, algorithm, data, run_states, sample_weight)


def run_em(model: Model, params, data, *, max_iter: int, tol, sample_weight=None, make_algorithm: Optional[Callable] = None) -> RunState:
    """Runs EM (or ``make_algorithm``) from ``params`` in a ``lax.while_loop``
    (one restart; pure, unchecked; ``data`` raw or prepared).

    Stops when the change in log-likelihood per observation falls below ``tol``,
    when the log-likelihood becomes NaN, or after ``max_iter`` evaluations.
    ``algorithm.params(result.state)`` (``result.state.params`` for EM) are the
    final parameters.

    Examples:
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> params = jaxem.init(model, jax.random.key(0), x)
      >>> run = jaxem.run_em(model, params, model.prepare(x), max_iter=50, tol=1e-6)   # one restart
      >>> run.state.params.means.shape
      (2, 2)
    """
    data = model.prepare(data)
    algorithm = (em if make_algorithm is None else make_algorithm)(update_lib.em_map(model, data, sample_weight))
    n_obs = n_observations(model, params, data, sample_weight)
    run_state = start(algorithm, params, _log_likelihood_dtype(model, params, data), max_iter)
    return run(algorithm, run_state, n_obs, stop=max_iter, tol=tol)
