"""The recipe's data as the checks see it: every row of every split, bad rows included, with
the file and 0-based row it came from.

The splits are made exactly as `tunesmith train` makes them (same seed, same rule), so a
finding about "the test split" is about the rows training will hold out. Rows that training
would refuse (empty cells, unreadable images, labels unseen in train) are kept out of the
splits and reported as findings instead of stopping the check."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from tunesmith.data.causal import list_documents, load_causal_lm
from tunesmith.data.images import _read_folder, _read_table, _verify_all
from tunesmith.data.quality.findings import Finding, empty_rows_finding, row_list
from tunesmith.data.split import split_frames
from tunesmith.data.tables import read_table
from tunesmith.data.text import empty_rows, labelled_rows
from tunesmith.errors import UserError
from tunesmith.recipe import DataConfig, Recipe

SPLITS = ("train", "validation", "test")


@dataclass
class SplitItems:
    """One split's rows. `texts` is what duplicates are judged on: the text to classify, or
    the prompt of a causal-lm example; `responses` are causal-lm answers; `paths` images."""

    name: str
    file: str
    rows: list[int]
    labels: list[str] | None = None
    texts: list[str] | None = None
    responses: list[str] | None = None
    paths: list[str] | None = None

    def __len__(self) -> int:
        return len(self.rows)


DataShape = Literal["text", "images", "instructions"]
"""What a task kind's rows hold, as the checks see it: labelled texts, labelled images, or
prompts with responses (or raw text)."""


@dataclass
class CheckData:
    task: str
    splits: dict[str, SplitItems]
    shape: DataShape = "text"
    findings: list[Finding] = field(default_factory=list)
    """Problems found while reading (empty rows, unreadable images, unknown labels)."""
    raw_labels: dict[str, list[str]] = field(default_factory=dict)
    """Each file's label cells before stripping, for the label-name check."""
    format: str | None = None
    """causal-lm: the resolved data format."""

    @property
    def label_names(self) -> list[str]:
        names = {label for s in self.splits.values() for label in (s.labels or [])}
        return sorted(names)


def read_check_data(recipe: Recipe, shape: DataShape) -> CheckData:
    """The recipe's data read as its task kind says (`shape`), leniently: unreadable rows
    become findings instead of errors, so every problem is reported at once."""
    if shape == "instructions":
        return _causal(recipe.data, recipe.train.seed, recipe.task)
    return _classification(recipe, images=shape == "images")


# --- classification (text and images) -------------------------------------------------------


def _classification(recipe: Recipe, images: bool) -> CheckData:
    data = recipe.data
    check = CheckData(recipe.task, {}, shape="images" if images else "text")
    frames: dict[str, pd.DataFrame] = {}
    for name in SPLITS:
        path = getattr(data, name)
        if path is None:
            continue
        frame, raw = (_image_frame if images else _text_frame)(data, path, name, check)
        frames[name] = frame
        check.raw_labels[str(path)] = raw

    known = set(frames["train"]["label"])
    if len(known) < 2:
        unreadable = [f for f in check.findings if f.severity == "error"]
        if unreadable:  # the rows that could not be read are the problem: name them
            raise UserError("\n".join(f"{f.file}: {f.message}; {f.fix}" for f in unreadable))
        only = f"only {next(iter(known))!r}" if known else "no labelled rows"
        raise UserError(
            f"data.train: {data.train} has {only}; a classifier needs at least two classes "
            f"(column {data.label_column!r}, or one folder per class for images)"
        )
    for name in ("validation", "test"):
        if name in frames:
            frames[name] = _drop_unknown(frames[name], known, getattr(data, name), name, check)
    for name, frame in split_frames(frames, data, recipe.train.seed).items():
        check.splits[name] = SplitItems(
            name=name,
            file=str(getattr(data, name) or data.train),
            rows=[int(r) for r in frame["row"]],
            labels=frame["label"].tolist(),
            texts=None if images else frame["text"].tolist(),
            paths=frame["path"].tolist() if images else None,
        )
    return check


def _text_frame(
    data: DataConfig, path: str, split: str, check: CheckData
) -> tuple[pd.DataFrame, list[str]]:
    frame, table = labelled_rows(data, path, f"data.{split}")
    empty = empty_rows(frame)
    _report_empty(check, frame["row"][empty].tolist(), path, split, data, "text or label")
    raw = [str(v) for v in table[data.label_column].dropna()]
    return frame.drop(index=empty), raw


def _image_frame(
    data: DataConfig, path: str, split: str, check: CheckData
) -> tuple[pd.DataFrame, list[str]]:
    source = Path(path)
    role = f"data.{split}"
    lenient = data.model_copy(update={"drop_empty": True})
    if source.is_dir():
        frame = _read_folder(source, role)
    else:
        frame = _read_table(lenient, source, role)
        all_rows = len(read_table(source, role=role))
        empty = sorted(set(range(all_rows)) - set(frame["row"]))
        _report_empty(check, empty, path, split, data, "image or label")
    reasons = _verify_all(frame["path"].tolist())
    bad = [i for i, reason in enumerate(reasons) if reason is not None]
    if bad:
        rows = [int(frame["row"].iloc[i]) for i in bad]
        details = [
            {"row": int(frame["row"].iloc[i]), "path": frame["path"].iloc[i], "reason": reasons[i]}
            for i in bad
        ]
        shown = "; ".join(f"{d['path']}: {d['reason']}" for d in details[:3])
        check.findings.append(
            Finding(
                check="corrupt_images",
                severity="warning" if data.skip_bad else "error",
                split=split,
                rows=rows,
                file=str(path),
                details=details,
                message=f"{len(bad)} image(s) cannot be read ({shown}"
                + (" ..." if len(bad) > 3 else "")
                + ")"
                + ("; they are skipped (data.skip_bad)" if data.skip_bad else ""),
                fix="replace or remove these files, or set data.skip_bad: true to skip them",
            )
        )
        frame = frame.drop(index=frame.index[bad])
    return frame, frame["label"].tolist()


def _report_empty(
    check: CheckData, rows: list[int], path: str, split: str, data: DataConfig, what: str
) -> None:
    if rows:
        check.findings.append(empty_rows_finding(split, str(path), rows, what, data.drop_empty))


def _drop_unknown(
    frame: pd.DataFrame, known: set[str], path: str, split: str, check: CheckData
) -> pd.DataFrame:
    unknown = ~frame["label"].isin(known)
    if unknown.any():
        rows = frame["row"][unknown].tolist()
        names = sorted(set(frame["label"][unknown]))
        check.findings.append(
            Finding(
                check="unknown_labels",
                severity="error",
                split=split,
                rows=rows,
                file=str(path),
                message=f"label(s) {', '.join(repr(n) for n in names[:10])} never seen in "
                f"training data (rows {row_list(rows)}); the model cannot learn a label it "
                "never saw",
                fix="add training examples of these labels, or remove these rows",
            )
        )
    return frame[~unknown]


# --- causal-lm ---------------------------------------------------------------------------


def _causal(data: DataConfig, seed: int, task: str) -> CheckData:
    lenient = data.model_copy(update={"drop_empty": True})
    splits = load_causal_lm(lenient, seed)
    check = CheckData(task, {}, shape="instructions", format=splits.format)
    for name in SPLITS:
        split = splits.split(name)
        prompts, responses = [], []
        for example in split.examples:
            if example.messages is None:
                prompts.append(example.text or "")
                responses.append("")
                continue
            *context, last = example.messages
            prompts.append("\n".join(m["content"] for m in context if m["role"] != "system"))
            responses.append(last["content"] if last["role"] == "assistant" else "")
        check.splits[name] = SplitItems(
            name=name,
            file=split.source,
            rows=[e.row for e in split.examples],
            texts=prompts,
            responses=responses if splits.format != "text" else None,
        )
    for name in SPLITS:
        # the file read: a LLaMA-Factory folder's data file, not the folder
        path = getattr(data, name) and splits.split(name).source
        if path is None or Path(path).is_dir():
            continue
        total = len(read_table(path, role=f"data.{name}"))
        read = {r for s in check.splits.values() if s.file == str(path) for r in s.rows}
        empty = sorted(set(range(total)) - read)
        what = "text" if splits.format == "text" else "prompt or response"
        _report_empty(check, empty, path, name, data, what)
    if Path(data.train).is_dir():
        total = len(list_documents(data.train))
        read = {r for s in check.splits.values() if s.file == str(data.train) for r in s.rows}
        empty = sorted(set(range(total)) - read)
        if empty:
            check.findings.append(
                Finding(
                    check="empty_rows",
                    severity="info",
                    split="train",
                    rows=empty,
                    file=str(data.train),
                    message=f"{len(empty)} empty document(s) are skipped",
                )
            )
    return check
