"""Several mixtures of different ``n_components`` in one compiled program.

A sweep over K (``jaxem.bic`` of K = 1..8) compiled one fit per K. Here the
models are padded to the largest K: each model's own ``init`` draws its starting
params (so they are exactly what ``jaxem.fit`` would start from), the missing
components get weight exactly 0, and the restarts of every model run together
under one ``vmap`` of the padded model's loop. A component of weight 0 stays
out of the fit: its log-potential is ``log 0 = -inf`` (so its responsibility is
exactly 0), the M-step keeps a zero weight zero (a structural zero,
``expfam.mixture_weights``), and its other fields are held at their starting
values (``held_components``), so they stay finite. Each model's results are the
first K components of its restarts: the same fit as ``jaxem.fit`` of that model,
up to the order of floating-point sums.

Models are grouped by their options other than ``n_components`` (a covariance
type is another shape of params); each group is one program.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import algorithms, chunking, engine, loop, registry, validation
from jaxem._src import update as update_lib
from jaxem._src.base import Array, Model
from jaxem._src.inference import float_dtype
from jaxem._src.loop import FitResult

# (padded model, per-component mask) -> the model holding padded components fixed;
# memoized so that equal sweeps hit the jit cache.
_HELD: dict = {}


class ModelsResult(NamedTuple):
    """What ``fit_models`` reports.

    Attributes:
      results: one ``FitResult`` per model, in the order given (params with that
        model's own K components).
      bic: ``[M]`` NumPy float64, BIC of each model's best params on the data
        (lower is better; ``jaxem.bic`` of those params, up to rounding).
      aic: ``[M]`` NumPy float64, AIC of each.
      best: index of the model with the lowest BIC.
    """

    results: tuple
    bic: Array
    aic: Array
    best: int


def component_axes(model: Model, padded: Model, data) -> Any:
    """A pytree of bools like the params: ``True`` for the leaves whose axis 0 is
    the component axis (their shape differs between ``model`` and the padded one)."""
    key = jax.random.key(0)
    small = jax.eval_shape(model.init, key, data)
    large = jax.eval_shape(padded.init, key, data)

    def differs(a, b):
        if a.shape == b.shape:
            return False
        if a.shape[1:] != b.shape[1:]:
            raise ValueError(
                "fit_models pads mixture components along axis 0 of the params; these params differ "
                f"in another axis ({a.shape} vs {b.shape})"
            )
        return True

    return jax.tree_util.tree_map(differs, small, large)


def held_components(padded: Model, per_component) -> Model:
    """``padded`` whose M-step keeps the fields of components of weight 0 unchanged."""
    key = (padded, jax.tree_util.tree_structure(per_component), tuple(jax.tree_util.tree_leaves(per_component)))
    if key in _HELD:
        return _HELD[key]
    additive = padded.additive

    def hold(new, old):
        active = old.weights > 0

        def keep(is_component, n, o):
            if not is_component:
                return n
            mask = active.reshape(active.shape + (1,) * (n.ndim - 1))
            return jnp.where(mask, n, o)

        return jax.tree_util.tree_map(keep, per_component, new, old)

    def maximize(statistics, data, params):
        return hold(additive.maximize(statistics, data, params), params)

    _HELD[key] = padded._replace(m_step=additive._replace(maximize=maximize))
    return _HELD[key]


def pad_components(params, per_component, k_max: int):
    """``params`` of K components padded to ``k_max``: weights 0, every other
    per-component field a copy of component 0 (finite, valid values)."""

    def pad(is_component, leaf, name_is_weights):
        if not is_component:
            return leaf
        extra = k_max - leaf.shape[1]  # leaves are batched over restarts: [R, K, ...]
        if name_is_weights:
            filler = jnp.zeros((leaf.shape[0], extra) + leaf.shape[2:], leaf.dtype)
        else:
            filler = jnp.repeat(leaf[:, :1], extra, axis=1)
        return jnp.concatenate([leaf, filler], axis=1)

    is_weights = params._replace(**{f: f == "weights" for f in params._fields})
    return jax.tree_util.tree_map(pad, per_component, params, is_weights)


@functools.partial(jax.jit, static_argnames=("models", "held", "masks", "make_algorithm", "max_iter"))
def fit_group(models, held: Model, masks, data, keys, sample_weight, tol, *, make_algorithm, max_iter: int):
    """One program: every model's restarts from its own ``init`` (one per key),
    padded to the largest K and fitted together with the padded model ``held``;
    one ``FitResult`` per model, cut back to its own components, and the number
    of observations.

    ``masks``: one per model, a pytree of bools like its params, ``True`` for the
    per-component leaves (``component_axes``). Measured: the models' seedings
    compiled inside this program took less time in all than as separate programs.
    """
    k_max = jax.eval_shape(held.init, keys[0], data).weights.shape[0]
    starts = [pad_components(jax.vmap(m.init, in_axes=(0, None))(keys, data), mask, k_max) for m, mask in zip(models, masks)]
    init_params = jax.tree_util.tree_map(lambda *leaves: jnp.concatenate(leaves), *starts)
    algorithm, run_states, n_obs = loop.restart_states(held, make_algorithm, data, None, init_params, sample_weight, max_iter)
    run_states = loop.over_restarts(lambda s: loop.run(algorithm, s, n_obs, stop=max_iter, tol=tol), run_states)
    final = loop.over_restarts(
        lambda state: update_lib.total_log_likelihood(held, algorithm.params(state), data, sample_weight), run_states.state
    )
    r = keys.shape[0]
    results = []
    for i, (model, mask) in enumerate(zip(models, masks)):
        part = jax.tree_util.tree_map(lambda leaf: leaf[i * r : (i + 1) * r], run_states)
        k = jax.eval_shape(model.init, keys[0], data).weights.shape[0]
        results.append(first_components(loop.best_restart(algorithm, part, final[i * r : (i + 1) * r]), mask, k))
    return tuple(results), n_obs


def first_components(result: FitResult, per_component, k: int) -> FitResult:
    """``result`` with the params (and every restart's) cut to the first ``k`` components."""

    def cut(batch_axes: int):
        def take(is_component, leaf):
            return leaf[(slice(None),) * batch_axes + (slice(0, k),)] if is_component else leaf

        return take

    return result._replace(
        params=jax.tree_util.tree_map(cut(0), per_component, result.params),
        all_params=jax.tree_util.tree_map(cut(1), per_component, result.all_params),
    )


def group_key(model: Model):
    """The options of a registered model other than ``n_components`` (``None`` if
    it is not registered or has no ``n_components``)."""
    if model.spec is None:
        return None
    options = dict(model.spec.options)
    if "n_components" not in options:
        return None
    options.pop("n_components")
    return (model.spec.factory, tuple(sorted(options.items())))


def criteria(model: Model, params, log_likelihood: Array, n_obs: Array) -> tuple[float, float]:
    """``(bic, aic)`` from a log-likelihood and the number of observations (in
    NumPy, so that no small program is compiled for them)."""
    p = model.n_parameters(params)
    log_lik = float(log_likelihood)
    return -2.0 * log_lik + p * math.log(float(n_obs)), -2.0 * log_lik + 2.0 * p


def check_models(models) -> tuple:
    """``models`` as a tuple, each a registered exponential-family mixture."""
    if isinstance(models, Model) or not isinstance(models, Sequence) or isinstance(models, str) or not models:
        raise TypeError("models must be a non-empty list of jaxem Models (e.g. [gaussian_mixture(k) for k in range(1, 9)])")
    for i, model in enumerate(models):
        if not isinstance(model, Model):
            raise TypeError(f"models[{i}] must be a jaxem Model, got {type(model).__name__}")
        if group_key(model) is None or model.additive is None:
            raise ValueError(
                f"models[{i}] must be a registered exponential-family mixture with an n_components option "
                "(e.g. jaxem.models.gaussian_mixture(k)); fit other models one by one with jaxem.fit"
            )
        if model.log_prior is not None:
            raise ValueError(f"models[{i}] has a prior (MAP-EM), which fit_models does not pad; fit it with jaxem.fit")
    return tuple(models)


def fit_models(
    models: Sequence[Model],
    data,
    *,
    key,
    n_restarts: int = 1,
    max_iter: int = 100,
    tol: float = 1e-3,
    sample_weight=None,
    algorithm="em",
) -> ModelsResult:
    """Fits several mixtures that differ in ``n_components`` in one compiled program.

    Each model gets the restarts ``jaxem.fit(model, data, key=key,
    n_restarts=n_restarts, ...)`` would give it (the same keys, the same
    seeding), so its result is that fit's up to the order of floating-point
    sums; all run together, padded to the largest K with components of weight 0
    that stay 0. Models that differ in other options (e.g. ``covariance_type``)
    are fitted in one program per set of options.

    Args:
      models: registered exponential-family mixtures (``gaussian_mixture``,
        ``poisson_mixture``, ...), e.g. ``[gaussian_mixture(k) for k in range(1, 9)]``.
      data: raw ``[N, D]`` data (or data prepared by the models).
      key, n_restarts, max_iter, tol, sample_weight, algorithm: as in ``jaxem.fit``.

    Returns:
      A ``ModelsResult``: one ``FitResult`` per model, their BIC and AIC, and the
      index of the lowest BIC.

    Examples:
      >>> import jaxem
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> models = [jaxem.models.gaussian_mixture(k) for k in (1, 2, 3)]
      >>> sweep = jaxem.fit_models(models, x.astype("float32"), key=0, n_restarts=4)
      >>> int(sweep.best), sweep.results[1].params.means.shape
      (1, (2, 2))
    """
    models = check_models(models)
    n_restarts = validation.check_positive_int(n_restarts, "n_restarts")
    max_iter = validation.check_positive_int(max_iter, "max_iter")
    tol = validation.check_nonnegative_float(tol, "tol")
    make_algorithm = algorithms.resolve(algorithm)
    keys = jax.random.split(engine.as_key(key), n_restarts)
    data = validation.as_data(data)
    for model in models:
        sample_weight = engine.check_inputs(model, data, None, sample_weight)
    groups: dict = {}
    for i, model in enumerate(models):
        groups.setdefault(group_key(model), []).append(i)
    results: list = [None] * len(models)
    n_obs = None
    for indices in groups.values():
        group = tuple(models[i] for i in indices)
        k_max = max(dict(m.spec.options)["n_components"] for m in group)
        spec = group[0].spec
        padded = registry.build(spec._replace(options=tuple(
            (name, k_max if name == "n_components" else value) for name, value in spec.options)))
        padded = chunking.with_chunk_size(padded, "auto", data)
        prepared = padded.prepare(data)
        tol_array = jnp.asarray(tol, float_dtype(prepared))
        masks = tuple(component_axes(m, padded, prepared) for m in group)
        union = jax.tree_util.tree_map(lambda *flags: any(flags), *masks)
        held = held_components(padded, union)
        fitted, n_obs = fit_group(
            group, held, masks, prepared, keys, sample_weight, tol_array, make_algorithm=make_algorithm, max_iter=max_iter
        )
        for i, result in zip(indices, fitted):
            results[i] = result
    scores = [criteria(model, result.params, result.log_likelihood, n_obs) for model, result in zip(models, results)]
    bic = np.asarray([s[0] for s in scores])
    aic = np.asarray([s[1] for s in scores])
    return ModelsResult(tuple(results), bic, aic, int(np.argmin(bic)))
