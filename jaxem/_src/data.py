"""Small real data sets shipped with the package (see ``jaxem/data/README.md``)."""

from __future__ import annotations

import csv
import importlib.resources

import jax
import numpy as np

DATASETS = ("faithful", "geyser", "Nile", "discoveries")


def load_dataset(name: str, dtype=None) -> tuple[np.ndarray, list[str]]:
    """Loads a shipped data set as ``(values [N, C], column names)``.

    Args:
      name: one of ``"faithful"`` (Old Faithful: eruptions, waiting; 272 rows),
        ``"geyser"`` (waiting, duration, in time order; 299 rows), ``"Nile"``
        (time, value; 100 rows), ``"discoveries"`` (time, value; 100 rows).
      dtype: the NumPy float dtype of the values; default: the one jaxem computes
        in (float32, or float64 when ``jax_enable_x64`` is on), so that fitting
        them needs no conversion and gives no float64 warning.

    Examples:
      >>> x, columns = jaxem.load_dataset("faithful")
      >>> x.shape, columns
      ((272, 2), ['eruptions', 'waiting'])
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}, got {name!r}")
    text = importlib.resources.files("jaxem").joinpath("data", f"{name}.csv").read_text()
    rows = list(csv.reader(text.splitlines()))
    header, body = rows[0][1:], [row[1:] for row in rows[1:] if row]
    dtype = jax.dtypes.canonicalize_dtype(np.float64) if dtype is None else np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"dtype must be a float dtype, got {dtype}")
    return np.asarray(np.asarray(body, dtype=np.float64), dtype=dtype), header
