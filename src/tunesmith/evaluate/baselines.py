"""The cheaper options a fine-tuned classifier must beat, scored on the same test split.

- baseline: TF-IDF (word 1-2 grams + character 2-5 grams) + logistic regression;
- base: the frozen pre-trained encoder's mean-pooled embeddings + logistic regression.
Both pick their regularisation on the validation split, never on test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import FeatureUnion
from sklearn.preprocessing import StandardScaler

from tunesmith.data.text import SPLITS
from tunesmith.evaluate.metrics import classification_metrics

C_GRID = (0.1, 1.0, 10.0, 100.0)


def best_logistic_regression(
    train: tuple[np.ndarray, Sequence[int]], validation: tuple[np.ndarray, Sequence[int]]
) -> LogisticRegression:
    """Fit on train for each C; keep the one with the best validation macro-F1."""
    best_model, best_score = None, -1.0
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=3000)
        model.fit(train[0], train[1])
        score = f1_score(validation[1], model.predict(validation[0]), average="macro")
        if score > best_score:
            best_model, best_score = model, score
    assert best_model is not None
    return best_model


def logistic_regression_metrics(
    train: tuple[np.ndarray, Sequence[int]],
    validation: tuple[np.ndarray, Sequence[int]],
    test: tuple[np.ndarray, Sequence[int]],
    label_names: Sequence[str],
) -> dict:
    """Fit on train for each C, keep the best validation macro-F1, score on test."""
    model = best_logistic_regression(train, validation)
    metrics = classification_metrics(test[1], model.predict(test[0]), label_names, detailed=True)
    metrics["settings"] = {"C": model.C}
    return metrics


@dataclass
class LinearProbe:
    """Logistic regression on standardised frozen features."""

    scaler: StandardScaler
    model: LogisticRegression

    def head_weights(self, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
        """(weight (num_labels, D), bias (num_labels,)) of one linear layer on the raw
        features giving the probe's logits: the scaler folded in, binary expanded to two
        classes, classes missing from training left at zero."""
        coef, intercept = self.model.coef_, self.model.intercept_
        if coef.shape[0] == 1:  # binary: p(1) = sigmoid(w.x + b) = softmax([0, w.x + b])[1]
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.array([0.0, intercept[0]])
        weight = np.zeros((num_labels, coef.shape[1]))
        bias = np.zeros(num_labels)
        classes = self.model.classes_.astype(int)
        weight[classes] = coef / self.scaler.scale_
        bias[classes] = intercept - (coef * self.scaler.mean_ / self.scaler.scale_).sum(1)
        return weight, bias


def fit_linear_probe(features: dict[str, np.ndarray], labels: dict[str, list[int]]) -> LinearProbe:
    scaler = StandardScaler().fit(features["train"])
    model = best_logistic_regression(
        (scaler.transform(features["train"]), labels["train"]),
        (scaler.transform(features["validation"]), labels["validation"]),
    )
    return LinearProbe(scaler, model)


def tfidf_features(texts: dict[str, list[str]]) -> dict[str, Any]:
    """Each split's sparse TF-IDF features (word 1-2 grams + character 2-5 grams), the
    vocabulary learnt from train alone so validation and test words stay unseen, as they
    would for the fine-tuned model."""
    vectorizer = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
        ]
    )
    features = {"train": vectorizer.fit_transform(texts["train"])}
    for split in ("validation", "test"):
        features[split] = vectorizer.transform(texts[split])
    return features


def tfidf_baseline(
    texts: dict[str, list[str]], labels: dict[str, list[int]], label_names: Sequence[str]
) -> dict:
    features = tfidf_features(texts)
    metrics = logistic_regression_metrics(*((features[s], labels[s]) for s in SPLITS), label_names)
    metrics["description"] = "TF-IDF (word 1-2 + char 2-5 grams) + logistic regression"
    return metrics


def frozen_features_base(
    features: dict[str, np.ndarray],
    labels: dict[str, list[int]],
    label_names: Sequence[str],
    description: str,
) -> dict:
    return probe_metrics(
        fit_linear_probe(features, labels), features, labels, label_names, description
    )


def probe_metrics(
    probe: LinearProbe,
    features: dict[str, np.ndarray],
    labels: dict[str, list[int]],
    label_names: Sequence[str],
    description: str,
) -> dict:
    """Test metrics of a fitted probe."""
    predicted = probe.model.predict(probe.scaler.transform(features["test"]))
    metrics = classification_metrics(labels["test"], predicted, label_names, detailed=True)
    metrics["settings"] = {"C": probe.model.C}
    metrics["description"] = description
    return metrics
