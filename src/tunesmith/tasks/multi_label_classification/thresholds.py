"""Decision thresholds: a label is predicted when its probability reaches its threshold.

0.5 is rarely right for multi-label data (most labels are absent from most rows, so the
model's probabilities run low), so thresholds are tuned on the validation split, never on
test: one global threshold that maximises micro-F1, and for each label with at least
`MIN_POSITIVES` validation rows its own threshold that maximises that label's F1 (fewer
rows would make a per-label threshold a guess; those labels keep the global one).
The result is stored with the model as thresholds.json (and in metrics.json), and eval,
predict and export apply it unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

GRID = np.round(np.arange(0.02, 0.99, 0.01), 2)
"""Candidate thresholds."""
MIN_POSITIVES = 5
"""Validation rows a label needs to get a threshold of its own."""
DEFAULT = 0.5
"""The threshold when validation has no labelled row to tune on."""
FILE = "thresholds.json"
"""Beside the weights in model/ or adapter/, and in an exported folder."""


@dataclass(frozen=True)
class Thresholds:
    global_threshold: float
    own: dict[str, float] = field(default_factory=dict)
    """Labels tuned on their own (enough validation positives), and their threshold (which
    may equal the global one)."""
    validation_rows: int = 0
    min_positives: int = MIN_POSITIVES

    def vector(self, label_names: list[str]) -> np.ndarray:
        """(num_labels,) the threshold of each label, in `label_names` order."""
        return np.array([self.own.get(n, self.global_threshold) for n in label_names])

    def apply(self, probabilities: np.ndarray, label_names: list[str]) -> np.ndarray:
        """(N, num_labels) 0/1 predictions from (N, num_labels) probabilities."""
        return (probabilities >= self.vector(label_names)).astype(np.int8)

    def to_dict(self, label_names: list[str]) -> dict:
        """thresholds.json: `per_label` is what to use (every label's threshold), the rest
        says how it was chosen."""
        return {
            "global": self.global_threshold,
            "per_label": dict(zip(label_names, self.vector(label_names).tolist(), strict=True)),
            "tuned_per_label": sorted(self.own),
            "min_validation_positives": self.min_positives,
            "validation_rows": self.validation_rows,
            "objective": "global: micro-F1 on validation; per label: that label's F1",
        }

    @classmethod
    def from_dict(cls, data: dict) -> Thresholds:
        per_label = data.get("per_label", {})
        own = {str(name): float(per_label[name]) for name in data.get("tuned_per_label", [])}
        return cls(
            float(data["global"]),
            own,
            int(data.get("validation_rows", 0)),
            int(data.get("min_validation_positives", MIN_POSITIVES)),
        )

    def write(self, folder: Path, label_names: list[str]) -> Path:
        path = folder / FILE
        path.write_text(json.dumps(self.to_dict(label_names), indent=2, ensure_ascii=False))
        return path


def tune(
    probabilities: np.ndarray,
    targets: np.ndarray,
    label_names: list[str],
    min_positives: int = MIN_POSITIVES,
) -> Thresholds:
    """Thresholds from validation (N, L) probabilities and 0/1 targets. Among equally good
    thresholds the global one nearest 0.5 is kept, and a label's own nearest the global one,
    so ties never drift to an extreme."""
    truth = targets.astype(bool)
    if not truth.any():
        return Thresholds(DEFAULT, {}, len(targets), min_positives)
    tp, fp, fn = _counts(probabilities, truth)  # each (G, L)
    micro = _f1(tp.sum(1), fp.sum(1), fn.sum(1))  # (G,)
    best = _nearest_best(micro, DEFAULT)
    own = {}
    per_label = _f1(tp, fp, fn)  # (G, L)
    for j, name in enumerate(label_names):
        if truth[:, j].sum() >= min_positives:
            own[name] = _nearest_best(per_label[:, j], best)
    return Thresholds(best, own, len(targets), min_positives)


def _counts(probabilities: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, ...]:
    """True positives, false positives and false negatives per (grid threshold, label)."""
    shape = (len(GRID), truth.shape[1])
    tp, fp, fn = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for g, threshold in enumerate(GRID):
        predicted = probabilities >= threshold
        tp[g] = (predicted & truth).sum(0)
        fp[g] = (predicted & ~truth).sum(0)
        fn[g] = (~predicted & truth).sum(0)
    return tp, fp, fn


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def _nearest_best(scores: np.ndarray, anchor: float) -> float:
    top = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(GRID[top[np.argmin(np.abs(GRID[top] - anchor))]])
