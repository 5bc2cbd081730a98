"""The data-quality gate: `check_data` runs every check that fits the recipe's task, `gate`
refuses to train on error-level findings (guards.data_quality: error).

Checks, each with its severity and rows (0-based, in the split's file):
- read: empty rows, unreadable images, labels unseen in train (items.py);
- duplicates: exact and near, conflicting labels, leakage between splits (duplicates.py);
- rows: too short, truncated by preprocess.max_length, canned LLM responses (content.py);
- labels: near-identical names, rare classes, imbalance, data too small for the method
  (content.py); likely label errors ranked by cleanlab (label_issues.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.console import Console

from tunesmith.data.quality.content import label_findings, length_findings, response_findings
from tunesmith.data.quality.duplicates import duplicate_findings
from tunesmith.data.quality.findings import Finding, QualityReport, load_report
from tunesmith.data.quality.items import SPLITS, CheckData, read_check_data
from tunesmith.data.quality.label_issues import label_issue_findings
from tunesmith.errors import GateFailed, UserError
from tunesmith.recipe import Recipe

__all__ = ["Finding", "QualityReport", "check_data", "gate", "load_report", "run_checks"]

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


def run_checks(
    recipe: Recipe, console: Console | None = None, label_issues: bool | None = None
) -> QualityReport:
    """The checks of text-classification, causal-lm and image-classification data."""
    console = console or Console()
    data = read_check_data(recipe)
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
    rows, lengths = length_findings(data, recipe, _token_counter(recipe, data))
    findings += rows
    summary.update(lengths)
    if recipe.task == "causal-lm":
        findings += response_findings(data)
        summary["format"] = data.format
    else:
        labels, label_summary = label_findings(data, recipe)
        findings += labels
        summary["labels"] = data.label_names
        summary.update(label_summary)
        if recipe.guards.label_issues if label_issues is None else label_issues:
            issues, issue_summary = label_issue_findings(data, recipe, console)
            findings += issues
            summary.update(issue_summary)
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


def _token_counter(recipe: Recipe, data: CheckData) -> Callable[[Sequence[str]], list[int]] | None:
    """Token counts with the recipe model's tokenizer (causal-lm: plus the chat template's
    own tokens); None for image tasks."""
    if recipe.task == "image-classification":
        return None
    from tunesmith.models.resolve import resolve_model
    from tunesmith.models.text import load_tokenizer

    tokenizer = load_tokenizer(resolve_model(recipe.model))
    overhead = 0
    if recipe.task == "causal-lm" and data.format != "text":
        from tunesmith.models.causal_lm import prepare_tokenizer
        from tunesmith.tasks.causal_lm.task import render

        tokenizer = prepare_tokenizer(tokenizer)
        messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
        rendered = render(tokenizer, messages, prompt=False)
        overhead = len(tokenizer(rendered)["input_ids"]) - len(tokenizer("x\ny")["input_ids"])

    def count(texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        ids = tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
        return [len(row) + overhead for row in ids]

    return count
