"""Multi-label metrics, defined once for the fine-tuned model, its contenders and eval.

- micro_f1: F1 over every (row, label) decision, so common labels weigh most;
- macro_f1: the mean of each label's F1, over the labels present in the split (in its
  targets or its predictions), so a rare label counts as much as a common one;
- subset_accuracy: rows whose predicted label set is exactly right (sklearn's accuracy of
  multi-label data; an empty set is right for a row without labels);
- hamming_loss: share of wrong (row, label) decisions (lower is better);
- loss: binary cross-entropy per label, averaged over rows and labels.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_recall_fscore_support

HEADLINE = ("micro_f1", "macro_f1", "subset_accuracy")


def multi_label_metrics(
    targets: np.ndarray,
    predicted: np.ndarray,
    label_names: list[str],
    loss: float | None = None,
    detailed: bool = False,
) -> dict:
    """`detailed` adds per-label precision/recall/F1/support (`per_class`, the key the report
    reads) and how many labels rows hold and are given (`cardinality`)."""
    y_true, y_pred = np.asarray(targets).astype(int), np.asarray(predicted).astype(int)
    out: dict = {}
    if loss is not None:
        out["loss"] = float(loss)
    present = np.flatnonzero(y_true.any(0) | y_pred.any(0)).tolist()
    if present:
        out["micro_f1"] = float(f1_score(y_true, y_pred, average="micro", zero_division=0))
        out["macro_f1"] = float(
            f1_score(y_true, y_pred, average="macro", labels=present, zero_division=0)
        )
    else:  # no label in the split and none predicted: every decision was right
        out["micro_f1"] = out["macro_f1"] = 1.0
    out["subset_accuracy"] = float(accuracy_score(y_true, y_pred))
    out["hamming_loss"] = float(hamming_loss(y_true, y_pred))
    if detailed:
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=list(range(len(label_names))), zero_division=0
        )
        out["per_class"] = {
            name: {
                "precision": float(precision[j]),
                "recall": float(recall[j]),
                "f1": float(f1[j]),
                "support": int(support[j]),
            }
            for j, name in enumerate(label_names)
        }
        out["cardinality"] = {
            "true_labels_per_row": float(y_true.sum(1).mean()) if len(y_true) else 0.0,
            "predicted_labels_per_row": float(y_pred.sum(1).mean()) if len(y_pred) else 0.0,
            "rows_without_predicted_labels": int((y_pred.sum(1) == 0).sum()),
        }
    return out
