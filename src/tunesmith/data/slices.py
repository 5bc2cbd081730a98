"""`data.slice_columns`: the columns (region, product, source ...) whose values cut the rows
into slices for the bias checks: class balance per slice in the data check, every test
metric per slice in metrics.json and the report.

The slice values never enter a model's inputs: every split of every task kind keeps each
example's file and 0-based row (`rows`, `source`), and the values are looked up by that row
in the file they came from, so they follow the rows through splitting and dropped rows
exactly, whatever a kind makes of the other columns."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from tunesmith.data.tables import read_table
from tunesmith.data.text import require_column
from tunesmith.errors import UserError
from tunesmith.recipe import DataConfig

MISSING = "(missing)"
"""The slice value of an empty cell."""
FILE_KEYS = ("train", "validation", "test")


def check_slice_columns(data: DataConfig) -> None:
    """Refuse, before any work, a data file without a slice column (naming the file, the
    column and the columns it has) or a folder of files, which has no columns."""
    if not data.slice_columns:
        return
    for key in FILE_KEYS:
        path = getattr(data, key)
        if path is not None:
            _table(data, str(path), f"data.{key}")


def slice_values(
    data: DataConfig, path: str | Path, rows: Sequence[int], role: str = "data"
) -> dict[str, list[str]]:
    """{column: the value of each of `rows` (0-based rows of `path` as read)} for every
    slice column; empty cells are "(missing)"."""
    if not data.slice_columns:
        return {}
    table = _table(data, str(path), role)
    index = np.asarray(list(rows), dtype=int)
    return {
        column: [_cell(v) for v in table[column].to_numpy()[index]] for column in data.slice_columns
    }


def _table(data: DataConfig, path: str, role: str) -> pd.DataFrame:
    """The slice columns of the file at `path` (refused when one is missing)."""
    source = Path(path)
    if source.is_dir():
        raise UserError(
            f"data.slice_columns: {role} is the folder {path}, which has no columns to slice "
            "by; give a csv, jsonl or parquet file with the columns "
            f"{', '.join(data.slice_columns)}, or remove data.slice_columns"
        )
    stamp = source.stat().st_mtime_ns if source.exists() else 0
    return _columns(path, stamp, role, tuple(data.slice_columns))


@lru_cache(maxsize=8)
def _columns(path: str, stamp: int, role: str, columns: tuple[str, ...]) -> pd.DataFrame:
    """The file's slice columns, cached per path and modification time (the data check,
    training and the metrics per slice read the same file); only these columns are kept."""
    table = read_table(path, role=role)
    for column in columns:
        require_column(table, column, "slice_columns", path)
    return table[list(columns)].copy()


def _cell(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return MISSING
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or MISSING
