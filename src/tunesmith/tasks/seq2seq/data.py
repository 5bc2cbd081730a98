"""Input/target pairs for encoder-decoder models, read from csv, tsv, jsonl, json or parquet.

Two layouts, told apart by the columns:

- alpaca: `instruction` and `output`, optional `input` (joined to the instruction by a blank
  line, as causal-lm does), so one file serves both kinds;
- input/target columns: `data.prompt_column` (else `data.text_column` when the recipe
  changed it from `text`, else the first of input, source, prompt, question, query, text) and
  `data.response_column` (else the first of target, output, response, completion, answer,
  summary).

Rows are kept in file order with their 0-based row number, so every message and data-check
finding names the row a user can find. Splits are seeded shares of train, made with the same
rule as the other kinds (`tunesmith.data.split`).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tunesmith.data.split import stratified_split, train_subset
from tunesmith.data.tables import READERS, read_table
from tunesmith.errors import UserError
from tunesmith.recipe import DataConfig

SPLITS = ("train", "validation", "test")
INPUT_COLUMNS = ("input", "source", "prompt", "question", "query", "text")
TARGET_COLUMNS = ("target", "output", "response", "completion", "answer", "summary")
PAIR_FORMATS = ("auto", "alpaca", "prompt-completion")
"""data.format values that describe pairs; chat and raw text do not fit an encoder-decoder."""
MAX_REPORTED = 10


@dataclass(frozen=True)
class Pair:
    """One example: the text the encoder reads and the text the decoder must write. `row` is
    the 0-based data row in its file."""

    row: int
    source: str
    target: str


@dataclass
class PairSplit:
    pairs: list[Pair]
    file: str

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def sources(self) -> list[str]:
        return [pair.source for pair in self.pairs]

    @property
    def targets(self) -> list[str]:
        return [pair.target for pair in self.pairs]


@dataclass
class PairSplits:
    train: PairSplit
    validation: PairSplit
    test: PairSplit
    format: str
    """alpaca or input-target: how the files were read."""

    def split(self, name: str) -> PairSplit:
        return getattr(self, name)


@dataclass
class Columns:
    """Where a table holds each field; `instruction` set means the alpaca layout."""

    source: str | None
    target: str | None
    instruction: str | None = None

    @property
    def format(self) -> str:
        return "alpaca" if self.instruction else "input-target"


@dataclass
class ReadRows:
    """A file's pairs, and the rows left out because their input or target is empty."""

    pairs: list[Pair]
    empty: list[int]
    file: str
    format: str


def load_seq2seq(data: DataConfig, seed: int) -> PairSplits:
    """The recipe's files as pairs; validation and test are seeded shares of train where no
    file is given. Empty rows are an error unless data.drop_empty."""
    return split_pairs(read_recipe_files(data, lenient=False), data, seed)


def read_recipe_files(data: DataConfig, lenient: bool) -> dict[str, ReadRows]:
    """Each file the recipe names, read (`lenient`: empty rows are collected, not refused)."""
    _check_format(data)
    read = {"train": read_pairs(data.train, data, "data.train", lenient)}
    for name in ("validation", "test"):
        path = getattr(data, name)
        if path is not None:
            read[name] = read_pairs(path, data, f"data.{name}", lenient)
    return read


def split_pairs(read: dict[str, ReadRows], data: DataConfig, seed: int) -> PairSplits:
    """train/validation/test: the files given, and shares of train for the others."""
    train = read["train"]
    shares = {n: 0.0 if n in read else getattr(data, f"{n}_size") for n in ("validation", "test")}
    # one "class": a seeded shuffle with the rounding and minimums the other kinds use
    index = stratified_split([0] * len(train.pairs), shares["validation"], shares["test"], seed)
    kept = index["train"][train_subset([0] * len(index["train"]), data.train_fraction, seed)]
    parts = {"train": PairSplit([train.pairs[i] for i in kept], train.file)}
    for name in ("validation", "test"):
        if name in read:
            parts[name] = PairSplit(read[name].pairs, read[name].file)
            continue
        parts[name] = PairSplit([train.pairs[i] for i in index[name]], train.file)
        if not parts[name].pairs:
            raise UserError(
                f"data: the {name} split is empty: {train.file} has {len(train.pairs)} usable "
                f"row(s) and data.{name}_size is {getattr(data, f'{name}_size')}. Give "
                f"data.{name} a file, add rows, or raise data.{name}_size"
            )
    return PairSplits(**parts, format=train.format)


def read_pairs(path: str | Path, data: DataConfig, role: str, lenient: bool = False) -> ReadRows:
    """A table's pairs. Cells that are not text (a list, an object) are an error naming the
    rows; empty inputs or targets are an error unless `lenient` or data.drop_empty."""
    frame = read_table(path, role=role)
    columns = find_columns(frame, data, path, role, need_target=True)
    pairs, empty, bad = [], [], []
    for row, record in enumerate(_records(frame, columns)):
        try:
            source, target = _pair_texts(record, columns)
        except _BadCell as problem:
            bad.append((row, str(problem)))
            continue
        if not source or not target:
            empty.append(row)
        else:
            pairs.append(Pair(row, source, target))
    where = _row_namer(frame)
    if bad:
        shown = "\n".join(f"  {where(r)}: {problem}" for r, problem in bad[:MAX_REPORTED])
        more = f"\n  ... and {len(bad) - MAX_REPORTED} more" if len(bad) > MAX_REPORTED else ""
        raise UserError(
            f"{role}: {path}: {len(bad)} row(s) hold something other than text "
            f"(0-based rows):\n{shown}{more}\nEach input and target must be one text; fix or "
            "remove these rows"
        )
    if empty and not (lenient or data.drop_empty):
        shown = ", ".join(where(r) for r in empty[:MAX_REPORTED])
        raise UserError(
            f"{role}: {path}: {len(empty)} row(s) with an empty {_what(columns)} (0-based "
            f"{shown}{' ...' if len(empty) > MAX_REPORTED else ''}); fill or remove them, or "
            "set data.drop_empty: true to skip them"
        )
    if not pairs and not lenient:
        raise UserError(f"{role}: {path}: every row has an empty {_what(columns)}")
    return ReadRows(pairs, empty, str(path), columns.format)


def find_columns(
    frame: pd.DataFrame, data: DataConfig, path: str | Path, role: str, need_target: bool
) -> Columns:
    """The columns of the input (or alpaca instruction + input) and of the target."""
    present = [str(c) for c in frame.columns]
    alpaca = data.format == "alpaca" or (
        data.format == "auto"
        and "instruction" in present
        and not (data.prompt_column or _text_column(data))
    )
    if alpaca:
        for name in ("instruction", *(("output",) if need_target else ())):
            if name not in present:
                raise _missing(present, path, role, [name], None, "the alpaca layout")
        source = "input" if "input" in present else None
        return Columns(source, "output" if need_target else None, instruction="instruction")
    if data.prompt_column:
        source = _configured(present, data.prompt_column, path, role, "prompt_column")
    elif text_column := _text_column(data):
        source = _configured(present, text_column, path, role, "text_column")
    else:
        source = _first(present, INPUT_COLUMNS, path, role, "prompt_column")
    target = None
    if need_target:
        if data.response_column:
            target = _configured(present, data.response_column, path, role, "response_column")
        else:
            target = _first(present, TARGET_COLUMNS, path, role, "response_column")
    return Columns(source, target)


def read_sources(inputs: list[str], data: DataConfig, column: str | None) -> list[str]:
    """Inputs for `tunesmith predict`, in order: each is a file (.txt: one input per line; a
    table: its input column, or alpaca instruction + input) when such a file exists, else a
    text. `column` (--text-column) names the input column of tables."""
    sources: list[str] = []
    for item in inputs:
        path = Path(item)
        if len(item) < 4096 and path.is_file():
            sources.extend(_file_sources(path, data, column))
        elif item.strip():
            sources.append(item.strip())
    if not sources:
        raise UserError("predict: nothing to predict; give input texts or files of inputs")
    return sources


def _file_sources(path: Path, data: DataConfig, column: str | None) -> list[str]:
    suffix = path.suffix.lower()
    if suffix == ".txt":
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError:
            raise UserError(f"predict: {path} is not UTF-8 text; save it as UTF-8") from None
        return [line.strip() for line in lines if line.strip()]
    if suffix not in READERS:
        supported = ", ".join([".txt", *sorted(READERS)])
        raise UserError(f"predict: {path}: unsupported file type {suffix!r}; use {supported}")
    frame = read_table(path, role="predict")
    settings = data.model_copy(update={"prompt_column": column}) if column else data
    columns = find_columns(frame, settings, path, "predict", need_target=False)
    texts = []
    for row, record in enumerate(_records(frame, columns)):
        try:
            source, _ = _pair_texts(record, columns)
        except _BadCell as problem:
            raise UserError(f"predict: {path}: row {row}: {problem}") from None
        if not source:
            raise UserError(f"predict: {path}: row {row} has an empty input; fill or remove it")
        texts.append(source)
    return texts


# ---------------------------------------------------------------------------- helpers


class _BadCell(Exception):
    """A cell that is not a text; the message names its column and what it holds."""


def _text_column(data: DataConfig) -> str | None:
    """data.text_column when the recipe changed it from its default: a saved recipe holds
    every key, so "was it set" cannot be asked of a run's recipe, but "is it not `text`" can
    (`text` is among the default input columns anyway)."""
    return data.text_column if data.text_column != "text" else None


def _check_format(data: DataConfig) -> None:
    if data.format not in PAIR_FORMATS:
        raise UserError(
            f"data.format: {data.format!r} does not fit seq2seq, which learns input -> target "
            "pairs; use auto, alpaca (instruction/input/output) or prompt-completion (input "
            "and target columns)"
        )


def _records(frame: pd.DataFrame, columns: Columns) -> list[dict[str, Any]]:
    names = [c for c in (columns.instruction, columns.source, columns.target) if c]
    cells = {name: frame[name].tolist() for name in names}
    return [{name: cells[name][row] for name in names} for row in range(len(frame))]


def _pair_texts(record: dict[str, Any], columns: Columns) -> tuple[str, str]:
    """(input, target) of a row; the alpaca layout joins instruction and input."""
    parts = [columns.instruction, columns.source] if columns.instruction else [columns.source]
    source = "\n\n".join(t for c in parts if c and (t := _text(record[c], c)))
    target = _text(record[columns.target], columns.target) if columns.target else ""
    return source, target


def _text(value: Any, column: str) -> str:
    """A cell as stripped text ("" when missing); numbers are kept as written."""
    if isinstance(value, str):
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        raise _BadCell(f"{column!r} holds a {type(value).__name__}, not a text")
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        return str(int(value)) if float(value).is_integer() else str(float(value))
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if pd.isna(value):
        return ""
    return str(value).strip()


def _row_namer(frame: pd.DataFrame) -> Callable[[int], str]:
    lines = frame.attrs.get("line_numbers")
    if lines is not None and len(lines) != len(frame):
        lines = None

    def where(row: int) -> str:
        return f"row {row} (line {lines[row]})" if lines else f"row {row}"

    return where


def _what(columns: Columns) -> str:
    if columns.instruction:
        return "'instruction' or 'output'"
    return f"{columns.source!r} or {columns.target!r}"


def _configured(present: list[str], name: str, path: str | Path, role: str, key: str) -> str:
    if name not in present:
        raise _missing(present, path, role, [name], key, "seq2seq")
    return name


def _first(
    present: list[str], names: tuple[str, ...], path: str | Path, role: str, key: str
) -> str:
    found = next((name for name in names if name in present), None)
    if found is None:
        raise _missing(present, path, role, list(names), key, "seq2seq")
    return found


def _missing(
    present: list[str], path: str | Path, role: str, wanted: list[str], key: str | None, what: str
) -> UserError:
    close = [m for w in wanted for m in difflib.get_close_matches(w, present, n=1)]
    hint = f"did you mean {close[0]!r}? " if close else ""
    names = " or ".join(repr(w) for w in wanted[:6])
    if role == "predict":
        fix = "Pass --text-column NAME (the column of inputs)"
    elif key:
        fix = f"Rename the column, or set data.{key} to the right one (--set data.{key}=NAME)"
    else:
        fix = "Rename the column"
    return UserError(
        f"{role}: {path}: no column {names}, which {what} needs; {hint}its columns are: "
        f"{', '.join(present) or 'none'}. {fix}; seq2seq reads input/target columns or alpaca "
        "rows (instruction, input, output)"
    )
