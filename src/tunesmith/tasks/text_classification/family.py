"""Text classification: labelled texts, an encoder with a fresh head, TF-IDF and frozen-encoder
baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from tunesmith.data.text import SPLITS, TextExamples, TextSplits, load_text_classification
from tunesmith.evaluate.baselines import frozen_features_base, tfidf_baseline
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
from tunesmith.models.text import load_text_classifier, load_tokenizer
from tunesmith.recipe import Recipe
from tunesmith.tasks.common import (
    frozen_split_features,
    note_truncated_training_texts,
    scored_splits,
)
from tunesmith.tasks.text_classification.task import TextClassificationTask
from tunesmith.trained_run import save_pretrained_model


class TextClassificationFamily:
    score_start = False
    headline = ("accuracy", "macro_f1")

    def __init__(self, recipe: Recipe, device: torch.device, dtype: torch.dtype | None) -> None:
        self.recipe = recipe
        self.splits = load_text_classification(recipe.data, recipe.train.seed)
        folder = resolve_model(recipe.model)
        self.tokenizer = load_tokenizer(folder)
        self.model = load_text_classifier(folder, self.splits.label_names).to(device)
        self.task = TextClassificationTask.from_recipe(
            self.splits, self.tokenizer, recipe, device, dtype
        )

    def describe(self, console: Console) -> None:
        sizes = ", ".join(f"{n} {len(self.splits.split(n))}" for n in SPLITS)
        console.print(f"Data: {sizes}; {len(self.splits.label_names)} labels")
        console.print(f"Text preprocessing: {self.task.preprocessor.describe()}")
        emptied = {name: n for name, n in self.task.fallbacks.items() if n}
        if emptied:
            counts = ", ".join(f"{n} {name}" for name, n in emptied.items())
            console.print(
                f"[yellow]{counts} texts hold nothing but stop words; they are kept "
                "normalised, with their stop words"
            )
        note_truncated_training_texts(console, self.task)

    def adapt_to(self, method: Method) -> None:
        """Every method trains on the same padded batches."""

    def score_before(self, console: Console, split: str = "test") -> dict[str, dict]:
        console.print(
            f"Scoring the cheaper options on the {split} split (TF-IDF, frozen encoder) ..."
        )
        # the texts as the model sees them: the baseline gets the same preprocessing
        texts = scored_splits(self.task.texts.__getitem__, split)
        baseline = tfidf_baseline(texts, self._labels(split), self.splits.label_names)
        return {"base": self._frozen_base(split), "baseline": baseline}

    def init_head(self, console: Console) -> None:
        """The head starts as the model made it (random, or none for an LLM)."""

    def score_after(self, model: nn.Module) -> dict:
        return self.task.evaluate(model, "test", detailed=True)

    def test_examples(self) -> ExampleResults | None:
        test = self.splits.test
        return self.task.example_results("test", test.source, test.rows)

    def head_parameters(self) -> set[int]:
        # found before the method runs: peft copies the head
        return {id(p) for m in head_modules(self.model).values() for p in m.parameters()}

    def finish(self, model: nn.Module, output: Path) -> dict[str, Any]:
        return {
            "labels": self.splits.label_names,
            "splits": {name: len(self.splits.split(name)) for name in SPLITS},
            "truncated": self.task.truncated,
            "stop_word_fallbacks": {name: self.task.fallbacks[name] for name in SPLITS},
        }

    def forgetting_measure(self, reference: str) -> RepresentationDrift:
        sentences = reference_sentences(measured_half(reference_paragraphs(reference)))
        examples = TextExamples(
            sentences, [0] * len(sentences), list(range(len(sentences))), reference
        )
        splits = TextSplits(examples, examples, examples, label_names=self.splits.label_names)
        task = TextClassificationTask(
            splits,
            self.tokenizer,
            self.recipe.preprocess.max_length,
            self.task.device,
            self.task.dtype,
            eval_batch_size=self.task.eval_batch_size,
        )
        return RepresentationDrift(lambda model: task.embed(model, "test"), self.model)

    def save(self, model: nn.Module, output: Path, adapter: bool) -> Path:
        return save_pretrained_model(model, self.tokenizer, output, adapter)

    def _labels(self, scored: str) -> dict[str, list[int]]:
        return scored_splits(lambda name: list(self.splits.split(name).labels), scored)

    def _frozen_base(self, scored: str) -> dict:
        features, train_rows = frozen_split_features(self.task, self.model, scored)
        labels = self._labels(scored)
        labels["train"] = [labels["train"][i] for i in train_rows]
        return frozen_features_base(
            features,
            labels,
            self.splits.label_names,
            "frozen pre-trained encoder (mean-pooled) + logistic regression",
        )
