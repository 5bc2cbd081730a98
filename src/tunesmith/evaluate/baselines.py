"""The cheaper options a fine-tuned classifier must beat, scored on the same test split.

- baseline: TF-IDF (word 1-2 grams + character 2-5 grams) + logistic regression;
- base: the frozen pre-trained encoder's mean-pooled embeddings + logistic regression.
Both pick their regularisation on the validation split, never on test.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import FeatureUnion
from sklearn.preprocessing import StandardScaler

from tunesmith.data.text import SPLITS
from tunesmith.evaluate.metrics import classification_metrics

C_GRID = (0.1, 1.0, 10.0, 100.0)


def logistic_regression_metrics(
    train: tuple[np.ndarray, Sequence[int]],
    validation: tuple[np.ndarray, Sequence[int]],
    test: tuple[np.ndarray, Sequence[int]],
    label_names: Sequence[str],
) -> dict:
    """Fit on train for each C, keep the best validation macro-F1, score on test."""
    best_model, best_score = None, -1.0
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=3000)
        model.fit(train[0], train[1])
        score = f1_score(validation[1], model.predict(validation[0]), average="macro")
        if score > best_score:
            best_model, best_score = model, score
    assert best_model is not None
    metrics = classification_metrics(
        test[1], best_model.predict(test[0]), label_names, detailed=True
    )
    metrics["C"] = best_model.C
    return metrics


def tfidf_baseline(
    texts: dict[str, list[str]], labels: dict[str, list[int]], label_names: Sequence[str]
) -> dict:
    vectorizer = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
        ]
    )
    features = {"train": vectorizer.fit_transform(texts["train"])}
    for split in ("validation", "test"):
        features[split] = vectorizer.transform(texts[split])
    metrics = logistic_regression_metrics(*((features[s], labels[s]) for s in SPLITS), label_names)
    metrics["description"] = "TF-IDF (word 1-2 + char 2-5 grams) + logistic regression"
    return metrics


def frozen_features_base(
    features: dict[str, np.ndarray],
    labels: dict[str, list[int]],
    label_names: Sequence[str],
    description: str,
) -> dict:
    scaler = StandardScaler().fit(features["train"])
    scaled = {split: scaler.transform(x) for split, x in features.items()}
    metrics = logistic_regression_metrics(*((scaled[s], labels[s]) for s in SPLITS), label_names)
    metrics["description"] = description
    return metrics
