"""Texts with any number of labels each: read, validate and split the recipe's data files.

A label cell is a list (jsonl, json, parquet), a JSON list written as text (`["a", "b"]`,
e.g. in a csv), or a string of labels joined by one separator: `,`, `;` or `|`, found per
file. A file must use one separator throughout: `a;b` in one row and `c,d` in another is
refused (is `c,d` one label or two?); a label name that holds a separator character is
written as a list. An empty cell is a row with no label, which multi-label data allows.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tunesmith.data.quality.findings import row_list
from tunesmith.data.split import split_frames
from tunesmith.data.tables import read_table
from tunesmith.data.text import SPLITS, require_column, sort_labels, text_cells
from tunesmith.errors import UserError
from tunesmith.recipe import DataConfig

SEPARATORS = ("|", ";", ",")
"""The separators a string of labels may use (one per file)."""

LabelSet = tuple[str, ...]


@dataclass
class MultiLabelExamples:
    """One split: texts, their label sets and where each row came from (0-based row in
    `source`). `targets` is the (N, num_labels) 0/1 matrix in the splits' label order."""

    texts: list[str]
    labels: list[LabelSet]
    rows: list[int]
    source: str
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class MultiLabelSplits:
    train: MultiLabelExamples
    validation: MultiLabelExamples
    test: MultiLabelExamples
    label_names: list[str]
    separators: dict[str, str | None] = field(default_factory=dict)
    """The separator found in each file (None: lists, or one label per cell)."""

    def split(self, name: str) -> MultiLabelExamples:
        return getattr(self, name)


def make_examples(
    texts: list[str], labels: list[LabelSet], rows: list[int], source: str, names: list[str]
) -> MultiLabelExamples:
    return MultiLabelExamples(texts, labels, rows, source, target_matrix(labels, names))


def target_matrix(labels: Sequence[LabelSet], names: list[str]) -> np.ndarray:
    """(N, len(names)) float32 0/1: row i has a 1 for each of its labels."""
    index = {name: j for j, name in enumerate(names)}
    out = np.zeros((len(labels), len(names)), dtype=np.float32)
    for i, row in enumerate(labels):
        out[i, [index[label] for label in row]] = 1.0
    return out


def empty_examples(names: list[str]) -> MultiLabelExamples:
    return make_examples([], [], [], "", names)


# --- reading one file ----------------------------------------------------------------------


def read_labelled(data: DataConfig, path: str | Path, role: str) -> pd.DataFrame:
    """A frame with columns row (0-based in the file), text ("" when empty) and labels (a
    tuple of names, () when the row has none); `frame.attrs["separator"]` is the separator
    found. Empty texts are kept: the caller refuses, drops or reports them."""
    table = read_table(path, role=role)
    for key in ("text_column", "label_column"):
        require_column(table, getattr(data, key), key, path)
    labels, separator = parse_label_cells(table[data.label_column], data.label_column, path, role)
    frame = pd.DataFrame(
        {
            "row": np.arange(len(table)),
            "text": text_cells(table, data.text_column, path, role),
            "labels": pd.Series(labels, dtype=object),
        }
    )
    frame.attrs["separator"] = separator
    return frame


def parse_label_cells(
    values: pd.Series, column: str, path: str | Path, role: str
) -> tuple[list[LabelSet], str | None]:
    """Each cell's label set (stripped, in order, without repeats) and the file's separator."""
    cells = [_cell(value, row, column, path, role) for row, value in enumerate(values)]
    joined = [(row, cell) for row, cell in enumerate(cells) if isinstance(cell, str)]
    separator = _separator(joined, column, path, role)
    out = []
    for cell in cells:
        parts = cell.split(separator) if isinstance(cell, str) and separator else cell
        parts = [parts] if isinstance(parts, str) else parts
        out.append(tuple(dict.fromkeys(p.strip() for p in parts if p.strip())))
    return out, separator


def _cell(value: object, row: int, column: str, path: str | Path, role: str) -> str | list[str]:
    """A string still to split, or a list of label names."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_name(item, row, column, path, role) for item in value]
    if _missing(value):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                items = json.loads(text)
            except ValueError:
                return text
            if isinstance(items, list):
                return [_name(item, row, column, path, role) for item in items]
        return text
    return [_name(value, row, column, path, role)]


def _name(value: object, row: int, column: str, path: str | Path, role: str) -> str:
    """One label name: text, or a whole number (1 and 1.0 both name label "1")."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        kind = "true/false value" if isinstance(value, (bool, np.bool_)) else type(value).__name__
        raise UserError(
            f"{role}: {path}: column {column!r} row {row} (0-based) holds a {kind}, not a "
            "label name; write each row's labels as a list of names or as names joined by "
            "',' ';' or '|', or set data.label_column to the right column"
        )
    if float(value) % 1:
        raise UserError(
            f"{role}: {path}: column {column!r} row {row} (0-based) holds {value}, a number "
            "with a fraction, but labels are categories; use names or whole numbers"
        )
    return str(int(value))


def _missing(value: object) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and np.isnan(value)


def _separator(
    cells: list[tuple[int, str]], column: str, path: str | Path, role: str
) -> str | None:
    """The one separator the file's label strings use, or None (one label per string)."""
    used = {
        sep: [row for row, text in cells if sep in text]
        for sep in SEPARATORS
        if any(sep in text for _, text in cells)
    }
    if len(used) > 1:
        shown = "; ".join(f"{sep!r} in rows {row_list(rows, 5)}" for sep, rows in used.items())
        raise UserError(
            f"{role}: {path}: column {column!r} joins labels with more than one separator "
            f"({shown}), so it is unclear where a label ends. Use one of ',' ';' '|' in the "
            'whole file, or write each row\'s labels as a JSON list (["a, b", "c"]) when a '
            "label name holds a separator"
        )
    return next(iter(used), None)


# --- the splits training uses --------------------------------------------------------------


def load_multi_label(data: DataConfig, seed: int) -> MultiLabelSplits:
    """Read the files the recipe names; split `train` where validation/test are not given
    (stratified on each row's rarest label, see `stratum_keys`)."""
    frames = {"train": _read_strict(data, data.train, "data.train")}
    for name in ("validation", "test"):
        if getattr(data, name) is not None:
            frames[name] = _read_strict(data, getattr(data, name), f"data.{name}")
    separators = {
        str(getattr(data, name)): frame.attrs.get("separator") for name, frame in frames.items()
    }
    label_names = train_label_names(frames["train"], data)
    for name in ("validation", "test"):
        if name in frames:
            check_known_labels(frames[name], label_names, getattr(data, name), f"data.{name}", data)
    train_rows = len(frames["train"])
    frames = split_multi_label(frames, data, seed)
    examples = {}
    for name in SPLITS:
        frame = frames[name]
        if len(frame) == 0:
            raise UserError(
                f"data: the {name} split is empty; {data.train} has {train_rows} rows. "
                f"Give data.{name} a file or raise data.{name}_size"
            )
        source = str(getattr(data, name) or data.train)
        examples[name] = _examples(frame, source, label_names)
    return MultiLabelSplits(**examples, label_names=label_names, separators=separators)


def load_labelled_file(
    path: str, data: DataConfig, label_names: list[str], role: str = "--data"
) -> MultiLabelExamples:
    """One extra labelled file (e.g. for `tunesmith eval --data`) in a trained model's labels."""
    frame = _read_strict(data, path, role)
    check_known_labels(frame, label_names, path, role, data)
    return _examples(frame, str(path), label_names)


def train_label_names(train: pd.DataFrame, data: DataConfig) -> list[str]:
    names = sort_labels({label for labels in train["labels"] for label in labels})
    if len(names) < 2:
        only = f"only the label {names[0]!r}" if names else "no labels at all"
        raise UserError(
            f"data.train: {data.train} has {only} in column {data.label_column!r}; a "
            "multi-label classifier needs at least two labels (for one yes/no label use "
            "task: text-classification)"
        )
    return names


def check_known_labels(
    frame: pd.DataFrame, known: list[str], path: str | None, role: str, data: DataConfig
) -> None:
    rows, names = unknown_label_rows(frame, known)
    if not rows:
        return
    raise UserError(
        f"{role}: {path}: label(s) {', '.join(repr(n) for n in names[:10])} never seen in "
        f"training data {data.train} (0-based rows {row_list(rows, 10)}); the model cannot "
        "learn a label it never saw: add training examples for it or remove those rows"
    )


def unknown_label_rows(frame: pd.DataFrame, known: Iterable[str]) -> tuple[list[int], list[str]]:
    """(file rows holding a label outside `known`, those labels sorted)."""
    known = set(known)
    rows, names = [], set()
    for row, labels in zip(frame["row"], frame["labels"], strict=True):
        outside = set(labels) - known
        if outside:
            rows.append(int(row))
            names |= outside
    return rows, sort_labels(names)


def split_multi_label(
    frames: dict[str, pd.DataFrame], data: DataConfig, seed: int
) -> dict[str, pd.DataFrame]:
    """train/validation/test frames, made by the shared stratified split on `stratum_keys`."""
    keyed = {
        name: frame.assign(label=stratum_keys(frame["labels"], frames["train"]["labels"]))
        for name, frame in frames.items()
    }
    return split_frames(keyed, data, seed)


def stratum_keys(labels: Sequence[LabelSet], train: Sequence[LabelSet]) -> list[str]:
    """Each row's rarest label (by its count in `train`), "" for a row without labels.

    Stratifying on the rarest label rather than the most common one keeps a rare label's
    rows spread over the splits, and the shared split keeps at least one row of each key in
    train: a label rarely disappears from training, which it would never be learnt without."""
    counts = Counter(label for row in train for label in row)
    return [min(row, key=lambda name: (counts[name], name)) if row else "" for row in labels]


def empty_text_rows(frame: pd.DataFrame) -> list[int]:
    return [int(row) for row, text in zip(frame["row"], frame["text"], strict=True) if not text]


def _read_strict(data: DataConfig, path: str | Path, role: str) -> pd.DataFrame:
    """`read_labelled`, with empty texts an error (or dropped with data.drop_empty)."""
    frame = read_labelled(data, path, role)
    empty = empty_text_rows(frame)
    if empty and not data.drop_empty:
        raise UserError(
            f"{role}: {path}: {len(empty)} row(s) with an empty {data.text_column!r} "
            f"(0-based rows {row_list(empty, 10)}); fill or remove them, or set "
            "data.drop_empty: true to skip them (a row with no label is allowed: it says "
            "no label applies)"
        )
    out = frame[frame["text"] != ""]
    out.attrs = frame.attrs
    if len(out) == 0:
        raise UserError(f"{role}: {path}: every row has an empty {data.text_column!r}")
    return out


def _examples(frame: pd.DataFrame, source: str, names: list[str]) -> MultiLabelExamples:
    return make_examples(
        frame["text"].tolist(),
        [tuple(labels) for labels in frame["labels"]],
        [int(r) for r in frame["row"]],
        source,
        names,
    )


def cardinality(labels: Sequence[LabelSet]) -> dict[str, float | int]:
    """Mean labels per row, and rows without any label."""
    sizes = [len(row) for row in labels]
    return {
        "mean_labels_per_row": round(float(np.mean(sizes)), 3) if sizes else 0.0,
        "rows_without_labels": sum(size == 0 for size in sizes),
    }
