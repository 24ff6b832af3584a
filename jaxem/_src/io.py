"""``save``/``load``: a model's specification and its params in one ``.npz`` file.

The file is an ordinary NumPy ``.npz`` archive (readable without jaxem): one array
per parameter leaf, named by its path in the params (``"means"``,
``"transitions/log_probs"``...), plus ``"__jaxem__"``, a JSON header holding the
format version, the model's ``ModelSpec`` and the structure of the params. Leaves
are stored with their exact dtype, so a round trip is bit-exact. Writing is
atomic: a temporary file in the same directory is written, flushed, fsynced and
renamed over the target, so an interrupted save leaves any previous file intact.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
import warnings
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src.base import Model
from jaxem._src.freezing import FrozenSpec, freeze, mask_of
from jaxem._src.generic_m_step import resolve_mask
from jaxem._src.loop import FitResult
from jaxem._src.registry import ModelSpec, build, hashable

FORMAT = "jaxem"
FORMAT_VERSION = 1
HEADER = "__jaxem__"
FROZEN = "__frozen__"  # path prefix of a frozen model's mask arrays
HISTORY = "__history__"  # path prefix of a saved FitResult's traces
# what a damaged or foreign file raises from NumPy's reader and the decoding below
_DAMAGED = (zipfile.BadZipFile, EOFError, KeyError, AttributeError, TypeError, IndexError, ValueError, OSError)


def _encode(node, arrays: dict, path: str):
    """JSON description of a params pytree; array leaves go into ``arrays``."""
    if node is None:
        return {"kind": "none"}
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        cls = type(node)
        fields = {f: _encode(getattr(node, f), arrays, f"{path}/{f}" if path else f) for f in node._fields}
        return {"kind": "namedtuple", "class": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
    if isinstance(node, (tuple, list)):
        items = [_encode(v, arrays, f"{path}/{i}" if path else str(i)) for i, v in enumerate(node)]
        return {"kind": type(node).__name__, "items": items}
    if isinstance(node, dict):
        if not all(isinstance(k, str) for k in node):
            raise TypeError("params dicts must have string keys to be saved")
        return {"kind": "dict", "items": {k: _encode(v, arrays, f"{path}/{k}" if path else k) for k, v in node.items()}}
    leaf = np.asarray(node)
    if not (np.issubdtype(leaf.dtype, np.number) or np.issubdtype(leaf.dtype, np.bool_)):
        raise TypeError(f"params leaf {path or '<root>'} has dtype {leaf.dtype}; only numeric arrays can be saved")
    key = path or "leaf"
    if key == HEADER or key in arrays:
        raise ValueError(f"params path {key!r} cannot be saved (reserved or duplicated)")
    arrays[key] = leaf
    return {"kind": "array", "key": key}


def _namedtuple_class(name: str, fields: list):
    module_name, _, qualname = name.partition(":")
    module = sys.modules.get(module_name)  # never imports: no code runs from a file
    cls = module
    for part in qualname.split("."):
        cls = getattr(cls, part, None)
    if cls is None or not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
        raise ValueError(f"the file's params type {name} is not available; import the module that defines it first")
    if list(cls._fields) != list(fields):
        raise ValueError(f"the file's params {name} have fields {fields}, this version has {list(cls._fields)}")
    return cls


def _decode(node: dict, arrays):
    kind = node.get("kind")
    if kind == "none":
        return None
    if kind == "namedtuple":
        cls = _namedtuple_class(node["class"], list(node["fields"]))
        return cls(**{f: _decode(v, arrays) for f, v in node["fields"].items()})
    if kind in ("tuple", "list"):
        items = [_decode(v, arrays) for v in node["items"]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {k: _decode(v, arrays) for k, v in node["items"].items()}
    if kind == "array":
        stored = arrays[node["key"]]
        leaf = jnp.asarray(stored)
        if leaf.dtype != stored.dtype:
            warnings.warn(
                f"params leaf {node['key']!r} was saved as {stored.dtype} and is loaded as {leaf.dtype}; "
                'run jax.config.update("jax_enable_x64", True) first to load it exactly',
                stacklevel=3,
            )
        return leaf
    raise ValueError(f"unknown node kind {kind!r} in the file's params structure")


def _write_npz(file, arrays: dict) -> None:
    np.savez(file, **arrays)


def save(path, model: Model, params, *, history: bool = False) -> None:
    """Writes ``model``'s specification and ``params`` to one ``.npz`` file, atomically.

    Args:
      path: the file to write (used as given: no suffix is added). An existing
        file is replaced only once the new one is completely written, and keeps
        its permission bits; a read-only one is not replaced (``PermissionError``).
      model: a model built by a registered factory (every ``jaxem.models``
        factory, or one decorated with ``jaxem.register_model``), possibly frozen
        with ``jaxem.freeze`` (the freeze is saved too).
      params: its parameters (a pytree of NamedTuples, tuples, lists, dicts and
        numeric arrays), or a ``FitResult``, whose ``params`` are saved.
      history: with a ``FitResult``, also save its ``log_likelihood``, ``history``,
        ``n_iter`` and ``converged`` (read back by ``load(..., history=True)``).

    Examples:
      >>> import os, tempfile
      >>> x, _ = jaxem.load_dataset("faithful")
      >>> model = jaxem.models.gaussian_mixture(2)
      >>> result = jaxem.fit(model, x, key=0, n_restarts=2)
      >>> path = os.path.join(tempfile.mkdtemp(), "gmm.npz")
      >>> jaxem.save(path, model, result.params)
      >>> loaded_model, params = jaxem.load(path)                 # the model rebuilt from its spec
      >>> loaded_model is model, bool(jnp.all(params.means == result.params.means))
      (True, True)
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a jaxem Model, got {type(model).__name__}")
    result = params if isinstance(params, FitResult) else None
    if result is not None:
        params = result.params
    elif history:
        raise ValueError("history=True needs a FitResult as params (its traces are what is saved)")
    spec, mask = model.spec, None
    if isinstance(spec, FrozenSpec):
        spec, mask = spec.model, mask_of(spec)
    if not isinstance(spec, ModelSpec):
        raise ValueError(
            "this model has no spec, so it cannot be rebuilt from a file: build it with a "
            "registered factory (jaxem.models.*, or your own decorated with jaxem.register_model)"
        )
    arrays: dict = {}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"factory": spec.factory, "options": spec.as_dict()},
        "params": _encode(params, arrays, ""),
    }
    if isinstance(mask, str) or (isinstance(mask, tuple) and all(isinstance(m, str) for m in mask)):
        header["frozen_fields"] = [mask] if isinstance(mask, str) else list(mask)
    elif mask is not None:  # a pytree of booleans: saved as arrays of the params' shapes
        mask = resolve_mask(mask, params)
        full_mask = jax.tree_util.tree_map(lambda m, leaf: np.broadcast_to(np.asarray(m, bool), np.shape(leaf)), mask, params)
        header["frozen"] = _encode(full_mask, arrays, FROZEN)
    if result is not None and history:
        traces = {name: getattr(result, name) for name in ("log_likelihood", "history", "n_iter", "converged")}
        header["history"] = _encode(traces, arrays, HISTORY)
    try:
        arrays[HEADER] = np.asarray(json.dumps(header, allow_nan=True))
    except TypeError as e:
        raise TypeError(f"the model's options must be plain values to be saved: {e}") from None
    _write_atomically(os.fspath(path), arrays)


def _write_atomically(path: str, arrays: dict) -> None:
    """``arrays`` as an ``.npz`` at ``path``: a temporary file beside it, fsynced,
    renamed over ``path`` (keeping an existing file's mode), removed on any failure."""
    directory = os.path.dirname(os.path.abspath(path))
    mode = 0o666 & ~_umask()
    if os.path.lexists(path):
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a directory")
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if not mode & 0o222 or not os.access(path, os.W_OK):  # the mode bits: root may write anything
            raise PermissionError(f"{path} is read-only; jaxem.save does not replace it")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no directory {directory} to save {os.path.basename(path)} in")
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            _write_npz(file, arrays)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:  # also KeyboardInterrupt: never leave the temporary file
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path, *, model: Model | None = None, history: bool = False):
    """Reads a file written by ``save``: returns ``(model, params)``.

    Args:
      path: the file.
      model: optional; if given, the file must hold this model (same factory and
        options), else a ``ValueError`` says how they differ.
      history: also return the saved traces of a ``FitResult`` (a dict with
        ``log_likelihood``, ``history``, ``n_iter``, ``converged``; ``ValueError``
        if the file holds none): ``(model, params, traces)``.

    Floating params come back in their saved dtype (float64 needs
    ``jax_enable_x64``; otherwise they are converted to float32 with a warning).
    The params are checked against the model (shapes, finiteness, constraints).

    Raises:
      FileNotFoundError: no such file.
      ValueError: the file was not written by ``jaxem.save``, is damaged, or holds
        params the model refuses.

    Examples:
      >>> import os, tempfile
      >>> model = jaxem.models.poisson_mixture(2)
      >>> params = jaxem.models.poisson_mixture_params([0.3, 0.7], [[1.0], [6.0]])
      >>> path = os.path.join(tempfile.mkdtemp(), "counts.npz")
      >>> jaxem.save(path, model, params)
      >>> _, loaded = jaxem.load(path, model=model)               # checked against your model
      >>> np.asarray(loaded.rates).ravel().tolist()
      [1.0, 6.0]
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        spec, header, arrays = _read(path)
    except _DAMAGED as e:
        if isinstance(e, ValueError) and str(e).startswith(path):
            raise
        raise ValueError(f"{path} is not a jaxem file or is damaged ({type(e).__name__}: {e})") from None
    if model is not None:
        if not isinstance(model, Model):
            raise TypeError(f"model must be a jaxem Model, got {type(model).__name__}")
        given = model.spec.model if isinstance(model.spec, FrozenSpec) else model.spec
        if given != spec:
            raise ValueError(f"{path} holds model {_describe(spec)}, not the model given, {_describe(given)}")
    try:
        params = _decode(header["params"], arrays)
        mask = _decode(header["frozen"], arrays) if "frozen" in header else None
        if "frozen_fields" in header:
            mask = tuple(str(name) for name in header["frozen_fields"])
            mask = mask[0] if len(mask) == 1 else mask
        traces = _decode(header["history"], arrays) if "history" in header else None
    except _DAMAGED as e:
        if isinstance(e, ValueError) and ("not available" in str(e) or "have fields" in str(e)):
            raise
        raise ValueError(f"{path} is damaged: its params do not match its header ({type(e).__name__}: {e})") from None
    built = build(spec)
    if mask is not None:
        built = freeze(built, mask)
    if model is None:
        model = built
    elif mask is not None and model.spec != built.spec:
        model = built  # the file's freeze wins over an unfrozen model given
    try:
        _check_params(model, params)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: the saved params do not fit the model {_describe(spec)}: {e}") from None
    if history:
        if traces is None:
            raise ValueError(f"{path} holds no fit history (save a FitResult with history=True)")
        return model, params, traces
    return model, params


def _check_params(model: Model, params) -> None:
    """The checks a model runs on params without data (shapes, finiteness,
    constraints): those of its ``sample``, which draws one item to run them."""
    if model.sample is not None:
        with jax.ensure_compile_time_eval():  # op by op: checks see concrete values
            model.sample(jax.random.key(0), params, 1)


def _read(path: str):
    """``(spec, header, arrays)`` of a jaxem file; raises one of ``_DAMAGED``."""
    archive = np.load(path, allow_pickle=False)
    if not hasattr(archive, "files"):
        raise ValueError(f"{path} is not a jaxem file (not an .npz archive)")
    with archive:
        if HEADER not in archive.files:
            raise ValueError(f"{path} is not a jaxem file (no {HEADER} header)")
        header = json.loads(str(archive[HEADER]))
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"{path} is not a jaxem file")
        version = header.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{path} was written in jaxem file format version {version}; this jaxem reads "
                f"version {FORMAT_VERSION}" + (": upgrade jaxem" if isinstance(version, int) and version > FORMAT_VERSION else "")
            )
        options = header["model"]["options"]
        spec = ModelSpec(str(header["model"]["factory"]), tuple(sorted((k, hashable(v)) for k, v in options.items())))
        arrays = {k: archive[k] for k in archive.files if k != HEADER}
    return spec, header, arrays


def _describe(spec) -> str:
    if not isinstance(spec, ModelSpec):
        return "a model without a spec"
    options = ", ".join(f"{k}={v!r}" for k, v in spec.options)
    return f"{spec.factory}({options})"
