"""Checks on single rows and on the label set: too short or overlong rows, repeated answers,
label names that differ only in spelling, rare classes, imbalance, and data too small for
the method."""

from __future__ import annotations

import difflib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from tunesmith.data.quality.findings import Finding, row_list
from tunesmith.data.quality.items import SPLITS, CheckData, SplitItems
from tunesmith.data.quality.similarity import normalise_text
from tunesmith.recipe import Recipe

SHORT_CHARACTERS = 3
"""A text to classify with fewer characters (after normalising) carries almost no signal."""
TRUNCATION_WARNING = 0.05
"""Share of truncated rows from which truncation is a warning, not a note."""
RARE_CLASS = 5
"""Training examples a class needs at the least to be learnt and scored at all."""
IMBALANCE_WARNING = 10.0
"""Largest class / smallest class in train from which the imbalance is a warning."""
SIMILAR_LABEL_NAMES = 0.85
"""difflib ratio from which two different label names look like one misspelt class."""
REPEATED_RESPONSE = 3
"""causal-lm: the same response to this many different prompts is a canned answer."""
LABEL_LIKE_ANSWERS = 20
"""causal-lm: at most this many distinct answers, each at most LABEL_LIKE_WORDS words and
together answering LABEL_LIKE_SHARE of the rows, make the answers a label set: the data is
a classification posed as instructions, not canned replies."""
LABEL_LIKE_WORDS = 5
LABEL_LIKE_SHARE = 0.9
FULL_FINE_TUNING_ROWS = 1_000
"""Fewer training rows than this make full fine-tuning a likely overfit."""
TOO_FEW_ROWS = 10
"""Fewer training rows than this can be neither learnt from nor measured."""
SHOWN_LABELS = 8
"""Labels named in a message; the rest are counted."""


def length_findings(
    data: CheckData, recipe: Recipe, count_tokens: Callable[[Sequence[str]], list[int]] | None
) -> tuple[list[Finding], dict]:
    """Too short texts (classification), and rows longer than preprocess.max_length tokens
    (the share that would be truncated). `count_tokens` is None when no tokenizer is
    available (image tasks)."""
    findings: list[Finding] = []
    summary: dict = {}
    max_length: int | str | None = recipe.preprocess.max_length
    shown = max_length
    if max_length == "auto":
        max_length = _auto_length(data, recipe, count_tokens)
        summary["max_length_auto"] = max_length
        shown = f"auto ({max_length})"
    for name in SPLITS:
        split = data.splits[name]
        if split.texts is None:
            continue
        if data.shape == "text":
            short = [
                row
                for row, text in zip(split.rows, split.texts, strict=True)
                if len(normalise_text(text)) < SHORT_CHARACTERS
            ]
            if short:
                findings.append(
                    Finding(
                        check="short_rows",
                        severity="warning",
                        split=name,
                        rows=short,
                        file=split.file,
                        message=f"{len(short)} text(s) have fewer than {SHORT_CHARACTERS} "
                        f"characters: rows {row_list(short)}",
                        fix="check that the text column holds the whole text, or remove them",
                    )
                )
        if count_tokens is None or max_length is None or data.format == "text":
            continue  # raw text is cut into overlapping chunks: nothing is lost
        texts = split.texts
        if split.responses is not None:
            texts = [f"{p}\n{r}" for p, r in zip(split.texts, split.responses, strict=True)]
        lengths = count_tokens(texts)
        long = [row for row, n in zip(split.rows, lengths, strict=True) if n > max_length]
        summary[f"{name}_tokens_max"] = max(lengths, default=0)
        if long:
            what = "responses are cut short" if data.shape == "instructions" else "texts are cut"
            findings.append(
                truncated_finding(
                    split,
                    long,
                    max(lengths),
                    f"are longer than preprocess.max_length={shown} tokens, so their {what}",
                    _longer_fix(max(lengths), max_length, recipe),
                )
            )
    return findings, summary


def truncated_finding(
    split: SplitItems, long: list[int], longest: int, cut: str, fix: str
) -> Finding:
    """Rows of `split` that preprocess.max_length cuts (`cut` says what is too long and what
    is lost). A few cut rows are a note; from TRUNCATION_WARNING of the split on, a warning:
    one rule for every task kind."""
    share = len(long) / max(len(split), 1)
    return Finding(
        check="truncated",
        severity="warning" if share >= TRUNCATION_WARNING else "info",
        split=split.name,
        rows=long,
        file=split.file,
        message=f"{len(long)} row(s) ({share:.1%}) {cut}: rows {row_list(long)} "
        f"(longest: {longest} tokens)",
        fix=fix,
    )


def _auto_length(
    data: CheckData, recipe: Recipe, count_tokens: Callable[[Sequence[str]], list[int]] | None
) -> int | None:
    """What `max_length: auto` will choose from the training texts (as training does)."""
    from tunesmith.data.lengths import auto_max_length
    from tunesmith.models.limits import model_position_limit
    from tunesmith.models.resolve import resolve_model

    train = data.splits["train"]
    if count_tokens is None or train.texts is None:
        return None
    limit = model_position_limit(resolve_model(recipe.model))
    return auto_max_length(count_tokens(train.texts), limit)


def _longer_fix(longest: int, max_length: int, recipe: Recipe) -> str:
    """Advice within what the model can read: never a max_length past its position limit."""
    from tunesmith.models.limits import model_position_limit
    from tunesmith.models.resolve import resolve_model

    limit = model_position_limit(resolve_model(recipe.model))
    if limit is not None and longest > limit:
        if max_length >= limit:
            return f"shorten them: the model reads at most {limit} tokens"
        return f"raise preprocess.max_length (the model reads at most {limit}) or shorten them"
    return f"raise preprocess.max_length (up to {longest}) or shorten them"


def response_findings(data: CheckData) -> list[Finding]:
    """causal-lm: the same answer to many different prompts, counted over all splits (a canned
    reply the model will learn to give to everything)."""
    by_response: dict[str, list[tuple[str, int]]] = defaultdict(list)
    prompts: dict[str, set[str]] = defaultdict(set)
    for name in SPLITS:
        split = data.splits[name]
        if split.responses is None:
            return []
        for row, prompt, response in zip(split.rows, split.texts, split.responses, strict=True):
            key = normalise_text(response)
            if key:
                by_response[key].append((name, row))
                prompts[key].add(normalise_text(prompt))
    canned = [
        where
        for key, group in by_response.items()
        if len(prompts[key]) >= REPEATED_RESPONSE
        for where in group
    ]
    labels = _label_like(by_response)
    findings = []
    for name in SPLITS:
        rows = sorted(row for split, row in canned if split == name)
        if rows and labels:
            shown = ", ".join(repr(label) for label in labels[:SHOWN_LABELS])
            more = f" and {len(labels) - SHOWN_LABELS} more" if len(labels) > SHOWN_LABELS else ""
            findings.append(
                Finding(
                    check="repeated_responses",
                    severity="info",
                    split=name,
                    rows=rows,
                    file=data.splits[name].file,
                    message=f"the answers form a small label set ({len(labels)} short answers: "
                    f"{shown}{more}): {len(rows)} row(s) repeat one of them (rows "
                    f"{row_list(rows)}); this looks like classification posed as "
                    "instructions, which a classifier learns faster and scores exactly",
                    fix="consider task: text-classification with the prompt as the text "
                    "column and the answer as the label column",
                )
            )
        elif rows:
            findings.append(
                Finding(
                    check="repeated_responses",
                    severity="warning",
                    split=name,
                    rows=rows,
                    file=data.splits[name].file,
                    message=f"{len(rows)} row(s) give a response that the data gives to "
                    f"{REPEATED_RESPONSE} or more different prompts: rows {row_list(rows)}; "
                    "the model learns to give that answer to everything",
                    fix="write a specific answer for each prompt, or keep few such rows",
                )
            )
    return findings


def _label_like(by_response: dict[str, list[tuple[str, int]]]) -> list[str]:
    """The answers, most common first, when they look like class labels (at most
    LABEL_LIKE_ANSWERS distinct short answers, two at least, answering LABEL_LIKE_SHARE of
    the rows); else []."""
    ranked = sorted(by_response, key=lambda key: -len(by_response[key]))
    labels = [key for key in ranked[:LABEL_LIKE_ANSWERS] if len(key.split()) <= LABEL_LIKE_WORDS]
    covered = sum(len(by_response[key]) for key in labels)
    total = sum(len(group) for group in by_response.values())
    if len(labels) < 2 or covered < LABEL_LIKE_SHARE * total:
        return []
    return labels


def label_findings(data: CheckData, recipe: Recipe) -> tuple[list[Finding], dict]:
    """Label names, rare classes, imbalance and data size. Counts are of the train split."""
    findings = _label_name_findings(data)
    train = data.splits["train"]
    counts = Counter(train.labels or [])
    summary: dict = {}
    if counts:
        summary["class_counts"] = dict(sorted(counts.items()))
        largest, smallest = max(counts.values()), min(counts.values())
        ratio = largest / smallest
        summary["imbalance_ratio"] = round(ratio, 2)
        rare = sorted(label for label, n in counts.items() if n < RARE_CLASS)
        if rare:
            rows = [r for r, label in zip(train.rows, train.labels, strict=True) if label in rare]
            findings.append(
                Finding(
                    check="rare_classes",
                    severity="warning",
                    split="train",
                    rows=rows,
                    file=train.file,
                    message=f"{len(rare)} class(es) have fewer than {RARE_CLASS} training "
                    f"examples: {counted_labels(rare, counts)}; they can hardly be learnt or "
                    "scored",
                    fix="add examples of these classes, or merge them into a related class",
                )
            )
        if ratio >= IMBALANCE_WARNING:
            common = max(counts, key=counts.__getitem__)
            scarce = min(counts, key=counts.__getitem__)
            findings.append(
                Finding(
                    check="imbalance",
                    severity="warning",
                    split="train",
                    rows=[],
                    file=train.file,
                    message=f"classes are imbalanced {ratio:.0f}:1 ({common!r}: {counts[common]}"
                    f", {scarce!r}: {counts[scarce]}); the model will favour the common "
                    "classes (accuracy hides it, macro F1 shows it)",
                    fix="collect more examples of the rare classes, or watch macro_f1 "
                    "(the default early-stopping metric)",
                )
            )
    findings += too_small_findings(
        train,
        recipe.method.name,
        "row",
        collect_more="collect more data (dozens of examples per class at the very least)",
        use_less="use method lora (or linear-probe for classification), or collect more data",
    )
    return findings, summary


def _label_name_findings(data: CheckData) -> list[Finding]:
    """`Positive` vs `positive `: names that normalise to one, or nearly one, class."""
    findings = []
    names = Counter(label for s in data.splits.values() for label in (s.labels or []))
    by_form: dict[str, list[str]] = defaultdict(list)
    for name in names:
        by_form[normalise_text(name)].append(name)
    same = [sorted(group, key=lambda n: -names[n]) for group in by_form.values() if len(group) > 1]
    for group in same:
        findings.append(_name_finding(data, group, "error", "differ only in case or punctuation"))
    forms = sorted(by_form)
    for i, one in enumerate(forms):
        for two in forms[i + 1 :]:
            if difflib.SequenceMatcher(None, one, two).ratio() >= SIMILAR_LABEL_NAMES:
                group = sorted(by_form[one] + by_form[two], key=lambda n: -names[n])
                findings.append(_name_finding(data, group, "warning", "are spelt almost alike"))
    spaced = sorted(
        {raw for raws in data.raw_labels.values() for raw in raws if raw != raw.strip()}
    )
    if spaced:
        findings.append(
            Finding(
                check="label_names",
                severity="info",
                split="all",
                rows=[],
                message=f"label(s) {', '.join(repr(s) for s in spaced[:5])} have spaces around "
                "them; they are stripped, so they count as the same class",
            )
        )
    return findings


def _name_finding(data: CheckData, group: list[str], severity: str, how: str) -> Finding:
    """Rows of the less common spellings (the most common one is taken as right)."""
    keep, others = group[0], set(group[1:])
    train = data.splits["train"]
    rows = [r for r, label in zip(train.rows, train.labels or [], strict=True) if label in others]
    return Finding(
        check="label_names",
        severity=severity,  # type: ignore[arg-type]
        split="train",
        rows=rows,
        file=train.file,
        message=f"label names {', '.join(repr(n) for n in group)} {how}: are they one class?",
        fix=f"use one spelling (e.g. {keep!r}) in every file",
    )


def too_small_findings(
    train: SplitItems, method: str, unit: str, collect_more: str, use_less: str
) -> list[Finding]:
    """Too few training rows to learn or measure anything (an error), or, for full
    fine-tuning, too few to update every weight without overfitting (a warning). `unit`
    names a row ("row", "pair"); `collect_more` and `use_less` are the fixes, in the kind's
    own words."""
    rows = len(train)
    if rows < TOO_FEW_ROWS:
        return [
            Finding(
                check="too_small",
                severity="error",
                split="train",
                rows=[],
                file=train.file,
                message=f"only {rows} training {unit}(s): nothing can be learnt or measured",
                fix=collect_more,
            )
        ]
    if method == "full" and rows < FULL_FINE_TUNING_ROWS:
        return [
            Finding(
                check="too_small",
                severity="warning",
                split="train",
                rows=[],
                file=train.file,
                message=f"full fine-tuning updates every weight but has only {rows} training "
                f"{unit}s; it will overfit and may forget what the model knew",
                fix=f"{use_less}; `tunesmith data curve RECIPE` trains on 25/50/100% of "
                "the rows and says whether more labelled data would help",
            )
        ]
    return []


def counted_labels(labels: list[str], counts: Counter) -> str:
    """ "'a' (3), 'b' (1) and 4 more": the first SHOWN_LABELS labels with their counts, for
    a message."""
    shown = ", ".join(f"{label!r} ({counts[label]})" for label in labels[:SHOWN_LABELS])
    more = len(labels) - SHOWN_LABELS
    return shown + (f" and {more} more" if more > 0 else "")
