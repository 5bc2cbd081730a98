"""The cheaper options a fine-tuned multi-label classifier must beat, on the same test split:

- baseline: TF-IDF (word 1-2 + character 2-5 grams) + one logistic regression per label;
- base: the frozen pre-trained encoder's mean-pooled embeddings + one logistic regression
  per label.
Both choose their regularisation C and their thresholds on the validation split (thresholds
exactly as the fine-tuned model's, see thresholds.py), never on test.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler

from tunesmith.data.text import SPLITS
from tunesmith.evaluate.baselines import C_GRID, tfidf_features
from tunesmith.tasks.multi_label_classification.metrics import multi_label_metrics
from tunesmith.tasks.multi_label_classification.thresholds import Thresholds, tune


@dataclass
class FittedOneVsRest:
    model: OneVsRestClassifier
    thresholds: Thresholds
    validation_micro_f1: float


def fit_one_vs_rest(
    train: tuple[Any, np.ndarray], validation: tuple[Any, np.ndarray], label_names: list[str]
) -> FittedOneVsRest:
    """For each C: fit, tune thresholds on validation; keep the best validation micro-F1."""
    best: FittedOneVsRest | None = None
    for c in C_GRID:
        model = OneVsRestClassifier(LogisticRegression(C=c, max_iter=3000))
        with warnings.catch_warnings():  # a label on no (or every) training row: constant
            warnings.filterwarnings("ignore", message="Label .* is present in all")
            warnings.filterwarnings("ignore", message="Label not .* is present in all")
            model.fit(train[0], train[1].astype(int))
        probabilities = model.predict_proba(validation[0])
        thresholds = tune(probabilities, validation[1], label_names)
        predicted = thresholds.apply(probabilities, label_names)
        score = multi_label_metrics(validation[1], predicted, label_names)["micro_f1"]
        if best is None or score > best.validation_micro_f1:
            best = FittedOneVsRest(model, thresholds, score)
    assert best is not None
    return best


def one_vs_rest_metrics(
    features: dict[str, Any],
    targets: dict[str, np.ndarray],
    label_names: list[str],
    description: str,
) -> dict:
    """Test metrics of the best one-vs-rest logistic regression on `features` per split."""
    fitted = fit_one_vs_rest(
        (features["train"], targets["train"]),
        (features["validation"], targets["validation"]),
        label_names,
    )
    probabilities = fitted.model.predict_proba(features["test"])
    predicted = fitted.thresholds.apply(probabilities, label_names)
    metrics = multi_label_metrics(targets["test"], predicted, label_names, detailed=True)
    metrics["description"] = description
    # nested, so the report's table shows scores only
    metrics["settings"] = {"C": fitted.model.estimator.C}
    metrics["thresholds"] = fitted.thresholds.to_dict(label_names)
    return metrics


def tfidf_baseline(
    texts: dict[str, list[str]], targets: dict[str, np.ndarray], label_names: list[str]
) -> dict:
    return one_vs_rest_metrics(
        tfidf_features(texts),
        targets,
        label_names,
        "TF-IDF (word 1-2 + char 2-5 grams) + one-vs-rest logistic regression",
    )


def frozen_features_base(
    features: dict[str, np.ndarray], targets: dict[str, np.ndarray], label_names: list[str]
) -> dict:
    scaler = StandardScaler().fit(features["train"])
    scaled = {split: scaler.transform(features[split]) for split in SPLITS}
    return one_vs_rest_metrics(
        scaled,
        targets,
        label_names,
        "frozen pre-trained encoder (mean-pooled) + one-vs-rest logistic regression",
    )
