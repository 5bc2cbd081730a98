"""Read a data file (csv, tsv, jsonl, json, parquet) into a DataFrame, with readable errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tunesmith.errors import UserError

READERS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def read_table(path: str | Path, role: str = "data") -> pd.DataFrame:
    """Read `path`; `role` (e.g. "data.train") names it in error messages.

    Rows keep the order of the file, so a row number in a message is the 0-based data
    row as read (the header line not counted). For jsonl, `frame.attrs["line_numbers"]`
    holds each row's 1-based line in the file (blank lines are skipped, so they differ).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{role}: file not found: {path}; check the path in the recipe")
    if path.is_dir():
        raise UserError(f"{role}: {path} is a folder; give a csv, tsv, jsonl, json or parquet file")
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        supported = ", ".join(sorted(READERS))
        raise UserError(f"{role}: {path}: unsupported file type {path.suffix!r}; use {supported}")
    if path.stat().st_size == 0:
        raise UserError(f"{role}: {path} is empty; it needs a header and at least one row")
    try:
        frame = _READ[kind](path)
    except UserError:
        raise
    except Exception as error:  # each reader raises its own family of parse errors
        raise UserError(
            f"{role}: {path} is not a valid {kind} file: {_first_line(error)}"
        ) from None
    if len(frame) == 0:
        raise UserError(f"{role}: {path} has no data rows")
    return frame.reset_index(drop=True)


def _read_jsonl(path: Path) -> pd.DataFrame:
    records = []
    line_numbers = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(
                    f"{path}: line {number} is not valid JSON ({error.msg}); "
                    "each line of a .jsonl file must be one JSON object"
                ) from None
            if not isinstance(record, dict):
                raise UserError(f"{path}: line {number} is not a JSON object (got {record!r:.60})")
            records.append(record)
            line_numbers.append(number)
    frame = pd.DataFrame.from_records(records)
    frame.attrs["line_numbers"] = line_numbers
    return frame


def _read_json(path: Path) -> pd.DataFrame:
    payload = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(payload, dict):
        # {"data": [...]} or {"rows": [...]}: the one list of records inside
        lists = [value for value in payload.values() if isinstance(value, list)]
        if len(lists) != 1:
            raise UserError(
                f"{path}: expected a JSON list of objects (or one list inside an object)"
            )
        payload = lists[0]
    if not isinstance(payload, list) or not all(isinstance(row, dict) for row in payload):
        raise UserError(f"{path}: expected a JSON list of objects, one per example")
    return pd.DataFrame.from_records(payload)


def _read_csv(path: Path, sep: str = ",") -> pd.DataFrame:
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])


_READ = {
    "csv": _read_csv,
    "tsv": lambda path: _read_csv(path, sep="\t"),
    "jsonl": _read_jsonl,
    "json": _read_json,
    "parquet": pd.read_parquet,
}


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
