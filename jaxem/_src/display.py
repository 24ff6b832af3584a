"""Short, readable reprs for params, fit results and models.

A ``FitResult`` holds every restart's history (``[n_restarts, max_iter]``, mostly
NaN), so NamedTuple's default repr runs to thousands of characters; a ``Model`` is
a bundle of closures whose default repr is function addresses. These reprs show
what a reader looks for: shapes, a few values, the log-likelihood, how many
restarts converged, the factory and options a model was built from. They never
fail on tracers (shapes and dtypes only) and never exceed a few hundred characters
per field.

Examples:
  >>> import jax.numpy as jnp
  >>> array_summary(jnp.arange(6.0).reshape(2, 3))
  'f32[2,3] [[0. 1. 2.] [3. 4. 5.]]'
"""

from __future__ import annotations

import numpy as np

MAX_VALUES = 6  # arrays with more entries show their shape and range only


def _dtype_code(dtype) -> str:
    dtype = np.dtype(dtype)
    return {"f": "f", "i": "i", "u": "u", "b": "bool", "c": "c"}.get(dtype.kind, dtype.kind) + (
        "" if dtype.kind == "b" else str(8 * dtype.itemsize)
    )


def _is_concrete(leaf) -> bool:
    try:
        np.asarray(leaf)
        return True
    except Exception:  # a tracer (under jit, vmap, grad)
        return False


def array_summary(leaf) -> str:
    """``'f32[3,2] <values>'``: dtype code, shape, then every value for at most
    ``MAX_VALUES`` entries, else the range ``min..max`` (shape and dtype only for
    tracers)."""
    shape = tuple(np.shape(leaf))
    dtype = getattr(leaf, "dtype", np.asarray(leaf).dtype if _is_concrete(leaf) else "float32")
    head = f"{_dtype_code(dtype)}[{','.join(map(str, shape))}]"
    if not _is_concrete(leaf):
        return head + " (traced)"
    values = np.asarray(leaf)
    if values.size == 0:
        return head
    if values.size <= MAX_VALUES:
        text = np.array2string(values, precision=4, separator=" ", suppress_small=False)
        return f"{head} {' '.join(text.split())}"
    if values.dtype.kind in "fiu":
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        if finite.size == 0:
            return f"{head} all non-finite"
        return f"{head} {finite.min():.4g}..{finite.max():.4g}"
    return head


def params_repr(params) -> str:
    """``TypeName(field=f32[K,D] ..., ...)`` for a params NamedTuple (or any
    NamedTuple of arrays)."""
    fields = ", ".join(f"{name}={_leaf_or_tree(value)}" for name, value in zip(params._fields, params))
    return f"{type(params).__name__}({fields})"


def _leaf_or_tree(value) -> str:
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return params_repr(value)
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_leaf_or_tree(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_leaf_or_tree(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    return array_summary(value)


def fit_result_repr(result) -> str:
    """``FitResult(log_likelihood=..., converged=3/4 restarts, n_iter=..., params=...)``:
    the best restart's log-likelihood and iterations, how many restarts met ``tol``,
    the history's shape (not its values), and the params in short form."""
    extras = []
    converged = result.converged
    if _is_concrete(converged) and _is_concrete(result.log_likelihood):
        converged = np.asarray(converged).reshape(-1)
        best = int(np.asarray(result.best_restart)) if _is_concrete(result.best_restart) else 0
        n_iter = np.asarray(result.n_iter).reshape(-1)
        extras.append(f"log_likelihood={float(np.asarray(result.log_likelihood)):.6g}")
        extras.append(f"converged={int(converged.sum())}/{converged.size} restarts")
        extras.append(f"n_iter={int(n_iter[best]) if n_iter.size else 0} (best restart {best})")
    else:
        extras.append(f"log_likelihood={array_summary(result.log_likelihood)}")
    for name in result._fields:
        if name not in ("params", "log_likelihood", "history", "n_iter", "converged", "all_params",
                        "all_log_likelihoods", "best_restart"):
            extras.append(f"{name}={_leaf_or_tree(getattr(result, name))}")
    extras.append(f"history=[{','.join(map(str, np.shape(result.history)))}]")
    extras.append(f"params={_leaf_or_tree(result.params)}")
    return f"{type(result).__name__}({', '.join(extras)})"


def model_repr(model) -> str:
    """``Model(gaussian_mixture(n_components=2, covariance_type='full', ...))`` for a
    registered model; otherwise the names of its functions and its kind of M-step."""
    described = _describe_spec(model.spec)
    if described is not None:
        return f"Model({described})"
    m_step = model.m_step
    kind = "none" if m_step is None else ("closed form" if hasattr(m_step, "statistics") else "custom")
    name = getattr(model.log_joint, "__qualname__", type(model.log_joint).__name__)
    return f"Model(log_joint={name}, latent={type(model.latent).__name__}, m_step={kind})"


def _describe_spec(spec):
    """``factory(option=value, ...)`` of a ``ModelSpec``, ``freeze(...)`` of a
    frozen model's spec, ``None`` when the model has no spec."""
    if spec is None:
        return None
    if hasattr(spec, "factory"):
        options = ", ".join(f"{name}={value!r}" for name, value in spec.options)
        return f"{spec.factory}({options})"
    if hasattr(spec, "mask"):
        inner = _describe_spec(spec.model) or "a model"
        mask = spec.mask if isinstance(spec.mask, (str, tuple)) and all(isinstance(m, str) for m in spec.mask) else "<mask>"
        return f"freeze({inner}, {mask!r})" if mask != "<mask>" else f"freeze({inner}, <mask>)"
    return None
