"""Suspected label errors, read from the `quality.json` that `tunesmith data check` writes.

Only findings with `"check": "label_issues"` are used, and of those only the ones whose
`"file"` is DATA (or that name no file): a quality.json covers every split of a recipe.

The suspects keep the data check's ranking (most likely label error first), read as:
1. a numeric `"rank"` in a row's detail, lowest first, where the check writes one;
2. else the order of each finding's `"rows"` (then detail rows not in `"rows"`), which the
   check writes ranked; several findings for DATA (the splits of one file) are interleaved
   by the ranking score `"label_probability"` (the probability of the given label:
   cleanlab's self-confidence, lowest first), each finding keeping its own order;
3. rows with neither keep their place in the file's findings, after the ranked ones.
"""

from __future__ import annotations

import heapq
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

from tunesmith.errors import UserError

CHECK = "label_issues"
RANK = "rank"
"""A detail's explicit place in the ranking (lowest first), when the check gives one."""
SCORE = "label_probability"
"""A detail's ranking score: the lower, the likelier the given label is wrong."""


@dataclass(frozen=True)
class Suspect:
    """A row whose given label the model doubts."""

    row: int
    label: str
    """The label the row has in DATA."""
    suggested: str | None
    """The model's label, when the finding gives one."""
    confidence: float | None
    """The model's confidence in `suggested` (0-1), when given."""
    message: str
    rank: int = 0
    """Place in the data check's ranking: 0 is the likeliest label error."""


def load_suspects(path: str | Path, data: Path, given_labels: list[str]) -> dict[int, Suspect]:
    """The suspects for DATA (rows as in `given_labels`, one label per row), by row, in the
    data check's ranking (see the module's docstring), the likeliest label error first."""
    path = Path(path).expanduser()
    findings = _findings(path)
    groups: list[list[tuple[dict, Suspect]]] = []  # per finding, in its own order
    other_files: list[str] = []
    for finding in findings:
        if not isinstance(finding, dict) or finding.get("check") != CHECK:
            continue
        name = finding.get("file")
        if name and not _same_file(str(name), data, path.parent):
            other_files.append(str(name))
            continue
        details = {
            detail.get("row"): detail
            for detail in finding.get("details") or []
            if isinstance(detail, dict) and isinstance(detail.get("row"), int)
        }
        rows = list(finding.get("rows") or []) + list(details)
        group: list[tuple[dict, Suspect]] = []
        seen: set[int] = set()
        for row in rows:
            _check_row(row, len(given_labels), path, data)
            if row in seen:
                continue  # a detail's row is in "rows" too
            seen.add(row)
            detail = details.get(row, {})
            suspect = Suspect(
                row=row,
                label=given_labels[row],
                suggested=_label_text(detail.get("suggested")),
                confidence=_confidence(detail.get("confidence")),
                message=str(finding.get("message", "")),
            )
            group.append((detail, suspect))
        groups.append(group)
    suspects: dict[int, Suspect] = {}
    for _detail, suspect in _ranked(groups):
        if suspect.row not in suspects:  # a row in two findings: its better place
            suspects[suspect.row] = replace(suspect, rank=len(suspects))
    if not suspects and other_files:
        names = ", ".join(sorted(set(other_files)))
        raise UserError(
            f"--suspects {path}: its {CHECK} findings are for {names}, not for {data}; "
            f"run `tunesmith data check --data {data}` or pass the matching quality.json"
        )
    return suspects


def _ranked(groups: list[list[tuple[dict, Suspect]]]) -> list[tuple[dict, Suspect]]:
    """The findings' suspects in one ranking: by explicit rank, else interleaved by score,
    each finding keeping its own (ranked) order; equal keys keep the file's order."""
    merged = heapq.merge(*groups, key=lambda item: _number(item[0].get(SCORE), math.inf))
    return sorted(merged, key=lambda item: _number(item[0].get(RANK), math.inf))


def _number(value: object, missing: float) -> float:
    found = _confidence(value)
    return missing if found is None else found


def _findings(path: Path) -> list:
    if not path.is_file():
        raise UserError(
            f"--suspects {path}: file not found; it is the quality.json written by "
            "`tunesmith data check`"
        )
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"--suspects {path}: not valid JSON ({error})") from None
    findings = report.get("findings") if isinstance(report, dict) else None
    if not isinstance(findings, list):
        raise UserError(
            f'--suspects {path}: expected a quality.json, an object with a "findings" list, '
            "as written by `tunesmith data check`"
        )
    return findings


def _same_file(name: str, data: Path, base: Path) -> bool:
    """Relative names are tried from the working folder and from the quality.json's folder."""
    candidate = Path(name).expanduser()
    tries = [candidate] if candidate.is_absolute() else [Path.cwd() / candidate, base / candidate]
    return any(place.exists() and place.samefile(data) for place in tries)


def _check_row(row: object, n_rows: int, path: Path, data: Path) -> None:
    if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < n_rows:
        raise UserError(
            f"--suspects {path}: row {row!r} is not a row of {data} (0-based, {n_rows} rows); "
            "was it written for another version of the file? Run `tunesmith data check` again"
        )


def _label_text(value: object) -> str | None:
    """Labels as tunesmith reads them: 1.0 -> "1", surrounding spaces dropped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip() or None


def _confidence(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
