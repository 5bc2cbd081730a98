"""Classification metrics, defined once: every report, history line and benchmark uses these."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)


def lower_is_better(name: str) -> bool:
    """Losses (also hamming_loss) and perplexities improve downwards; every other metric
    (accuracy, F1, ROUGE, exact match) improves upwards."""
    return name.endswith("loss") or name.endswith("perplexity")


def classification_metrics(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    label_names: Sequence[str],
    loss: float | None = None,
    detailed: bool = False,
) -> dict:
    """accuracy, macro-F1 (over the labels present in y_true or y_pred), optional loss.

    `detailed` adds per-class precision/recall/F1/support and the confusion matrix
    (rows: true label, columns: predicted, in `label_names` order).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    out: dict = {}
    if loss is not None:
        out["loss"] = float(loss)
    out["accuracy"] = float(accuracy_score(y_true, y_pred))
    out["macro_f1"] = float(f1_score(y_true, y_pred, average="macro", zero_division=0))
    if detailed:
        ids = list(range(len(label_names)))
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=ids, zero_division=0
        )
        out["per_class"] = {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(label_names)
        }
        out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=ids).tolist()
    return out


def is_improvement(
    metric: str, value: float, best: float | None, min_delta: float = 0.0, relative: float = 0.0
) -> bool:
    """Whether `value` beats `best` by more than min_delta and by more than `relative`
    times |best|."""
    if best is None:
        return True
    margin = max(min_delta, relative * abs(best))
    if lower_is_better(metric):
        return value < best - margin
    return value > best + margin
