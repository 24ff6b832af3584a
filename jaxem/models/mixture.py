"""Models from a user's own log-density: ``mixture`` and ``latent_model``.

``mixture`` takes the log-density of ONE component at ONE sample and builds the
whole mixture: jaxem vmaps it over samples and components, keeps the mixing
weights (closed-form update), and fits the component params with the gradient
M-step (``jaxem.gradient_m_step``). ``latent_model`` takes a full
``log_joint(params, data) -> log_potentials`` for any discrete latent structure.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jaxem._src import constraints as constraints_lib
from jaxem._src import validation
from jaxem._src.base import Array, FreezableMStep, Latent, Model, mixture_latent
from jaxem._src.display import params_repr
from jaxem._src.expfam import mixture_weights
from jaxem._src.registry import memoized
from jaxem._src.generic_m_step import (
    check_optimizer_and_constraints,
    DEFAULT_INNER_STEPS,
    expected_log_joint,
    gradient_m_step,
    maximize,
    resolve_mask,
    select,
)


class MixtureParams(NamedTuple):
    """Parameters of a user-defined mixture.

    Attributes:
      weights: ``[K]`` mixing weights.
      components: the user's component params, every leaf stacked along a leading
        axis of size K (``components.loc[k]`` is component k's ``loc``).
    """

    weights: Array
    components: Any

    __repr__ = params_repr


def _first_float_dtype(data):
    for leaf in jax.tree_util.tree_leaves(data):
        if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating):
            return jnp.asarray(leaf).dtype
    return jnp.asarray(0.0).dtype


def check_data(data) -> int:
    """Checks a data pytree (leaves share a leading sample axis; finite); returns N."""
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError("data must hold at least one array")
    name = "data" if len(leaves) > 1 else "x"
    sizes = set()
    for leaf in leaves:
        leaf = validation.as_float_array(leaf, name) if not isinstance(leaf, jax.core.Tracer) else leaf
        if jnp.ndim(leaf) == 0:
            raise ValueError(f"{name} must have a leading sample axis, got a scalar")
        sizes.add(jnp.shape(leaf)[0])
    if len(sizes) != 1:
        raise ValueError(f"every array in {name} must have the same number of samples, got {sorted(sizes)}")
    n = sizes.pop()
    if n == 0:
        raise ValueError(f"{name} must have at least one sample")
    return n


@memoized
def mixture(
    component_log_prob: Callable[[Any, Any], Array],
    init: Callable[[Array, Any], Any],
    *,
    n_components: int,
    constraints: Any = None,
    optimizer: Optional[optax.GradientTransformation] = None,
    inner_steps: int = DEFAULT_INNER_STEPS,
    sample_component: Optional[Callable[[Array, Any], Any]] = None,
) -> Model:
    """A finite mixture of a user-written component density, fitted by (generalized) EM.

    Args:
      component_log_prob: ``(component_params, x) -> scalar``, log p(x | z=k) for
        ONE component's params and ONE sample ``x`` (a row of the data, or one
        slice of every leaf of a data pytree). Plain JAX; jaxem vmaps it.
      init: ``(key, data) -> component_params``, draws ONE component's starting
        params from the whole data (e.g. a random row as its location); jaxem
        calls it with K keys and starts from equal weights.
      n_components: number of components K.
      constraints: a pytree like one component's params, with a
        ``jaxem.constraints`` bijection (or ``None``) per leaf, e.g.
        ``{"loc": None, "scale": constraints.positive()}``.
      optimizer: optax optimizer of the component M-step (default L-BFGS).
      inner_steps: optimizer steps per M-step.
      sample_component: optional ``(key, component_params) -> x`` drawing one
        sample, which enables ``jaxem.sample``.

    Returns:
      A ``Model`` with ``MixtureParams(weights [K], components)``. The weights
      update is closed form (expected counts with a 10·eps pseudo-count); the
      components take ``inner_steps`` gradient steps on Q warm-started at the
      current params, never lowering Q.

    Examples:
      >>> from jaxem import constraints
      >>> def log_prob(c, x):               # one component, one row [D]
      ...     return jnp.sum(jax.scipy.stats.t.logpdf(x, c["df"], c["loc"], c["scale"]))
      >>> def init(key, x):                 # one component's starting params
      ...     loc = x[jax.random.randint(key, (), 0, x.shape[0])]
      ...     return {"loc": loc, "scale": jnp.std(x, axis=0), "df": jnp.full(x.shape[1:], 5.0, x.dtype)}
      >>> model = jaxem.models.mixture(log_prob, init, n_components=2,
      ...     constraints={"loc": None, "scale": constraints.positive(), "df": constraints.positive()},
      ...     inner_steps=10)
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> result = jaxem.fit(model, x, key=0, n_restarts=2, max_iter=10)
      >>> result.params.components["loc"].shape                  # leaves stacked [K, ...]
      (2, 2)
    """
    n_components = validation.check_positive_int(n_components, "n_components")
    inner_steps = validation.check_positive_int(inner_steps, "inner_steps")
    check_optimizer_and_constraints(optimizer, constraints)

    def component_log_probs(components, data) -> Array:
        per_sample = lambda x: jax.vmap(component_log_prob, in_axes=(0, None))(components, x)  # noqa: E731
        return jax.vmap(per_sample)(data)

    def log_joint(params: MixtureParams, data) -> Array:
        table = component_log_probs(params.components, data)
        return table + jnp.log(params.weights).astype(table.dtype)[None, :]

    def init_params(key, data) -> MixtureParams:
        components = jax.vmap(init, in_axes=(0, None))(jax.random.split(key, n_components), data)
        dtype = _first_float_dtype(data)
        return MixtureParams(jnp.full((n_components,), 1.0 / n_components, dtype), components)

    def make_m_step(frozen):
        def m_step(data, posterior, params: MixtureParams) -> MixtureParams:
            mask = resolve_mask(frozen, params)

            def q(components):
                return expected_log_joint(posterior, component_log_probs(components, data))

            total = jax.lax.stop_gradient(jnp.sum(posterior))
            components, _, _ = maximize(
                q,
                params.components,
                constraints=constraints,
                optimizer=optimizer,
                inner_steps=inner_steps,
                frozen=mask.components,
                scale=jnp.maximum(total, jnp.finfo(total.dtype).tiny),
            )
            weights = mixture_weights(jnp.sum(posterior, axis=0), params.weights).astype(params.weights.dtype)
            return MixtureParams(select(mask.weights, params.weights, weights), components)

        return FreezableMStep(m_step, make_m_step)

    def check(data, params=None):
        n = check_data(data)
        if params is None:
            validation.check_n_components(n_components, n, name="")
            return
        if not isinstance(params, MixtureParams):
            raise TypeError(f"params must be MixtureParams, got {type(params).__name__}")
        if tuple(jnp.shape(params.weights)) != (n_components,):
            raise ValueError(f"params.weights must have shape ({n_components},), got {jnp.shape(params.weights)}")
        for leaf in jax.tree_util.tree_leaves(params.components):
            if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != n_components:
                raise ValueError(f"every leaf of params.components needs a leading axis of n_components={n_components}")

    def sample(key, params: MixtureParams, n: int):
        z_key, x_key = jax.random.split(key)
        z = jax.random.categorical(z_key, jnp.log(params.weights), shape=(n,))

        def one(k, label):
            return sample_component(k, jax.tree_util.tree_map(lambda leaf: leaf[label], params.components))

        return jax.vmap(one)(jax.random.split(x_key, n), z), z

    def n_parameters(params: MixtureParams) -> int:
        return n_components - 1 + constraints_lib.n_free_parameters(constraints, params.components)

    return Model(
        init=init_params,
        log_joint=log_joint,
        latent=mixture_latent(),
        m_step=make_m_step(None),
        check=check,
        sample=None if sample_component is None else sample,
        n_parameters=n_parameters,
    )


@memoized
def latent_model(
    log_joint: Callable[[Any, Any], Any],
    init: Callable[[Array, Any], Any],
    *,
    latent: Optional[Latent] = None,
    constraints: Any = None,
    optimizer: Optional[optax.GradientTransformation] = None,
    inner_steps: int = DEFAULT_INNER_STEPS,
    prepare: Optional[Callable[[Any], Any]] = None,
    check: Optional[Callable[..., None]] = None,
    sample: Optional[Callable[[Array, Any, int], Any]] = None,
    n_parameters: Optional[Callable[[Any], int]] = None,
) -> Model:
    """A model from a full user ``log_joint``, fitted with the gradient M-step.

    Use it for discrete-latent structures other than "one weight vector plus K
    components" (shared parameters across components, mixing weights that are
    functions of other params, ...).

    Args:
      log_joint: ``(params, data) -> log_potentials``: log p(x_n, z; θ) for every
        value of the latent, ``[N, K]`` for ``jaxem.mixture_latent()``.
      init: ``(key, data) -> params``.
      latent: the latent structure (default ``jaxem.mixture_latent()``).
      constraints: a pytree like the params of ``jaxem.constraints`` bijections
        (or ``None`` per leaf); e.g. ``constraints.simplex()`` for weights.
      optimizer: optax optimizer of the M-step (default L-BFGS).
      inner_steps: optimizer steps per M-step.
      prepare: optional ``data -> data`` run once per fit (must be idempotent).
      check: optional ``(data, params=None) -> None`` input check; by default the
        data leaves must share a leading sample axis and be finite.
      sample: optional ``(key, params, n) -> (x, z)``.
      n_parameters: optional ``params -> int``; by default the free parameters
        counted from ``constraints`` (``simplex`` counts ``K - 1``).

    Returns:
      A ``Model`` whose ``m_step`` is ``jaxem.gradient_m_step(log_joint, ...)``.

    Examples:
      >>> from jaxem import constraints
      >>> def log_joint(p, x):  # two Gaussians sharing one scale: [N] -> [N, 2]
      ...     return jnp.log(p["w"])[None, :] + jax.scipy.stats.norm.logpdf(x[:, None], p["mu"][None, :], p["s"])
      >>> def init(key, x):
      ...     mu = jax.random.choice(key, x, (2,), replace=False)
      ...     return {"w": jnp.full(2, 0.5, x.dtype), "mu": mu, "s": jnp.std(x)}
      >>> model = jaxem.models.latent_model(log_joint, init,
      ...     constraints={"w": constraints.simplex(), "mu": None, "s": constraints.positive()})
      >>> x = jnp.asarray(np.random.default_rng(0).normal([-2.0, 2.0] * 100))  # [200]
      >>> result = jaxem.fit(model, x, key=0, n_restarts=2, max_iter=20)
      >>> result.params["mu"].shape
      (2,)
    """
    inner_steps = validation.check_positive_int(inner_steps, "inner_steps")

    def default_check(data, params=None):
        del params
        check_data(data)

    return Model(
        init=init,
        log_joint=log_joint,
        latent=mixture_latent() if latent is None else latent,
        m_step=gradient_m_step(log_joint, constraints=constraints, optimizer=optimizer, inner_steps=inner_steps),
        prepare=(lambda data: data) if prepare is None else prepare,
        check=default_check if check is None else check,
        sample=sample,
        n_parameters=n_parameters or (lambda params: constraints_lib.n_free_parameters(constraints, params)),
    )
