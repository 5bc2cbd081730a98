"""The data-quality gate: `check_data` runs every check that fits the recipe's task, `gate`
refuses to train on error-level findings (guards.data_quality: error).

Checks, each with its severity and rows (0-based, in the split's file):
- read: empty rows, unreadable images, labels unseen in train (items.py);
- duplicates: exact and near, conflicting labels, leakage between splits (duplicates.py);
- rows: too short, truncated by preprocess.max_length, canned LLM responses (content.py);
- labels: near-identical names, rare classes, imbalance, data too small for the method
  (content.py); likely label errors ranked by cleanlab (label_issues.py);
- slices (data.slice_columns): class balance per slice, a slice far from the rest (slices.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from tunesmith.data.quality.content import label_findings, length_findings, response_findings
from tunesmith.data.quality.duplicates import duplicate_findings
from tunesmith.data.quality.findings import Finding, QualityReport, load_report
from tunesmith.data.quality.items import SPLITS, CheckData, DataShape, read_check_data
from tunesmith.data.quality.label_issues import FrozenFeatures, label_issue_findings
from tunesmith.data.quality.slices import slice_findings
from tunesmith.data.slices import check_slice_columns
from tunesmith.errors import GateFailed, UserError
from tunesmith.recipe import Recipe

__all__ = [
    "Finding",
    "KindChecks",
    "QualityReport",
    "check_data",
    "count_text_tokens",
    "gate",
    "load_report",
    "run_checks",
    "tokenizer_counter",
]

INPUT_CHECKS = frozenset({"empty_rows", "corrupt_images", "unknown_labels"})
"""Error-level findings that are bad input (exit 2 in `train`): the data cannot be read as
the recipe says, so no guard setting can let training go on."""


def check_data(
    recipe: Recipe, console: Console | None = None, label_issues: bool | None = None
) -> QualityReport:
    """Read the recipe's data as training would and run every check that fits its task:
    the task kind's own `check_data` (tasks/<kind>/kind.py), which for the built-in kinds is
    `run_checks` below. `label_issues` overrides guards.label_issues (the only check that
    runs the model)."""
    from tunesmith.tasks.registry import get_task

    return get_task(recipe.task).check_data(recipe, console or Console(), label_issues)


TokenCounter = Callable[[Recipe, CheckData], Callable[[Sequence[str]], list[int]] | None]
"""Makes the function that counts each text's tokens as training will (for `truncated`)."""


def tokenizer_counter(
    recipe: Recipe, extra: int = 0, tokenizer: Any = None
) -> Callable[[Sequence[str]], list[int]]:
    """Token counts with the recipe model's tokenizer, plus `extra` tokens per row (a chat
    template's own tokens)."""
    if tokenizer is None:
        from tunesmith.models.resolve import resolve_model
        from tunesmith.models.text import load_tokenizer

        tokenizer = load_tokenizer(resolve_model(recipe.model))

    def count(texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        ids = tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
        return [len(row) + extra for row in ids]

    return count


def count_text_tokens(recipe: Recipe, data: CheckData) -> Callable[[Sequence[str]], list[int]]:
    """The plain counter: the model's tokenizer on each text."""
    return tokenizer_counter(recipe)


@dataclass(frozen=True)
class KindChecks:
    """How a task kind's data is checked: what its rows hold, how its tokens are counted
    (None: no tokenizer, e.g. images) and its frozen pre-trained features for the label-issue
    search (None: no labels to check)."""

    shape: DataShape
    count_tokens: TokenCounter | None = None
    frozen_features: FrozenFeatures | None = None


def run_checks(
    recipe: Recipe,
    checks: KindChecks,
    console: Console | None = None,
    label_issues: bool | None = None,
) -> QualityReport:
    """Every shared check that fits the kind's data: read problems, duplicates and leakage,
    lengths; then labels and label issues (labelled data) or canned responses
    (instructions)."""
    console = console or Console()
    check_slice_columns(recipe.data)
    data = read_check_data(recipe, checks.shape)
    findings: list[Finding] = list(data.findings)
    summary: dict = {
        "task": recipe.task,
        "model": recipe.model,
        "method": recipe.method.name,
        "rows": {name: len(data.splits[name]) for name in SPLITS},
        "files": {name: data.splits[name].file for name in SPLITS},
    }
    duplicates, counts = duplicate_findings(data)
    findings += duplicates
    summary.update(counts)
    counter = checks.count_tokens(recipe, data) if checks.count_tokens else None
    rows, lengths = length_findings(data, recipe, counter)
    findings += rows
    summary.update(lengths)
    if data.shape == "instructions":
        findings += response_findings(data)
        summary["format"] = data.format
    else:
        labels, label_summary = label_findings(data, recipe)
        findings += labels
        summary["labels"] = data.label_names
        summary.update(label_summary)
        wanted = recipe.guards.label_issues if label_issues is None else label_issues
        if wanted and checks.frozen_features is not None:
            issues, issue_summary = label_issue_findings(
                data, recipe, console, checks.frozen_features
            )
            findings += issues
            summary.update(issue_summary)
    slices, slice_summary = slice_findings(data, recipe, labelled=data.shape != "instructions")
    findings += slices
    summary.update(slice_summary)
    return QualityReport(findings, summary)


def gate(report: QualityReport, mode: str) -> None:
    """guards.data_quality: error refuses error-level findings (exit 1), warn lets them
    through (they are recorded), off skips the check altogether."""
    errors = report.errors
    unreadable = [f for f in errors if f.check in INPUT_CHECKS]
    if unreadable:  # bad input, whatever the guard says: training could not read it either
        raise UserError("\n".join(_describe(f) for f in unreadable))
    if mode != "error" or not errors:
        return
    lines = "\n".join(_describe(f) for f in errors)
    raise GateFailed(
        f"the data check found {len(errors)} problem(s) that would spoil this run:\n{lines}\n"
        "Fix the data (see `tunesmith data check RECIPE --output DIR` for every row), or train "
        "anyway with --set guards.data_quality=warn (the findings go into the report)"
    )


def _describe(finding: Finding) -> str:
    where = f"{finding.file}: " if finding.file else ""
    fix = f"\n    fix: {finding.fix}" if finding.fix else ""
    return f"  - {finding.check} ({finding.split}): {where}{finding.message}{fix}"
