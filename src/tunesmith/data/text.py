"""Labelled texts for classification: read, validate and split the recipe's data files."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tunesmith.data.split import split_frames
from tunesmith.data.tables import read_table
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
        _require_column(table, getattr(data, key), key, path)
    frame = pd.DataFrame(
        {
            "row": np.arange(len(table)),
            "text": _as_text(table[data.text_column]),
            "label": _as_text(table[data.label_column]),
        }
    )
    return frame, table


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


def _require_column(frame: pd.DataFrame, column: str, key: str, path: str | Path) -> None:
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
