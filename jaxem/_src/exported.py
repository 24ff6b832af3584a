"""Built-in models' programs kept as exported StableHLO between processes.

JAX's persistent compilation cache keeps the compiled *executables*, but it is
looked up by the lowered module: a new process still traces and lowers every
program before it can hit, and for a fit on small data that tracing and lowering
is most of the time once the cache is filled (``benchmarks/RESULTS.md``, issue 13).
For a model rebuilt from its spec alone (a factory registered inside jaxem,
options of plain values), the program is a function of things that can be
written down: the spec, the static settings, the arguments' shapes and dtypes,
jaxem's source and JAX's version and settings. ``call`` keys a program by all of
those; the first time it exports it (``jax.export``: traced and lowered once) and
writes the ``Exported`` next to the compilation cache; a later process reads it
and calls it, which lowers nothing of jaxem's (the module is embedded as it is)
and finds the executable in the persistent cache.

Nothing changes for anything else: a user's own model, traced arguments (inside
a user's ``jit``, ``vmap``, ``grad``), arguments on several devices, or no
compilation cache (``JAXEM_COMPILATION_CACHE=0``, a user's own cache directory,
``jax_enable_compilation_cache`` off) run the jitted function as
before. Within one process each key is loaded once and then dispatched like any
jitted function (also after the cache is turned off: the program is compiled).

The files are Python pickles of ``jax.export.Exported`` (its own serialization
needs the ``flatbuffers`` package, which jaxem does not require), read only from
jaxem's own cache directory, which is as trusted as the executables JAX loads
from it. A file that cannot be read is ignored and written again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import tempfile
from typing import Callable, Optional

import jax
import jaxlib
import numpy as np

from jaxem._src import registry, validation

_FORMAT = 1  # bump when what the files hold changes
_LOADED: dict = {}  # key -> a jitted callable of the flat arguments, oldest first
_MAX_LOADED = 256
_UNEXPORTABLE: set = set()  # keys whose export failed in this process
_SOURCE_DIGEST: list = []  # jaxem's source digest, computed once
_CONFIG = (
    "jax_enable_x64",
    "jax_default_matmul_precision",
    "jax_numpy_dtype_promotion",
    "jax_numpy_rank_promotion",
    "jax_default_prng_impl",
    "jax_threefry_partitionable",
    "jax_debug_nans",
    "jax_debug_infs",
    "jax_disable_jit",
)


def directory() -> Optional[str]:
    """Where the exported programs are kept: ``exported`` beside the compilation
    cache directory jaxem turned on, or ``None`` when jaxem's cache is off."""
    import jaxem

    cache = getattr(jaxem, "COMPILATION_CACHE_DIR", None)
    if not cache or jax.config.jax_compilation_cache_dir != cache or not jax.config.jax_enable_compilation_cache:
        return None
    return os.path.join(os.path.dirname(os.path.abspath(cache)), "exported")


def source_digest() -> str:
    """SHA-256 of every ``.py`` file of the jaxem package (names and contents)."""
    if not _SOURCE_DIGEST:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        digest = hashlib.sha256()
        for folder, folders, files in os.walk(root):
            folders.sort()
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    digest.update(os.path.relpath(path, root).encode())
                    with open(path, "rb") as handle:
                        digest.update(handle.read())
        _SOURCE_DIGEST.append(digest.hexdigest())
    return _SOURCE_DIGEST[0]


def _plain(value) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, tuple) and all(_plain(v) for v in value)


def model_key(model) -> Optional[str]:
    """A text that identifies ``model`` across processes, or ``None``: the spec of a
    model exactly as a factory registered inside jaxem builds it (its M-step's row
    chunks aside), with options of plain values."""
    spec = getattr(model, "spec", None)
    if type(spec) is not registry.ModelSpec or not _plain(spec.options):
        return None
    factory = registry._FACTORIES.get(spec.factory)
    if factory is None or not getattr(factory, "__wrapped__", factory).__module__.startswith("jaxem."):
        return None
    built = registry.build(spec)
    chunk = None if model.additive is None else model.additive.chunk_size
    if built.additive is not None and built.additive.chunk_size != chunk:
        built = built._replace(m_step=built.additive._replace(chunk_size=chunk))
    if built != model:
        return None
    return repr((spec.factory, spec.options, chunk))


def static_key(value) -> Optional[str]:
    """A static setting as text: plain values as they are, a function defined in
    jaxem by its qualified name; ``None`` for anything else."""
    if _plain(value):
        return repr(value)
    module = getattr(value, "__module__", None) or ""
    if callable(value) and module.startswith("jaxem.") and "<locals>" not in value.__qualname__:
        return f"{module}.{value.__qualname__}"
    return None


def _aval_key(leaf) -> Optional[tuple]:
    """``(shape, dtype, weak_type)`` of a concrete leaf on the default device, else ``None``."""
    if isinstance(leaf, (bool, int, float)):
        leaf = np.asarray(leaf)
        return (leaf.shape, "weak " + jax.dtypes.canonicalize_dtype(leaf.dtype).name)
    if not validation.is_concrete(leaf) or not hasattr(leaf, "dtype"):
        return None
    sharding = getattr(leaf, "sharding", None)
    if sharding is not None and tuple(sharding.device_set) != (jax.devices()[0],):
        return None
    dtype = leaf.dtype
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return (leaf.shape, str(dtype))
    if isinstance(leaf, np.ndarray) or isinstance(leaf, np.generic):
        dtype = jax.dtypes.canonicalize_dtype(dtype)
    return (leaf.shape, np.dtype(dtype).name, bool(getattr(leaf, "weak_type", False)))


def key_of(name: str, model, args: tuple, statics: dict) -> Optional[str]:
    """The file name (a SHA-256) of program ``name`` for these arguments, or ``None``
    when it cannot be kept (see the module's docstring)."""
    model_text = model_key(model)
    if model_text is None:
        return None
    static_texts = []
    for option in sorted(statics):
        text = static_key(statics[option])
        if text is None:
            return None
        static_texts.append((option, text))
    return _key(name, repr((model_text, tuple(static_texts))), args)


def _key(name: str, identity: str, args: tuple) -> Optional[str]:
    """The SHA-256 of program ``name`` whose static settings ``identity`` names, for
    these arguments; ``None`` when an argument is traced or on another device."""
    leaves, structure = jax.tree_util.tree_flatten(args)
    avals = []
    for leaf in leaves:
        aval = _aval_key(leaf)
        if aval is None:
            return None
        avals.append(aval)
    device = jax.devices()[0]
    settings = tuple((option, repr(getattr(jax.config, option, None))) for option in _CONFIG)
    text = repr((
        _FORMAT, source_digest(), jax.__version__, jaxlib.__version__,
        device.platform, device.device_kind, settings, name, identity, str(structure), tuple(avals),
    ))
    return hashlib.sha256(text.encode()).hexdigest()


def _flat_function(function: Callable, args: tuple):
    """``(f(*leaves), leaves)``: ``function(*args)`` of the arguments' leaves, PRNG
    keys passed as their key data."""
    leaves, structure = jax.tree_util.tree_flatten(args)
    impls = [
        jax.random.key_impl(leaf) if jax.dtypes.issubdtype(getattr(leaf, "dtype", np.float32), jax.dtypes.prng_key) else None
        for leaf in leaves
    ]

    def flat(*flat_leaves):
        rebuilt = [leaf if impl is None else jax.random.wrap_key_data(leaf, impl=impl) for leaf, impl in zip(flat_leaves, impls)]
        return function(*jax.tree_util.tree_unflatten(structure, rebuilt))

    data = [leaf if impl is None else jax.random.key_data(leaf) for leaf, impl in zip(leaves, impls)]
    return flat, data


def _read(path: str):
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle)
    except Exception:  # missing, truncated, or from another version: export again
        return None


def _write(path: str, exported) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        blob = pickle.dumps(dataclasses.replace(exported, _get_vjp=None))
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(handle, "wb") as stream:
            stream.write(blob)
        os.replace(temporary, path)  # atomic: a reader sees the whole file or none
    except Exception:  # a read-only or full disk, an output that cannot be pickled: not kept
        pass


def call(name: str, function: Callable, model, *args, **statics):
    """``function(model, *args, **statics)`` (``function`` jitted with ``model``
    and ``statics`` static), through a kept exported program where it can be."""
    return _through(key_of(name, model, args, statics), lambda *args: function(model, *args, **statics), args)


def call_function(name: str, function: Callable, identity: str, *args):
    """``function(*args)`` through a kept exported program where it can be, for a
    function of jaxem's whose static settings (closed over) ``identity`` names in
    full (e.g. a covariance type's name); ``identity=None``: run as it is."""
    return _through(None if identity is None else _key(name, repr(identity), args), function, args)


def _through(key: Optional[str], function: Callable, args: tuple):
    if jax.config.jax_disable_jit or key in _UNEXPORTABLE:
        key = None
    run = None if key is None else _LOADED.get(key)  # loaded once: kept for the session
    if run is None and (key is None or directory() is None):
        return function(*args)
    flat, data = _flat_function(function, args)
    if run is None:
        path = os.path.join(directory(), key[:2], key + ".exported")
        exported = _read(path)
        if exported is None:
            try:
                exported = jax.export.export(jax.jit(flat))(*data)
            except Exception:  # e.g. a custom call that export does not allow: run as before (and raise its errors)
                _UNEXPORTABLE.add(key)
                return function(*args)
            _write(path, exported)
        if len(_LOADED) >= _MAX_LOADED:  # a long session: drop the oldest (the executables stay in the cache)
            del _LOADED[next(iter(_LOADED))]
        run = _LOADED[key] = jax.jit(exported.call)
    return run(*data)
