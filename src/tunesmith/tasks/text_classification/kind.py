"""Text classification with a finished run: load it, score it, predict, export."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from tunesmith.data.quality import KindChecks, QualityReport, count_text_tokens, run_checks
from tunesmith.data.quality.items import SPLITS, CheckData
from tunesmith.data.text import (
    TextExamples,
    TextSplits,
    load_labelled_file,
    load_text_classification,
)
from tunesmith.models.resolve import resolve_model
from tunesmith.models.text import load_text_classifier, load_tokenizer
from tunesmith.recipe import Recipe
from tunesmith.tasks.common import (
    check_same_labels,
    classifier_eval_batch_size,
    export_text_classifier,
    is_peft_model,
    label_rows,
    load_sequence_classifier,
    model_length_limit,
    note_fallbacks,
    read_text_inputs,
    refuse_retrieval,
    with_test_details,
)
from tunesmith.tasks.registry import ExportDetails
from tunesmith.tasks.serving import ClassifierServing
from tunesmith.tasks.text_classification.family import TextClassificationFamily
from tunesmith.tasks.text_classification.task import TextClassificationTask
from tunesmith.train.device import resolve_device
from tunesmith.trained_run import TrainedRun


def prepare(
    recipe: Recipe, device: torch.device, dtype: torch.dtype | None, console: Console
) -> TextClassificationFamily:
    return TextClassificationFamily(recipe, device, dtype)


def load_run(folder: Path, recipe: Recipe, device: torch.device | None) -> TrainedRun:
    model, weights = load_sequence_classifier(folder, recipe.model)
    tokenizer = load_tokenizer(weights)
    return TrainedRun(folder, recipe, model.to(device or "cpu").eval(), tokenizer)


def run_task(run: TrainedRun, splits: TextSplits) -> TextClassificationTask:
    """The task with the run's own text preprocessing (from its recipe.yaml), so texts are
    prepared exactly as in training."""
    return TextClassificationTask.for_run(run, splits)


def evaluate_run(run: TrainedRun, data: str | None) -> dict:
    if data is None:
        splits = load_text_classification(run.recipe.data, run.recipe.train.seed)
        check_same_labels(run, splits.label_names, "file")
    else:
        empty = TextExamples([], [], [], "")
        test = load_labelled_file(data, run.recipe.data, run.label_names)
        splits = TextSplits(empty, empty, test, run.label_names)
    task = run_task(run, splits)
    return with_test_details(task.evaluate(run.model, "test", detailed=True), task)


def predict_run(
    run: TrainedRun, inputs: list[str], text_column: str | None, max_new_tokens: int | None
) -> list[dict]:
    texts = read_text_inputs(inputs, text_column or run.recipe.data.text_column)
    empty = TextExamples([], [], [], "")
    task = run_task(run, TextSplits(empty, empty, empty, run.label_names))
    probabilities = task.predict_proba(run.model, texts)
    note_fallbacks(task.fallbacks["predict"], "inputs")
    return label_rows("text", texts, probabilities, run.label_names)


def serving_model(run: TrainedRun, retrieval: bool | None) -> ClassifierServing:
    refuse_retrieval(run, retrieval)
    empty = TextExamples([], [], [], "")
    task = run_task(run, TextSplits(empty, empty, empty, run.label_names))

    def predict(texts: Sequence[str]) -> list[dict]:
        probabilities = task.predict_proba(run.model, list(texts))
        return label_rows("text", list(texts), probabilities, run.label_names)

    return ClassifierServing(run.folder.name, "text", run.label_names, predict)


def export(model: torch.nn.Module, run: TrainedRun, folder: Path) -> ExportDetails:
    """A transformers sequence classifier (or its PEFT adapter) whose tokenizer does the
    run's normalisation; stop words, where the run removes them, in preprocess.py."""
    tail = (
        "probabilities = logits.softmax(-1)\n"
        "labels = [model.config.id2label[int(i)] for i in probabilities.argmax(-1)]\n"
    )
    loader, preprocessing, files = export_text_classifier(model, run, folder, tail)
    adapter = is_peft_model(model)
    return ExportDetails(
        loader=loader,
        inputs='texts = ["The first text to classify", "and another one"]',
        preprocessing=preprocessing,
        files=files,
        adapter=adapter,
    )


def check_data(recipe: Recipe, console: Console, label_issues: bool | None) -> QualityReport:
    checks = KindChecks("text", count_text_tokens, frozen_features)
    return run_checks(recipe, checks, console, label_issues)


@torch.inference_mode()
def frozen_features(data: CheckData, recipe: Recipe, labels: list[str]) -> dict[str, np.ndarray]:
    """Each split's mean-pooled features from the recipe's pre-trained encoder (no head)."""
    device = resolve_device(recipe.train.device)
    folder = resolve_model(recipe.model)
    ids = {label: i for i, label in enumerate(labels)}
    splits = TextSplits(
        **{
            name: TextExamples(
                texts=s.texts, labels=[ids[x] for x in s.labels], rows=s.rows, source=s.file
            )
            for name, s in data.splits.items()
        },
        label_names=labels,
    )
    model = load_text_classifier(folder, labels).to(device)
    task = TextClassificationTask(
        splits,
        load_tokenizer(folder),
        recipe.preprocess.max_length or 128,
        device,
        None,
        classifier_eval_batch_size(recipe.train),
        length_limit=model_length_limit(recipe),
    )
    return {name: task.embed(model, name) for name in SPLITS}
