"""Reading a CSV file as a numeric table, for the command line.

Real files are messy: a UTF-8 byte-order mark, ``;`` or tab separators, string
columns beside the numeric ones, empty cells, a header of years that looks
numeric. ``read_table`` decodes with ``utf-8-sig`` (a BOM is dropped), sniffs the
delimiter, decides whether the first row is a header, selects the requested
columns *before* converting (so string columns elsewhere do no harm), and reads
empty cells (and ``NA``, ``NaN``) as missing values. Every problem is a
``ValueError`` naming the file, the row and the column.

Examples:
  >>> import os, tempfile
  >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
  >>> _ = open(path, "w").write("name;a;b\\nx;1;2\\ny;3;\\n")
  >>> table = read_table(path, columns=["a", "b"])
  >>> table.names, table.values.tolist()
  (['a', 'b'], [[1.0, 2.0], [3.0, nan]])
"""

from __future__ import annotations

import csv
import sys
from typing import NamedTuple, Optional, Sequence

import numpy as np

MISSING = {"", "na", "nan", "n/a", "null", "none", "."}
ROW_NAME_COLUMNS = {"", "rownames"}  # R's write.csv row numbers
SAMPLE_BYTES = 64 * 1024


class Table(NamedTuple):
    """A numeric CSV table.

    Attributes:
      values: ``[N, D]`` float64, NaN where a cell was empty or ``NA``.
      names: the ``D`` column names (``x0, x1, ...`` without a header).
      extra: ``{name: [N] strings}`` of the columns asked for by ``keep`` (e.g. a
        sequence id column), unconverted.
    """

    values: np.ndarray
    names: list
    extra: dict


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _is_numeric_or_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING or _is_number(cell)


def _dialect(sample: str, delimiter: Optional[str]):
    if delimiter is not None:
        return delimiter
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _has_header(rows: list, header: str) -> bool:
    """``header``: ``"yes"``, ``"no"`` or ``"auto"``. Auto: a first row with any
    non-numeric cell is a header; an all-numeric first row is one only when every
    one of its cells is an integer while its column holds non-integers or repeats
    it nowhere below (years over measurements), which keeps integer data as data."""
    if header in ("yes", "no"):
        return header == "yes"
    first = rows[0]
    if not all(_is_numeric_or_missing(cell) for cell in first):
        return True
    body = rows[1:51]
    if not body or not all(cell.strip().lstrip("-").isdigit() for cell in first):
        return False
    votes = 0
    for j, cell in enumerate(first):
        column = [row[j] for row in body if j < len(row) and row[j].strip()]
        if column and any(not c.strip().lstrip("-").isdigit() for c in column):
            votes += 1
    return votes == len(first)


def read_table(
    path: str,
    columns: Optional[Sequence[str]] = None,
    *,
    header: str = "auto",
    delimiter: Optional[str] = None,
    keep: Sequence[str] = (),
) -> Table:
    """Reads the numeric columns of a CSV file (see the module docstring).

    Args:
      path: the file.
      columns: names (or 0-based indices as strings) of the columns to use;
        default: every column except a leading row-name column and the ``keep``
        columns, all of which must then be numeric.
      header: ``"auto"``, ``"yes"`` or ``"no"``.
      delimiter: the field separator; default: sniffed among ``, ; tab |``.
      keep: columns returned unconverted in ``Table.extra`` (e.g. an id column).

    Returns:
      A ``Table``.
    """
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            sample = file.read(SAMPLE_BYTES)
            file.seek(0)
            rows = [row for row in csv.reader(file, delimiter=_dialect(sample, delimiter))]
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise ValueError(f"{path} is not a readable CSV file: {e}") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"{path} is empty")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{path}: row {i + 1} has {len(row)} fields, the first row has {width}")
    if _has_header(rows, header):
        names, body = [cell.strip() for cell in rows[0]], rows[1:]
    else:
        names, body = [f"x{j}" for j in range(width)], rows
    if not body:
        raise ValueError(f"{path} has a header but no data rows")
    index = {name: j for j, name in enumerate(names)}

    def column_index(name: str) -> int:
        if name in index:
            return index[name]
        if name.isdigit() and int(name) < width:
            return int(name)
        raise ValueError(f"{path}: no column {name!r}; the columns are {names}")

    kept = {name: column_index(name) for name in keep}
    if columns:
        chosen = [column_index(name) for name in columns]
    else:
        chosen = [j for j in range(width) if j not in kept.values()]
        if chosen and names[chosen[0]].lower() in ROW_NAME_COLUMNS and len(chosen) > 1:
            chosen = chosen[1:]
    if not chosen:
        raise ValueError(f"{path}: no data columns")
    values = np.empty((len(body), len(chosen)))
    for i, row in enumerate(body):
        for out, j in enumerate(chosen):
            cell = row[j].strip()
            if cell.lower() in MISSING:
                values[i, out] = np.nan
            elif _is_number(cell):
                values[i, out] = float(cell)
            else:
                line = i + (2 if body is not rows else 1)
                raise ValueError(
                    f"{path}: line {line}, column {names[j]!r}: {cell[:40]!r} is not a number "
                    "(choose numeric columns with --columns)"
                )
    extra = {name: np.asarray([row[j].strip() for row in body]) for name, j in kept.items()}
    return Table(values, [names[j] for j in chosen], extra)
