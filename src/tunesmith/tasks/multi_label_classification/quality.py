"""The data check of multi-label data: the shared checks where they fit, and label-set checks
of its own.

Shared (data/quality): exact and near duplicates, duplicates whose label sets differ, leakage
between splits, short and overlong texts; a row's label set is compared as one sorted name.
Own: empty texts and labels unseen in train (read problems: `train` refuses them whatever
the guard says), label cardinality (mean labels per row, rows without any), rare labels,
labels that test cannot score, labels validation is too small to tune a threshold for, and
data too small for the method. The label-error search (cleanlab) ranks one label per row,
so it does not run here.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence

import pandas as pd
from rich.console import Console

from tunesmith.data.quality.content import (
    SHOWN_LABELS,
    counted_labels,
    length_findings,
    too_small_findings,
)
from tunesmith.data.quality.duplicates import duplicate_findings
from tunesmith.data.quality.findings import Finding, QualityReport, empty_rows_finding, row_list
from tunesmith.data.quality.items import CheckData, SplitItems
from tunesmith.data.quality.slices import slice_findings
from tunesmith.data.slices import check_slice_columns
from tunesmith.data.text import SPLITS
from tunesmith.errors import UserError
from tunesmith.models.resolve import resolve_model
from tunesmith.models.text import load_tokenizer
from tunesmith.recipe import Recipe
from tunesmith.tasks.multi_label_classification.data import (
    LabelSet,
    cardinality,
    empty_text_rows,
    read_labelled,
    split_multi_label,
    train_label_names,
    unknown_label_rows,
)
from tunesmith.tasks.multi_label_classification.thresholds import MIN_POSITIVES

RARE_LABEL = 5
"""Training rows a label needs at the least to be learnt and scored at all."""


def check_multi_label_data(
    recipe: Recipe, console: Console | None = None, label_issues: bool | None = None
) -> QualityReport:
    check_slice_columns(recipe.data)
    data = read_check_data(recipe)
    findings = list(data.findings)
    duplicates, counts = duplicate_findings(data)
    findings += duplicates
    lengths, length_summary = length_findings(data, recipe, _token_counter(recipe))
    findings += lengths
    labels, label_summary = label_set_findings(data, recipe)
    findings += labels
    slices, slice_summary = slice_findings(data, recipe, labelled=True)  # label sets as classes
    findings += slices
    summary = {
        "task": recipe.task,
        "model": recipe.model,
        "method": recipe.method.name,
        "rows": {name: len(data.splits[name]) for name in SPLITS},
        "files": {name: data.splits[name].file for name in SPLITS},
        **counts,
        **length_summary,
        **label_summary,
        "label_issues": "not run: the label-error search ranks one label per row",
        **slice_summary,
    }
    return QualityReport(findings, summary)


def read_check_data(recipe: Recipe) -> CheckData:
    """Every split as training makes it (same seed, same rule), bad rows kept out of the
    splits and reported. `labels` of a row is its label set as one name (a JSON list, sorted:
    `["a", "b"]`), so the shared duplicate checks compare whole sets."""
    data = recipe.data
    check = CheckData(recipe.task, {})
    frames: dict[str, pd.DataFrame] = {}
    for name in SPLITS:
        path = getattr(data, name)
        if path is None:
            continue
        frame = read_labelled(data, path, f"data.{name}")
        empty = empty_text_rows(frame)
        if empty:
            what = repr(recipe.data.text_column)
            check.findings.append(
                empty_rows_finding(name, str(path), empty, what, recipe.data.drop_empty)
            )
        frames[name] = frame[frame["text"] != ""]
    try:
        known = train_label_names(frames["train"], data)
    except UserError:
        unreadable = [f for f in check.findings if f.severity == "error"]
        if unreadable:  # the rows that could not be read are the problem: name them
            raise UserError(
                "\n".join(f"{f.file}: {f.message}; {f.fix}" for f in unreadable)
            ) from None
        raise
    for name in ("validation", "test"):
        if name in frames:
            frames[name] = _drop_unknown(frames[name], known, str(getattr(data, name)), name, check)
    for name, frame in split_multi_label(frames, data, recipe.train.seed).items():
        check.splits[name] = SplitItems(
            name=name,
            file=str(getattr(data, name) or data.train),
            rows=[int(r) for r in frame["row"]],
            labels=[set_name(labels) for labels in frame["labels"]],
            texts=frame["text"].tolist(),
        )
    return check


def set_name(labels: LabelSet) -> str:
    return json.dumps(sorted(labels), ensure_ascii=False)


def label_sets(split: SplitItems) -> list[LabelSet]:
    return [tuple(json.loads(name)) for name in split.labels or []]


def label_set_findings(data: CheckData, recipe: Recipe) -> tuple[list[Finding], dict]:
    """Cardinality, rows without labels, rare and unscorable labels, data size."""
    sets = {name: label_sets(data.splits[name]) for name in SPLITS}
    counts = {name: Counter(label for row in sets[name] for label in row) for name in SPLITS}
    names = sorted(counts["train"])
    summary = {
        "labels": names,
        "label_counts": dict(sorted(counts["train"].items())),
        "label_cardinality": {name: cardinality(sets[name]) for name in SPLITS},
    }
    findings = [
        f for name in SPLITS if (f := _no_label_finding(data.splits[name], sets[name])) is not None
    ]
    train = data.splits["train"]
    rare = [label for label in names if counts["train"][label] < RARE_LABEL]
    if rare:
        rows = [r for r, row in zip(train.rows, sets["train"], strict=True) if set(row) & set(rare)]
        findings.append(
            Finding(
                check="rare_labels",
                severity="warning",
                split="train",
                rows=rows,
                file=train.file,
                message=f"{len(rare)} label(s) have fewer than {RARE_LABEL} training rows: "
                f"{counted_labels(rare, counts['train'])}; they can hardly be learnt or scored",
                fix="add rows with these labels, or merge them into a related label",
            )
        )
    everywhere = [label for label in names if counts["train"][label] == len(train)]
    if everywhere:
        findings.append(
            Finding(
                check="constant_labels",
                severity="warning",
                split="train",
                rows=[],
                file=train.file,
                message=f"label(s) {_quoted(everywhere)} are on every training row: there is "
                "nothing to learn about them",
                fix="remove them from the label column, or add rows without them",
            )
        )
    unscored = [label for label in names if not counts["test"][label]]
    if unscored:
        findings.append(
            Finding(
                check="unscored_labels",
                severity="info",
                split="test",
                rows=[],
                file=data.splits["test"].file,
                message=f"{len(unscored)} label(s) have no test row: {_quoted(unscored)}; "
                "their recall is not measured (macro-F1 leaves them out unless predicted)",
                fix="add test rows with these labels for a complete score",
            )
        )
    few = [label for label in names if counts["validation"][label] < MIN_POSITIVES]
    if few:
        findings.append(
            Finding(
                check="thresholds",
                severity="info",
                split="validation",
                rows=[],
                file=data.splits["validation"].file,
                message=f"{len(few)} of {len(names)} label(s) have fewer than {MIN_POSITIVES} "
                f"validation rows ({_quoted(few)}): they use the global threshold instead of "
                "one of their own",
                fix="a larger validation split (data.validation_size) tunes more labels",
            )
        )
    findings += too_small_findings(
        train,
        recipe.method.name,
        "row",
        collect_more="collect more data (dozens of rows per label at the very least)",
        use_less="use method lora (or linear-probe), or collect more data",
    )
    return findings, summary


def _no_label_finding(split: SplitItems, sets: list[LabelSet]) -> Finding | None:
    rows = [r for r, row in zip(split.rows, sets, strict=True) if not row]
    if not rows:
        return None
    return Finding(
        check="rows_without_labels",
        severity="info",
        split=split.name,
        rows=rows,
        file=split.file,
        message=f"{len(rows)} of {len(split)} row(s) have no label (rows {row_list(rows)}); "
        "they teach the model that none applies",
        fix="leave them if no label applies; label them if the label column was left empty",
    )


def _drop_unknown(
    frame: pd.DataFrame, known: list[str], path: str, split: str, check: CheckData
) -> pd.DataFrame:
    rows, names = unknown_label_rows(frame, known)
    if not rows:
        return frame
    check.findings.append(
        Finding(
            check="unknown_labels",
            severity="error",
            split=split,
            rows=rows,
            file=path,
            message=f"label(s) {_quoted(names)} never seen in training data (rows "
            f"{row_list(rows)}); the model cannot learn a label it never saw",
            fix="add training rows with these labels, or remove these rows",
        )
    )
    return frame[~frame["row"].isin(rows)]


def _token_counter(recipe: Recipe) -> Callable[[Sequence[str]], list[int]]:
    tokenizer = load_tokenizer(resolve_model(recipe.model))

    def count(texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(row) for row in tokenizer(list(texts), verbose=False)["input_ids"]]

    return count


def _quoted(labels: list[str]) -> str:
    shown = ", ".join(repr(label) for label in labels[:SHOWN_LABELS])
    return shown + (f" and {len(labels) - SHOWN_LABELS} more" if len(labels) > SHOWN_LABELS else "")
