"""Small real data sets shipped with the package (see ``jaxem/data/README.md``)."""

from __future__ import annotations

import csv
import importlib.resources

import numpy as np

DATASETS = ("faithful", "geyser", "Nile", "discoveries")


def load_dataset(name: str) -> tuple[np.ndarray, list[str]]:
    """Loads a shipped data set as ``(values [N, C] float64, column names)``.

    Args:
      name: one of ``"faithful"`` (Old Faithful: eruptions, waiting; 272 rows),
        ``"geyser"`` (waiting, duration, in time order; 299 rows), ``"Nile"``
        (time, value; 100 rows), ``"discoveries"`` (time, value; 100 rows).

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
    return np.asarray(body, dtype=np.float64), header
