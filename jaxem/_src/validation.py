"""Input checks for the public boundary. Never called inside jitted hot loops.

Shape and dtype checks work on tracers too (shapes are static), so they also run
when a user calls ``em_step`` under their own ``jax.jit``; value checks (NaN/inf,
ranges) run only on concrete arrays. A concrete array closed over inside a user's
``jax.jit`` stays concrete, but a ``jnp`` operation on it under the trace gives a
tracer; the public entry points therefore run their checks inside ``on_values()``
(``jax.ensure_compile_time_eval``), where ``jnp`` on concrete values computes
values, and the checks here test finiteness with NumPy.
"""

from __future__ import annotations

import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """True when ``x`` holds values (not a tracer inside ``jit``/``vmap``)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


def on_values():
    """A context in which ``jnp`` operations on concrete arrays compute values, also
    under a user's ``jax.jit`` or ``lax.scan`` (``jax.ensure_compile_time_eval``);
    operations on tracers still give tracers, which the checks skip."""
    return jax.ensure_compile_time_eval()


def all_finite(x) -> bool:
    """Whether every entry of the concrete array ``x`` is finite (NumPy, never a tracer)."""
    return bool(np.all(np.isfinite(np.asarray(x))))


def as_data(data):
    """Raw data in array form, converted once at the public boundary.

    A list (nested numbers) becomes a NumPy array; any leaf of ``data`` that is not
    a JAX or NumPy array or a number (a pandas ``DataFrame`` or ``Series``, a
    ``memoryview``) becomes ``np.asarray(leaf)``. Arrays, prepared features,
    ``Sequences`` and tuples of arrays pass unchanged; what cannot be converted is
    passed on for the model's check to reject with its own message.
    """
    if isinstance(data, list):
        data = _try_asarray(data)
    else:
        data = jax.tree_util.tree_map(_leaf_as_array, data)
    check_precision(data, "data")
    return data


def check_precision(tree, name: str) -> None:
    """``TypeError`` naming ``name`` when a leaf is a floating type narrower than
    float32 (float16, bfloat16): EM's log-likelihoods and statistics need float32
    at least, and LAPACK has no half-precision kernels."""
    for leaf in jax.tree_util.tree_leaves(tree):
        dtype = getattr(leaf, "dtype", None)
        if dtype is not None and jnp.issubdtype(dtype, jnp.floating) and jnp.dtype(dtype).itemsize < 4:
            raise TypeError(
                f"{name} has dtype {jnp.dtype(dtype).name}; jaxem computes in float32 or float64: "
                f"convert it first, e.g. {name}.astype(numpy.float32)"
            )


def _leaf_as_array(leaf):
    if isinstance(leaf, (jax.Array, np.ndarray, np.generic, numbers.Number, str, bytes)):
        return leaf
    return _try_asarray(leaf)


def _try_asarray(value):
    try:
        return np.asarray(value)
    except (TypeError, ValueError):  # ragged lists and the like: the model's check names them
        return value


def as_real_array(x, name: str, *, ragged_hint: str = ""):
    """``x`` as a real (integer, boolean or floating) array, unconverted: a JAX array
    stays one, anything else becomes a NumPy array. ``TypeError`` naming ``name``
    for strings, ``None``, ragged or object data and complex numbers."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}")
    if not isinstance(x, jax.Array):
        try:
            x = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise TypeError(f"{name} must be an array of numbers{ragged_hint}: {e}") from None
    if x.dtype == object or not (jnp.issubdtype(x.dtype, jnp.number) or jnp.issubdtype(x.dtype, jnp.bool_)):
        raise TypeError(f"{name} must be an array of numbers, got dtype {x.dtype}")
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise TypeError(f"{name} must be real, got dtype {x.dtype}")
    return x


def as_float_array(x, name: str, *, ndim=None, allow_nan: bool = False) -> jax.Array:
    """Converts ``x`` to a floating JAX array, checking rank and finiteness.

    Integers and booleans become the default float dtype (float32, or float64 with
    ``jax_enable_x64``); floating inputs keep their precision where JAX allows.
    """
    x = to_float(as_real_array(x, name))
    if ndim is not None and x.ndim not in np.atleast_1d(ndim):
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {x.shape}")
    if not allow_nan and is_concrete(x) and x.size and not all_finite(x):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def as_rows(x, name: str = "x") -> jax.Array:
    """``x`` as a finite floating ``[N, D]`` array with at least one row and column."""
    x = as_float_array(x, name, ndim=2)
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {x.shape}")
    return x


def check_n_components(n_components: int, n: int, name: str = "x") -> None:
    """``ValueError`` unless there are at least ``n_components`` samples (in ``name``,
    or in the data when ``name`` is empty)."""
    if n_components > n:
        where = f" in {name}" if name else ""
        raise ValueError(f"n_components={n_components} must be <= the number of samples{where} ({n})")


def to_float(x) -> jax.Array:
    """``x`` as a floating array (jit-safe): integers and booleans become the default
    float dtype, floating arrays are unchanged."""
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.floating):
        return x
    return x.astype(jnp.asarray(0.0).dtype)


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_nonnegative_float(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    return value


def check_sample_weight(sample_weight, n: int, dtype) -> jax.Array | None:
    """Validates per-item weights ``[N]``: finite, non-negative, not all zero."""
    if sample_weight is None:
        return None
    w = as_float_array(sample_weight, "sample_weight", ndim=1)
    if w.shape[0] != n:
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
    if is_concrete(w):
        values = np.asarray(w)
        if np.any(values < 0):
            raise ValueError("sample_weight must be non-negative")
        if not np.any(values > 0):
            raise ValueError("sample_weight must have at least one positive entry")
    return w.astype(dtype)


def check_probabilities(values, name: str, shape: tuple) -> Array:
    """A user's probability vector/rows: right shape, finite, >= 0, rows sum to one."""
    x = as_float_array(values, name, ndim=len(shape))
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {x.shape}")
    if bool(jnp.any(x < 0)):
        raise ValueError(f"{name} must be non-negative")
    if not bool(jnp.all(jnp.abs(jnp.sum(x, axis=-1) - 1.0) < 1e-4)):
        raise ValueError(f"{name} must sum to one{' along each row' if x.ndim > 1 else ''}")
    return x


def weights_and(weights, values, name: str):
    """A user's mixture ``weights [K]`` (non-negative, summing to one) and
    ``values [K, ...]`` named ``name``, in their common float dtype."""
    weights = as_float_array(weights, "weights", ndim=1)
    values = as_float_array(values, name, ndim=2)
    k = values.shape[0]
    if weights.shape != (k,):
        raise ValueError(f"weights must have shape ({k},) to match {name} {values.shape}, got {weights.shape}")
    if bool(jnp.any(weights < 0)) or abs(float(jnp.sum(weights)) - 1.0) > 1e-4:
        raise ValueError("weights must be non-negative and sum to one")
    dtype = jnp.result_type(weights.dtype, values.dtype)
    return weights.astype(dtype), values.astype(dtype)


FLOAT64_DROPPED = (
    "{name} is float64 but jax_enable_x64 is off, so jaxem computes in float32; "
    'call jax.config.update("jax_enable_x64", True) before using JAX to fit in float64'
)


def warn_if_float64_dropped(tree, name: str) -> None:
    """A ``UserWarning`` (once per calling line, Python's default) when a NumPy
    leaf of ``tree`` is float64 while ``jax_enable_x64`` is off: JAX would
    silently compute in float32."""
    if jax.config.jax_enable_x64:
        return
    for leaf in jax.tree_util.tree_leaves(tree):
        if isinstance(leaf, np.ndarray) and leaf.dtype == np.float64:
            warnings.warn(FLOAT64_DROPPED.format(name=name), UserWarning, stacklevel=4)
            return


# Tolerance on the sums of probabilities in params (float32 rounding of EM's output
# is ~1e-6; a user's rounded table ~1e-4).
SIMPLEX_TOLERANCE = 1e-3


def check_param_values(values, name: str, *, simplex: bool = False, positive: bool = False, unit: bool = False) -> None:
    """``ValueError`` naming ``params.<name>`` unless concrete ``values`` are finite
    and, as asked, rows on the simplex (non-negative, summing to one within
    ``SIMPLEX_TOLERANCE`` along the last axis), positive, or in ``[0, 1]``.
    Tracers (inside ``jit``) are not checked."""
    if not is_concrete(values):
        return
    values = np.asarray(values)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"params.{name} contains NaN or infinite values")
    if simplex and (np.any(values < 0) or np.any(np.abs(np.sum(values, axis=-1) - 1.0) > SIMPLEX_TOLERANCE)):
        rows = " along each row" if values.ndim > 1 else ""
        raise ValueError(f"params.{name} must be non-negative and sum to one{rows}")
    if positive and np.any(values <= 0):
        raise ValueError(f"params.{name} must be positive")
    if unit and (np.any(values < 0) or np.any(values > 1)):
        raise ValueError(f"params.{name} must lie in [0, 1]")


def prior_fields(prior, prior_type: type, name: str = "prior"):
    """A prior NamedTuple of ``prior_type`` with its fields as finite float64 NumPy
    arrays. A plain tuple of its fields (how a saved model's options are read
    back) is accepted; ``TypeError``/``ValueError`` naming ``name`` otherwise."""
    if isinstance(prior, (tuple, list)) and not hasattr(prior, "_fields") and len(prior) == len(prior_type._fields):
        prior = prior_type(*prior)
    if not isinstance(prior, prior_type):
        raise TypeError(f"{name} must be a jaxem.priors.{prior_type.__name__}, got {type(prior).__name__}")
    fields = []
    for field, value in zip(prior._fields, prior):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name}.{field} must be a number or an array of numbers, got {type(value).__name__}") from None
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name}.{field} must be finite")
        fields.append(array)
    return prior_type(*fields)
