"""Bias in the data: per `data.slice_columns` column, the class balance of each slice value
(labelled kinds) or its row count (generative kinds), and a warning for a slice whose labels
are distributed far from the rest of the rows.

"Far" is two standard tests at once, so neither a small slice nor a large but mild
difference is over-read: the total variation distance between the slice's label
distribution and the rest's is at least `MIN_DISTANCE` (a quarter of the rows would have to
change class), and the chi-square test of independence (slice vs rest by label) rejects
independence at p < `MAX_P`."""

from __future__ import annotations

from collections import Counter

import numpy as np
from scipy.stats import chi2_contingency

from tunesmith.data.quality.findings import Finding
from tunesmith.data.quality.items import SPLITS, CheckData
from tunesmith.data.slices import slice_values
from tunesmith.recipe import Recipe

MIN_DISTANCE = 0.25
MAX_P = 0.001
SHOWN_VALUES = 8
"""Slice values named in the info message (by size); quality.json keeps all of them."""


def slice_findings(data: CheckData, recipe: Recipe, labelled: bool) -> tuple[list[Finding], dict]:
    """(findings, {"slices": {column: {value: {"rows", "labels"}}}}) over every split's rows
    (train, validation and test together: the data as a whole); `labelled` False counts rows
    only (generative kinds, label sets)."""
    columns = recipe.data.slice_columns
    if not columns:
        return [], {}
    values: dict[str, list[str]] = {column: [] for column in columns}
    labels: list[str] = []
    for name in SPLITS:
        split = data.splits[name]
        if not len(split):
            continue
        for column, cells in slice_values(recipe.data, split.file, split.rows).items():
            values[column].extend(cells)
        labels.extend(split.labels or [""] * len(split))
    findings: list[Finding] = []
    summary: dict = {}
    for column in columns:
        table = _balance(values[column], labels, labelled)
        summary[column] = table
        findings.append(_info(column, table, labelled))
        if labelled:
            findings += _skewed(column, values[column], labels)
    return findings, {"slices": summary}


def _balance(cells: list[str], labels: list[str], labelled: bool) -> dict:
    sizes = Counter(cells)
    out: dict = {}
    for value, rows in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        entry: dict = {"rows": rows}
        if labelled:
            counts = Counter(
                label for cell, label in zip(cells, labels, strict=True) if cell == value
            )
            entry["labels"] = dict(sorted(counts.items()))
        out[value] = entry
    return out


def _info(column: str, table: dict, labelled: bool) -> Finding:
    parts = []
    for value, entry in list(table.items())[:SHOWN_VALUES]:
        if labelled:
            shares = ", ".join(
                f"{label} {100 * count / entry['rows']:.0f}%"
                for label, count in sorted(entry["labels"].items(), key=lambda kv: -kv[1])
            )
            parts.append(f"{value!r} {entry['rows']} rows ({shares})")
        else:
            parts.append(f"{value!r} {entry['rows']} rows")
    more = f" and {len(table) - SHOWN_VALUES} more" if len(table) > SHOWN_VALUES else ""
    what = "class balance" if labelled else "rows"
    return Finding(
        check="slice_balance",
        severity="info",
        split="all",
        rows=[],
        message=f"{what} per {column!r} slice: " + "; ".join(parts) + more,
    )


def _skewed(column: str, cells: list[str], labels: list[str]) -> list[Finding]:
    """A warning per slice whose label distribution is far from the other rows'."""
    names = sorted(set(labels))
    cells_array, labels_array = np.asarray(cells, dtype=object), np.asarray(labels, dtype=object)
    findings = []
    for value in sorted(set(cells)):
        inside = cells_array == value
        if inside.all() or len(names) < 2:
            continue
        counts = np.array(
            [
                [np.sum(labels_array[inside] == n) for n in names],
                [np.sum(labels_array[~inside] == n) for n in names],
            ]
        )
        share_in, share_out = counts[0] / counts[0].sum(), counts[1] / counts[1].sum()
        distance = 0.5 * float(np.abs(share_in - share_out).sum())
        p_value = float(chi2_contingency(counts)[1])
        if distance < MIN_DISTANCE or p_value >= MAX_P:
            continue
        rows = int(counts[0].sum())
        gaps = sorted(range(len(names)), key=lambda i: -abs(share_in[i] - share_out[i]))[:3]
        shown = "; ".join(
            f"{names[i]!r} {100 * share_in[i]:.0f}% here vs {100 * share_out[i]:.0f}% elsewhere"
            + (" (absent here)" if counts[0][i] == 0 else "")
            for i in gaps
        )
        findings.append(
            Finding(
                check="slice_skew",
                severity="warning",
                split="all",
                rows=[],
                message=f"slice {column}={value!r} ({rows} rows) has labels far from the other "
                f"rows (total variation distance {distance:.2f}, chi-square p = {p_value:.1g}): "
                f"{shown}",
                fix="check how this slice was collected and labelled; add rows of its "
                "missing classes, and read its own test metrics (metrics.json `slices`)",
                details=[{"column": column, "value": value, "rows": rows, "distance": distance}],
            )
        )
    return findings
