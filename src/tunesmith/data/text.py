"""Labelled texts for classification: read, validate and split the recipe's data files."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tunesmith.data.split import split_frames
from tunesmith.data.tables import is_untyped, read_table
from tunesmith.errors import UserError
from tunesmith.recipe import DataConfig

SPLITS = ("train", "validation", "test")


@dataclass
class TextExamples:
    """One split: texts, label ids and where each row came from (0-based row in `source`)."""

    texts: list[str]
    labels: list[int]
    rows: list[int]
    source: str

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class TextSplits:
    train: TextExamples
    validation: TextExamples
    test: TextExamples
    label_names: list[str] = field(default_factory=list)

    def split(self, name: str) -> TextExamples:
        return getattr(self, name)


def load_text_classification(data: DataConfig, seed: int) -> TextSplits:
    """Read the files the recipe names; split `train` where validation/test are not given."""
    frames = {"train": _read_labelled(data, data.train, "data.train")}
    for name in ("validation", "test"):
        if getattr(data, name) is not None:
            frames[name] = _read_labelled(data, getattr(data, name), f"data.{name}")

    train_labels = frames["train"]["label"].tolist()
    label_names = sort_labels(set(train_labels))
    if len(label_names) < 2:
        raise UserError(
            f"data.train: {data.train} has a single class ({label_names[0]!r}) in column "
            f"{data.label_column!r}; a classifier needs at least two classes"
        )
    for name in ("validation", "test"):
        if name in frames:
            _check_known_labels(
                frames[name], label_names, getattr(data, name), f"data.{name}", data
            )

    train = frames["train"]
    frames = split_frames(frames, data, seed)

    label_ids = {label: i for i, label in enumerate(label_names)}
    examples = {}
    for name in SPLITS:
        frame = frames[name]
        if len(frame) == 0:
            raise UserError(
                f"data: the {name} split is empty; {data.train} has {len(train)} rows. "
                f"Give data.{name} a file or raise data.{name}_size"
            )
        source = getattr(data, name) or data.train
        examples[name] = TextExamples(
            texts=frame["text"].tolist(),
            labels=[label_ids[label] for label in frame["label"]],
            rows=frame["row"].tolist(),
            source=str(source),
        )
    return TextSplits(**examples, label_names=label_names)


def load_labelled_file(
    path: str, data: DataConfig, label_names: list[str], role: str = "--data"
) -> TextExamples:
    """One extra labelled file (e.g. for `tunesmith eval --data`) in a trained model's labels."""
    frame = _read_labelled(data, path, role)
    _check_known_labels(frame, label_names, path, role, data)
    label_ids = {label: i for i, label in enumerate(label_names)}
    return TextExamples(
        texts=frame["text"].tolist(),
        labels=[label_ids[label] for label in frame["label"]],
        rows=frame["row"].tolist(),
        source=str(path),
    )


def sort_labels(labels: set[str]) -> list[str]:
    """Numeric labels in numeric order ("2" before "10"), others alphabetically."""
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def labelled_rows(data: DataConfig, path: str, role: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(frame with columns row, text, label; the file as read). Empty cells are kept as ""."""
    table = read_table(path, role=role)
    for key in ("text_column", "label_column"):
        require_column(table, getattr(data, key), key, path)
    frame = pd.DataFrame(
        {
            "row": np.arange(len(table)),
            "text": text_cells(table, data.text_column, path, role),
            "label": label_cells(table, data.label_column, path, role),
        }
    )
    return frame, table


def text_cells(table: pd.DataFrame, column: str, path: str | Path, role: str) -> pd.Series:
    """The column's texts, stripped ("" when missing). A column of numbers or booleans is
    refused: it is an id or score column named by mistake, and a classifier would learn
    nothing from it. A few numbers among texts are kept as text (str(3) = "3")."""
    values = table[column]
    _refuse_containers(values, column, path, role, "text_column")
    if values.notna().any() and (_typed_numbers(values) or _untyped_numbers(values, path)):
        kind = "true/false values" if pd.api.types.is_bool_dtype(values) else "numbers"
        raise UserError(
            f"{role}: {path}: column {column!r} holds {kind}, not texts; did you mean another "
            f"column? its columns are: {', '.join(map(str, table.columns))}. Set "
            "data.text_column to the column with the texts (or --set data.text_column=NAME)"
        )
    return _as_text(values)


def label_cells(table: pd.DataFrame, column: str, path: str | Path, role: str) -> pd.Series:
    """The column's labels as category names ("" when missing), the same from every format:
    whole numbers read as floats (1.0, or "1.0" in a csv) become "1". A number column with a
    fraction (1.5) is refused: labels are categories, and 1.5 is a score (regression)."""
    values = table[column]
    _refuse_containers(values, column, path, role, "label_column")
    texts = _as_text(values)
    numbers = _as_numbers(values)
    if numbers is None:
        return texts
    fraction = (numbers.notna() & (numbers % 1 != 0)).to_numpy()
    if fraction.any():
        rows = np.flatnonzero(fraction)
        shown = ", ".join(f"row {r}: {texts.iloc[r]}" for r in rows[:5])
        more = " ..." if len(rows) > 5 else ""
        raise UserError(
            f"{role}: {path}: column {column!r} holds numbers with a fraction (0-based {shown}"
            f"{more}), but labels are categories: a classifier cannot predict "
            f"{texts.iloc[rows[0]]}. Use whole-number or named classes (round or bin the "
            "values), or set data.label_column to the column with the classes"
        )
    whole = [
        str(int(number)) if text and not _INTEGER.fullmatch(text) else text
        for text, number in zip(texts, numbers, strict=True)
    ]  # "1.0" -> "1"; "01" stays "01"
    return pd.Series(whole, index=values.index, dtype=str)


def _as_numbers(values: pd.Series) -> pd.Series | None:
    """The column as floats when every non-empty cell is a number, else None."""
    if pd.api.types.is_bool_dtype(values) or not values.notna().any():
        return None
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    if _all_numbers(values):
        return pd.to_numeric(values.map(_strip), errors="coerce")
    return None


def _typed_numbers(values: pd.Series) -> bool:
    """A column of numbers or booleans (dtype from parquet, json or jsonl)."""
    return pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


def _untyped_numbers(values: pd.Series, path: str | Path) -> bool:
    """A csv/tsv column (strings there) whose every non-empty cell is a number: a json or
    parquet string "3" was written as text on purpose, a csv cell has no other way."""
    return is_untyped(path) and _all_numbers(values)


def _all_numbers(values: pd.Series) -> bool:
    """Every non-empty cell is an int, float or numeric string (and at least one is)."""
    cells = [v for v in values if not _missing(v)]
    return bool(cells) and all(_is_number(v) for v in cells)


def _is_number(value: object) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, float, np.integer, np.floating)):
        return True
    return isinstance(value, str) and _NUMBER.fullmatch(value.strip()) is not None


def _missing(value: object) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _refuse_containers(
    values: pd.Series, column: str, path: str | Path, role: str, key: str
) -> None:
    """Lists, objects or bytes in a cell (json, parquet) are not texts or labels: say where
    (str() of them would train on their Python spelling)."""
    nested = values.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray, bytes))).to_numpy()
    if nested.any():
        row = int(np.flatnonzero(nested)[0])
        kind = type(values.iloc[row]).__name__
        raise UserError(
            f"{role}: {path}: column {column!r} holds a {kind} in row {row} (0-based), but "
            f"it should hold one {key.removesuffix('_column')} per cell; flatten it, or set "
            f"data.{key} to the right column (or --set data.{key}=NAME)"
        )


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")


def empty_rows(frame: pd.DataFrame) -> pd.Index:
    """Index of the rows with an empty text or label."""
    return frame.index[(frame["text"] == "") | (frame["label"] == "")]


def _read_labelled(data: DataConfig, path: str, role: str) -> pd.DataFrame:
    """A frame with columns row, text, label; empty texts or labels are an error or dropped.

    `role` names the file in messages: the recipe key (data.test) or the CLI option."""
    out, _ = labelled_rows(data, path, role)
    empty = empty_rows(out)
    if len(empty) and not data.drop_empty:
        shown = ", ".join(str(r) for r in empty[:10]) + (" ..." if len(empty) > 10 else "")
        raise UserError(
            f"{role}: {path}: {len(empty)} row(s) with an empty "
            f"{data.text_column!r} or {data.label_column!r} (0-based rows {shown}); "
            "fill or remove them, or set data.drop_empty: true to skip them"
        )
    out = out.drop(index=empty)
    if len(out) == 0:
        raise UserError(f"{role}: {path}: every row is empty")
    return out


def _as_text(column: pd.Series) -> pd.Series:
    def convert(value: object) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, float) and value.is_integer():
            return str(int(value))  # a label column read as float: 1.0 -> "1"
        return str(value).strip()

    return column.map(convert).astype(str)


def require_column(frame: pd.DataFrame, column: str, key: str, path: str | Path) -> None:
    """Refuse a table without the column data.`key` names, suggesting the closest column and
    the recipe key to set: a misspelt column is the commonest reason data cannot be read."""
    if column in frame.columns:
        return
    columns = [str(c) for c in frame.columns]
    close = difflib.get_close_matches(column, columns, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UserError(
        f"data.{key}: column {column!r} not found in {path}; {hint}"
        f"its columns are: {', '.join(columns)}. Set data.{key} in the recipe "
        f"(or --set data.{key}=NAME)"
    )


def _check_known_labels(
    frame: pd.DataFrame, known: list[str], path: str | None, role: str, data: DataConfig
) -> None:
    unknown = frame[~frame["label"].isin(known)]
    if len(unknown) == 0:
        return
    names = sort_labels(set(unknown["label"]))
    rows = ", ".join(str(r) for r in unknown["row"][:10])
    raise UserError(
        f"{role}: {path}: label(s) {', '.join(repr(n) for n in names[:10])} never seen in "
        f"training data {data.train} (0-based rows {rows}); the model cannot learn a label it "
        "never saw: add training examples for it or remove those rows"
    )
