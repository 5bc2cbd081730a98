"""Metrics per slice (`data.slice_columns`): every test metric of the fine-tuned model for
each slice value, the worst slice by the headline metric, and a warning where a slice
scores far below the rest of the test rows.

A task kind hands over its per-example test results (`ExampleResults`, from its family's
`test_examples`); this module never knows the kind. "Far below" is judged with a 95%
interval of the slice's own score, so a slice of 6 rows is not over-read: the Wilson
interval where the headline is a mean of 0/1 outcomes (accuracy, exact match), else a
percentile bootstrap of the slice's rows; a slice is warned about only when the whole
interval lies on the bad side of the score of the other rows."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from rich.markup import escape

from tunesmith.data.slices import slice_values
from tunesmith.evaluate.metrics import lower_is_better
from tunesmith.recipe import DataConfig

Z95 = 1.959963984540054
BOOTSTRAP = 400
"""Resamples of a slice's rows for a metric that is not a mean of per-example outcomes."""
MIN_ROWS = 3
"""Slices with fewer test rows are listed but never judged (no interval says anything)."""


@dataclass
class ExampleResults:
    """Per-example results of one split, from which the metrics of any subset follow."""

    source: str
    """The file the examples came from."""
    rows: Sequence[int]
    """Each example's 0-based row in `source`."""
    metrics_of: Callable[[np.ndarray], dict]
    """Indices of examples -> their metrics (the names of the kind's test metrics)."""
    per_example: dict[str, np.ndarray] = field(default_factory=dict)
    """Metrics that are the mean of one value per example (accuracy: 1 or 0, loss)."""


def slice_metrics(
    data: DataConfig, results: ExampleResults | None, headline: str, seed: int = 0
) -> dict:
    """metrics.json's `slices` ({column: {value: {rows, metrics...}}}), `slices_worst`
    ({column: the worst value by `headline`, its score, interval and the rest's score})
    and `slices_warnings` (the slices far below the rest); {} without slice columns.
    `results` None: the kind gives no per-example results (said in `slices_skipped`)."""
    if not data.slice_columns:
        return {}
    if results is None:
        return {"slices_skipped": "this task kind gives no per-example test results"}
    values = slice_values(data, results.source, results.rows, "data.test")
    rng = np.random.default_rng(seed)
    slices: dict = {}
    worst: dict = {}
    warnings: list[dict] = []
    everyone = np.arange(len(results.rows))
    for column, cells in values.items():
        cells_array = np.asarray(cells, dtype=object)
        table: dict = {}
        judged: list[dict] = []
        for value in sorted(set(cells), key=lambda v: (-int(np.sum(cells_array == v)), v)):
            inside = everyone[cells_array == value]
            outside = everyone[cells_array != value]
            metrics = _plain(results.metrics_of(inside))
            table[value] = {"rows": len(inside), **metrics}
            if headline not in metrics:
                continue
            entry = {
                "value": value,
                "rows": len(inside),
                "metric": headline,
                "score": metrics[headline],
            }
            if len(outside):
                entry["rest"] = _plain(results.metrics_of(outside)).get(headline)
            if len(inside) >= MIN_ROWS:
                entry["interval"] = list(_interval(results, inside, headline, rng))
            judged.append(entry)
        slices[column] = table
        if not judged:
            continue
        low = lower_is_better(headline)
        pick = max if low else min
        worst[column] = pick(judged, key=lambda e: e["score"])
        for entry in judged:
            if _far_below(entry, low):
                warnings.append({"column": column, **entry, "message": _message(column, entry)})
    return {"slices": slices, "slices_worst": worst, "slices_warnings": warnings}


def _far_below(entry: dict, lower_better: bool) -> bool:
    """The slice's whole 95% interval lies on the bad side of the other rows' score."""
    rest, interval = entry.get("rest"), entry.get("interval")
    if rest is None or interval is None:
        return False
    return interval[0] > rest if lower_better else interval[1] < rest


def _message(column: str, entry: dict) -> str:
    low, high = entry["interval"]
    return (
        f"slice {column}={entry['value']!r} ({entry['rows']} test rows): {entry['metric']} "
        f"{entry['score']:.3f} (95% interval {low:.3f}-{high:.3f}) against {entry['rest']:.3f} "
        "on the other rows"
    )


def _interval(
    results: ExampleResults, inside: np.ndarray, metric: str, rng: np.random.Generator
) -> tuple[float, float]:
    per_example = results.per_example.get(metric)
    if per_example is not None:
        scores = np.asarray(per_example, dtype=float)[inside]
        if np.isin(scores, (0.0, 1.0)).all():
            return wilson(int(scores.sum()), len(scores))
        draws = scores[rng.integers(0, len(scores), (BOOTSTRAP, len(scores)))].mean(axis=1)
    else:
        draws = np.array(
            [
                results.metrics_of(inside[rng.integers(0, len(inside), len(inside))])[metric]
                for _ in range(BOOTSTRAP)
            ],
            dtype=float,
        )
    low, high = np.percentile(draws, [2.5, 97.5])
    return round(float(low), 6), round(float(high), 6)


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The Wilson score 95% interval of a proportion: honest for small n and for 0 or n
    successes, where the normal approximation collapses to a point."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return round(max(0.0, centre - half), 6), round(min(1.0, centre + half), 6)


def _plain(metrics: dict) -> dict:
    """The scalar metrics (per-class tables and confusion matrices stay with the whole split)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)
    }


def describe_slices(metrics: dict) -> list[str]:
    """Console lines (rich markup, values escaped): the worst slice of each column and
    every warning."""
    lines = []
    for column, entry in metrics.get("slices_worst", {}).items():
        rest = entry.get("rest")
        lines.append(
            escape(
                f"Worst {column} slice: {entry['value']!r} ({entry['rows']} test rows), "
                f"{entry['metric']} {entry['score']:.3f}"
                + (f" vs {rest:.3f} on the rest" if rest is not None else "")
            )
        )
    lines += [
        f"[yellow]Warning: {escape(w['message'])}" for w in metrics.get("slices_warnings", [])
    ]
    if "slices_skipped" in metrics:
        lines.append(escape(f"Metrics per slice skipped: {metrics['slices_skipped']}"))
    return lines
