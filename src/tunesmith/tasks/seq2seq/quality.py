"""The data check of seq2seq pairs: empty inputs or targets, exact and near duplicates,
one input with different targets, test inputs leaking into train, canned targets, rows cut
by preprocess.max_length, and too little data. The splits are made as training makes them,
so "row 12 of the test split" is the row training will hold out."""

from __future__ import annotations

from tunesmith.data.quality import tokenizer_counter
from tunesmith.data.quality.content import (
    response_findings,
    too_small_findings,
    truncated_finding,
)
from tunesmith.data.quality.duplicates import duplicate_findings
from tunesmith.data.quality.findings import Finding, QualityReport, empty_rows_finding
from tunesmith.data.quality.items import CheckData, SplitItems
from tunesmith.data.quality.slices import slice_findings
from tunesmith.data.slices import check_slice_columns
from tunesmith.errors import UserError
from tunesmith.recipe import Recipe
from tunesmith.tasks.seq2seq.data import (
    SPLITS,
    PairSplits,
    ReadRows,
    read_recipe_files,
    split_pairs,
)


def seq2seq_checks(recipe: Recipe) -> QualityReport:
    check_slice_columns(recipe.data)
    read = read_recipe_files(recipe.data, lenient=True)
    if not read["train"].pairs:
        raise UserError(
            f"data.train: {read['train'].file}: every row has an empty input or target; fill "
            "them in"
        )
    splits = split_pairs(read, recipe.data, recipe.train.seed)
    # prompt/response pairs as the shared checks know them from instruction data
    data = CheckData(recipe.task, _items(splits), shape="instructions", format=splits.format)
    findings = [finding for name, rows in read.items() for finding in _empty(name, rows, recipe)]
    duplicates, counts = duplicate_findings(data)
    findings += duplicates + response_findings(data)
    truncated, lengths = _truncated(data, recipe)
    findings += truncated + too_small_findings(
        data.splits["train"],
        recipe.method.name,
        "pair",
        collect_more="collect more pairs (a few hundred at the very least)",
        use_less="use method lora, or collect more pairs",
    )
    summary = {
        "task": recipe.task,
        "model": recipe.model,
        "method": recipe.method.name,
        "format": splits.format,
        "rows": {name: len(data.splits[name]) for name in SPLITS},
        "files": {name: data.splits[name].file for name in SPLITS},
        **counts,
        **lengths,
    }
    slices, slice_summary = slice_findings(data, recipe, labelled=False)
    return QualityReport(findings + slices, summary | slice_summary)


def _items(splits: PairSplits) -> dict[str, SplitItems]:
    def items(name: str) -> SplitItems:
        split = splits.split(name)
        rows = [pair.row for pair in split.pairs]
        return SplitItems(name, split.file, rows, texts=split.sources, responses=split.targets)

    return {name: items(name) for name in SPLITS}


def _empty(split: str, read: ReadRows, recipe: Recipe) -> list[Finding]:
    if not read.empty:
        return []
    dropped = recipe.data.drop_empty
    return [empty_rows_finding(split, read.file, read.empty, "input or target", dropped)]


def _truncated(data: CheckData, recipe: Recipe) -> tuple[list[Finding], dict]:
    """Inputs or targets longer than preprocess.max_length tokens: a cut input loses what the
    answer may rest on, a cut target teaches the model to stop mid-sentence. Counted with
    the model's tokenizer; without the model (`data check --data` names none, and the
    default is not cached) this check alone is skipped, and the report says so."""
    try:
        count = tokenizer_counter(recipe)
    except UserError:
        return [_skipped(recipe.model)], {}
    limit = recipe.preprocess.max_length
    findings, summary = [], {}
    for name in SPLITS:
        split = data.splits[name]
        sources, targets = count(split.texts or []), count(split.responses or [])
        summary[f"{name}_input_tokens_max"] = max(sources, default=0)
        summary[f"{name}_target_tokens_max"] = max(targets, default=0)
        long = [
            row
            for row, s, t in zip(split.rows, sources, targets, strict=True)
            if s > limit or t > limit
        ]
        if not long:
            continue
        longest = max(max(sources), max(targets))
        findings.append(
            truncated_finding(
                split,
                long,
                longest,
                f"have an input or target longer than preprocess.max_length={limit} tokens, "
                "so it is cut",
                f"raise preprocess.max_length (up to {longest}) or shorten them",
            )
        )
    return findings, summary


def _skipped(model: str | None) -> Finding:
    return Finding(
        check="truncated",
        severity="info",
        split="all",
        rows=[],
        message=f"lengths not checked: {model} is not on this machine, so tokens cannot be counted",
        fix="name a local model folder with --set model=FOLDER (or check with a recipe)",
    )
