"""Exact and near duplicates, conflicting labels on duplicates, and leakage between splits.

All rows of all splits are compared at once. A pair in one split is a duplicate (the later
row is flagged, the first kept); a pair across train and a held-out split is leakage (the
training row is flagged: removing it keeps the evaluation set as it is); duplicates whose
labels differ are a conflict (every row of the group is flagged)."""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunesmith.data.quality.findings import Finding, Severity, row_list
from tunesmith.data.quality.items import SPLITS, CheckData
from tunesmith.data.quality.similarity import (
    ImagePrint,
    near_image_pairs,
    near_text_pairs,
    normalise_text,
)

Ref = tuple[str, int]
"""(split, position in that split)."""


@dataclass
class _Kind:
    severity: Severity
    message: str
    """Formatted with n (rows), rows (their list) and split."""
    fix: str


KINDS = {
    "exact_duplicates": _Kind(
        "warning",
        "{n} row(s) repeat an earlier row of the {split} split exactly (after normalising case, "
        "spaces, punctuation and Unicode forms): rows {rows}; repeated rows weigh more in "
        "training and in the scores",
        "remove the repeated rows (the first of each group is kept)",
    ),
    "near_duplicates": _Kind(
        "warning",
        "{n} row(s) are near copies of an earlier row of the {split} split (a few characters "
        "or pixels apart): rows {rows}",
        "check them and remove the copies",
    ),
    "conflicting_labels": _Kind(
        "error",
        "{n} row(s) of the {split} split have exact duplicates with a different label: rows "
        "{rows}; the model is taught two answers for the same input",
        "give each group of duplicates its correct label, or remove the wrong rows",
    ),
    "near_duplicate_conflicts": _Kind(
        "warning",
        "{n} row(s) of the {split} split are near copies of a row with a different label: "
        "rows {rows}",
        "check their labels (`tunesmith annotate` shows them)",
    ),
    "leakage": _Kind(
        "error",
        "{n} row(s) of the {split} split also appear in {other}: rows {rows}; scores on "
        "{other} would reward memorising them",
        "remove these rows from {split} (or from {other})",
    ),
    "near_leakage": _Kind(
        "warning",
        "{n} row(s) of the {split} split are near copies of rows in {other}: rows {rows}",
        "check them and remove the copies from {split}",
    ),
    "conflicting_responses": _Kind(
        "warning",
        "{n} prompt(s) of the {split} split are repeated with different responses: rows {rows}",
        "keep one response per prompt unless the variety is wanted",
    ),
}


@dataclass
class _Collected:
    rows: dict[tuple[str, str, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    details: dict[tuple[str, str, str], list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    seen: set[tuple[str, str, int]] = field(default_factory=set)

    def add(self, check: str, ref: Ref, against: str, data: CheckData, **detail: Any) -> None:
        split, position = ref
        row = data.splits[split].rows[position]
        if (check, split, row) in self.seen:
            return
        self.seen.add((check, split, row))
        key = (check, split, against)
        self.rows[key].append(row)
        self.details[key].append({"row": row, **detail})


def duplicate_findings(data: CheckData) -> tuple[list[Finding], dict[str, int]]:
    """Findings, and counts for the summary."""
    refs: list[Ref] = [(name, i) for name in SPLITS for i in range(len(data.splits[name]))]
    if not refs:
        return [], {}
    collected = _Collected()
    images = data.splits["train"].paths is not None
    if images:
        prints = _image_prints(data, refs)
        exact_keys = [p.digest for p in prints]
        leak_keys = exact_keys
        near = near_image_pairs(prints)
        near_leak = near
    else:
        prompts = [normalise_text(_text(data, ref)) for ref in refs]
        responses = [normalise_text(_response(data, ref)) for ref in refs]
        exact_keys = [f"{p}\x00{r}" for p, r in zip(prompts, responses, strict=True)]
        leak_keys = prompts
        near_leak = near_text_pairs(prompts)
        near = near_leak if data.shape != "instructions" else _same_response(near_leak, responses)

    groups = _groups(exact_keys)
    for members in groups:
        _exact_group(members, refs, data, collected)
    if data.shape == "instructions":
        for members in _groups(leak_keys):
            _prompt_group(members, refs, data, collected)
    _leaks(_groups(leak_keys), refs, data, collected)
    _near(near, near_leak, exact_keys, leak_keys, refs, data, collected)

    findings = [_finding(key, rows, collected, data) for key, rows in collected.rows.items()]
    counts = {
        "exact_duplicate_groups": sum(1 for g in groups if len(g) > 1),
        "near_duplicate_pairs": len(near),
    }
    return findings, counts


def _exact_group(members: list[int], refs: list[Ref], data: CheckData, out: _Collected) -> None:
    if len(members) < 2:
        return
    labels = {_label(data, refs[m]) for m in members}
    if len(labels) > 1:
        for m in members:
            out.add(
                "conflicting_labels",
                refs[m],
                "",
                data,
                label=_label(data, refs[m]),
                group=[_where(data, refs[o]) for o in members if o != m],
                labels=sorted(labels),
            )
    first_in: dict[str, int] = {}
    for m in members:
        split = refs[m][0]
        if split in first_in:
            out.add(
                "exact_duplicates", refs[m], "", data, same_as=_where(data, refs[first_in[split]])
            )
        else:
            first_in[split] = m


def _prompt_group(members: list[int], refs: list[Ref], data: CheckData, out: _Collected) -> None:
    """causal-lm: one prompt, several different responses."""
    by_split: dict[str, list[int]] = defaultdict(list)
    for m in members:
        by_split[refs[m][0]].append(m)
    for split_members in by_split.values():
        responses = {normalise_text(_response(data, refs[m])) for m in split_members}
        if len(split_members) > 1 and len(responses) > 1:
            for m in split_members:
                out.add("conflicting_responses", refs[m], "", data)


def _leaks(groups: list[list[int]], refs: list[Ref], data: CheckData, out: _Collected) -> None:
    for members in groups:
        splits = {refs[m][0] for m in members}
        if len(splits) < 2:
            continue
        for m in members:
            split = refs[m][0]
            others = [o for o in members if refs[o][0] != split]
            other_splits = sorted({refs[o][0] for o in others}, key=SPLITS.index)
            # flag the earlier split's row: train before validation before test
            if SPLITS.index(split) < SPLITS.index(other_splits[0]):
                out.add(
                    "leakage",
                    refs[m],
                    other_splits[0],
                    data,
                    same_as=_where(data, next(refs[o] for o in others)),
                )


def _near(
    near: np.ndarray,
    near_leak: np.ndarray,
    exact_keys: list[str],
    leak_keys: list[str],
    refs: list[Ref],
    data: CheckData,
    out: _Collected,
) -> None:
    for a, b in near:
        if exact_keys[a] == exact_keys[b]:
            continue
        first, second = refs[a], refs[b]
        if first[0] == second[0]:
            out.add("near_duplicates", second, "", data, same_as=_where(data, first))
            if data.shape != "instructions" and _label(data, first) != _label(data, second):
                for one, two in ((first, second), (second, first)):
                    out.add(
                        "near_duplicate_conflicts",
                        one,
                        "",
                        data,
                        label=_label(data, one),
                        other=_where(data, two),
                        other_label=_label(data, two),
                    )
    for a, b in near_leak:
        if leak_keys[a] == leak_keys[b] or refs[a][0] == refs[b][0]:
            continue
        first, second = sorted((refs[a], refs[b]), key=lambda r: SPLITS.index(r[0]))
        out.add("near_leakage", first, second[0], data, same_as=_where(data, second))


def _finding(
    key: tuple[str, str, str], rows: list[int], collected: _Collected, data: CheckData
) -> Finding:
    check, split, other = key
    kind = KINDS[check]
    severity = kind.severity
    if check == "leakage" and split != "train":
        severity = "warning"  # validation vs test: no training on it, scores still doubtful
    order = np.argsort(rows, kind="stable")
    ordered = [rows[i] for i in order]
    text = {"n": len(rows), "rows": row_list(ordered), "split": split, "other": other}
    return Finding(
        check=check,
        severity=severity,
        split=split,
        rows=ordered,
        file=data.splits[split].file,
        message=kind.message.format(**text),
        fix=kind.fix.format(**text),
        details=[collected.details[key][i] for i in order],
    )


def _groups(keys: list[str]) -> list[list[int]]:
    by_key: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        if key.strip("\x00"):
            by_key[key].append(i)
    return [members for members in by_key.values() if len(members) > 1]


def _same_response(pairs: np.ndarray, responses: list[str]) -> np.ndarray:
    """causal-lm near duplicates: near prompts with the same (normalised) response."""
    if len(pairs) == 0:
        return pairs
    keep = [responses[a] == responses[b] for a, b in pairs]
    return pairs[np.asarray(keep, dtype=bool)]


def _image_prints(data: CheckData, refs: list[Ref]) -> list[ImagePrint]:
    paths = [data.splits[s].paths[i] for s, i in refs]  # type: ignore[index]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(ImagePrint, paths, chunksize=64))


def _text(data: CheckData, ref: Ref) -> str:
    return data.splits[ref[0]].texts[ref[1]]  # type: ignore[index]


def _response(data: CheckData, ref: Ref) -> str:
    responses = data.splits[ref[0]].responses
    return responses[ref[1]] if responses is not None else ""


def _label(data: CheckData, ref: Ref) -> str | None:
    labels = data.splits[ref[0]].labels
    return labels[ref[1]] if labels is not None else None


def _where(data: CheckData, ref: Ref) -> dict[str, Any]:
    return {"split": ref[0], "row": data.splits[ref[0]].rows[ref[1]]}
