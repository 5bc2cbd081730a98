"""Multi-label classification for `train`: texts with label sets, an encoder with one sigmoid
per label, thresholds tuned on validation; TF-IDF and frozen-encoder contenders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from torch import nn

from tunesmith.data.text import SPLITS
from tunesmith.evaluate.forgetting import (
    RepresentationDrift,
    measured_half,
    reference_paragraphs,
    reference_sentences,
)
from tunesmith.evaluate.slices import ExampleResults
from tunesmith.method_registry import Method
from tunesmith.models.resolve import resolve_model
from tunesmith.models.structure import head_modules
from tunesmith.models.text import load_tokenizer
from tunesmith.recipe import Recipe
from tunesmith.tasks.common import (
    frozen_split_features,
    note_truncated_training_texts,
    scored_splits,
)
from tunesmith.tasks.multi_label_classification.contenders import (
    frozen_features_base,
    tfidf_baseline,
)
from tunesmith.tasks.multi_label_classification.data import cardinality, load_multi_label
from tunesmith.tasks.multi_label_classification.metrics import HEADLINE
from tunesmith.tasks.multi_label_classification.model import (
    load_multi_label_classifier,
    start_at_label_priors,
)
from tunesmith.tasks.multi_label_classification.task import MultiLabelTask
from tunesmith.tasks.multi_label_classification.thresholds import Thresholds
from tunesmith.trained_run import save_pretrained_model


class MultiLabelFamily:
    score_start = False
    headline = HEADLINE

    def __init__(self, recipe: Recipe, device: torch.device, dtype: torch.dtype | None) -> None:
        self.recipe = recipe
        self.splits = load_multi_label(recipe.data, recipe.train.seed)
        folder = resolve_model(recipe.model)
        self.tokenizer = load_tokenizer(folder)
        self.model = load_multi_label_classifier(folder, self.splits.label_names).to(device)
        self.task = MultiLabelTask.from_recipe(self.splits, self.tokenizer, recipe, device, dtype)
        self.thresholds: Thresholds | None = None
        """Tuned in `score_after` for the weights that are kept, and saved with them."""

    def describe(self, console: Console) -> None:
        sizes = ", ".join(f"{n} {len(self.splits.split(n))}" for n in SPLITS)
        train = cardinality(self.splits.train.labels)
        console.print(
            f"Data: {sizes}; {len(self.splits.label_names)} labels, "
            f"{train['mean_labels_per_row']:.2f} per training row on average, "
            f"{train['rows_without_labels']} training rows without a label"
        )
        for file, separator in self.splits.separators.items():
            how = f"joined by {separator!r}" if separator else "lists or one label per cell"
            console.print(f"Labels in {escape(file)}: {how}", highlight=False)
        console.print(f"Text preprocessing: {self.task.preprocessor.describe()}")
        note_truncated_training_texts(console, self.task)

    def adapt_to(self, method: Method) -> None:
        """Every method trains on the same padded batches."""

    def init_head(self, console: Console) -> None:
        """Random head weights, but the output bias at the label priors (see
        `start_at_label_priors`)."""
        if start_at_label_priors(self.model, self.splits.train.targets):
            console.print("Head: output bias set to each label's training frequency")

    def score_before(self, console: Console, split: str = "test") -> dict[str, dict]:
        console.print(
            f"Scoring the cheaper options on the {split} split (TF-IDF, frozen encoder; one "
            "logistic regression per label) ..."
        )
        texts = scored_splits(self.task.texts.__getitem__, split)
        baseline = tfidf_baseline(texts, self._targets(split), self.splits.label_names)
        return {"base": self._frozen_base(split), "baseline": baseline}

    def score_after(self, model: nn.Module) -> dict:
        """Test metrics at the thresholds tuned on validation for the kept weights (the
        ones saved with them)."""
        self.thresholds = self.task.tune(model)
        return self.task.evaluate_at(model, "test", self.thresholds, detailed=True)

    def test_examples(self) -> ExampleResults | None:
        return self.task.example_results("test")

    def head_parameters(self) -> set[int]:
        # found before the method runs: peft copies the head
        return {id(p) for m in head_modules(self.model).values() for p in m.parameters()}

    def finish(self, model: nn.Module, output: Path) -> dict[str, Any]:
        if self.thresholds is None:
            self.thresholds = self.task.tune(model)
        return {
            "labels": self.splits.label_names,
            "splits": {name: len(self.splits.split(name)) for name in SPLITS},
            "thresholds": self.thresholds.to_dict(self.splits.label_names),
            "label_cardinality": {
                name: cardinality(self.splits.split(name).labels) for name in SPLITS
            },
            "label_separators": self.splits.separators,
            "truncated": self.task.truncated,
            "stop_word_fallbacks": {name: self.task.fallbacks[name] for name in SPLITS},
        }

    def forgetting_measure(self, reference: str) -> RepresentationDrift:
        sentences = reference_sentences(measured_half(reference_paragraphs(reference)))
        ids, _ = self.task.encode(sentences)
        return RepresentationDrift(lambda model: self.task.embed_ids(model, ids), self.model)

    def save(self, model: nn.Module, output: Path, adapter: bool) -> Path:
        """model/ or adapter/ as for text classification, with thresholds.json beside."""
        target = save_pretrained_model(model, self.tokenizer, output, adapter)
        thresholds = self.thresholds or self.task.tune(model)
        thresholds.write(target, self.splits.label_names)
        return target

    def _targets(self, scored: str) -> dict[str, np.ndarray]:
        return scored_splits(lambda name: self.splits.split(name).targets, scored)

    def _frozen_base(self, scored: str) -> dict:
        features, train_rows = frozen_split_features(self.task, self.model, scored)
        targets = self._targets(scored)
        targets["train"] = targets["train"][train_rows]
        return frozen_features_base(features, targets, self.splits.label_names)
