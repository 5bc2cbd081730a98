"""Multi-label classification with a finished run: load it with its thresholds, score it,
predict, export; and the data check."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from tunesmith.data.quality import QualityReport
from tunesmith.errors import UserError
from tunesmith.models.text import load_tokenizer
from tunesmith.recipe import Recipe
from tunesmith.run_folder import RunFolder
from tunesmith.tasks.common import (
    check_same_labels,
    export_text_classifier,
    is_peft_model,
    load_sequence_classifier,
    note_fallbacks,
    read_text_inputs,
    refuse_retrieval,
    with_test_details,
)
from tunesmith.tasks.multi_label_classification import thresholds as threshold_file
from tunesmith.tasks.multi_label_classification.data import (
    MultiLabelSplits,
    empty_examples,
    load_labelled_file,
    load_multi_label,
)
from tunesmith.tasks.multi_label_classification.family import MultiLabelFamily
from tunesmith.tasks.multi_label_classification.quality import check_multi_label_data
from tunesmith.tasks.multi_label_classification.task import MultiLabelTask
from tunesmith.tasks.multi_label_classification.thresholds import Thresholds
from tunesmith.tasks.registry import ExportDetails
from tunesmith.tasks.serving import ClassifierServing
from tunesmith.trained_run import TrainedRun


def prepare(
    recipe: Recipe, device: torch.device, dtype: torch.dtype | None, console: Console
) -> MultiLabelFamily:
    return MultiLabelFamily(recipe, device, dtype)


def load_run(folder: Path, recipe: Recipe, device: torch.device | None) -> TrainedRun:
    model, weights = load_sequence_classifier(folder, recipe.model)
    run_thresholds(weights)  # a run without its thresholds cannot predict: say so now
    tokenizer = load_tokenizer(weights)
    return TrainedRun(folder, recipe, model.to(device or "cpu").eval(), tokenizer)


def run_thresholds(weights: Path) -> Thresholds:
    """The thresholds saved beside the weights (model/ or adapter/)."""
    path = weights / threshold_file.FILE
    try:
        return Thresholds.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        reason = type(error).__name__ if isinstance(error, KeyError) else str(error)
        raise UserError(
            f"{path}: the decision thresholds cannot be read ({reason}); "
            f"{RunFolder(weights.parent).damaged_advice()}"
        ) from None


def run_task(run: TrainedRun, splits: MultiLabelSplits) -> MultiLabelTask:
    """The task with the run's own preprocessing and thresholds, as in training."""
    weights = run.folder / (RunFolder.ADAPTER if run.is_adapter else RunFolder.MODEL)
    return MultiLabelTask.for_run(run, splits, thresholds=run_thresholds(weights))


def evaluate_run(run: TrainedRun, data: str | None) -> dict:
    names = run.label_names
    if data is None:
        splits = load_multi_label(run.recipe.data, run.recipe.train.seed)
        check_same_labels(run, splits.label_names, "file")
    else:
        test = load_labelled_file(data, run.recipe.data, names)
        splits = MultiLabelSplits(empty_examples(names), empty_examples(names), test, names)
    task = run_task(run, splits)
    metrics = task.evaluate(run.model, "test", detailed=True)
    # `tunesmith eval` prints accuracy: for label sets that is the exact-match share
    metrics["accuracy"] = metrics["subset_accuracy"]
    return with_test_details(metrics, task)


def predict_run(
    run: TrainedRun, inputs: list[str], text_column: str | None, max_new_tokens: int | None
) -> list[dict]:
    texts = read_text_inputs(inputs, text_column or run.recipe.data.text_column)
    names = run.label_names
    empty = empty_examples(names)
    task = run_task(run, MultiLabelSplits(empty, empty, empty, names))
    probabilities = task.predict_proba(run.model, texts)
    note_fallbacks(task.fallbacks["predict"], "inputs")
    assert task.thresholds is not None
    return prediction_rows(texts, probabilities, names, task.thresholds)


def serving_model(run: TrainedRun, retrieval: bool | None) -> ClassifierServing:
    refuse_retrieval(run, retrieval)
    names = run.label_names
    empty = empty_examples(names)
    task = run_task(run, MultiLabelSplits(empty, empty, empty, names))
    assert task.thresholds is not None
    thresholds = task.thresholds

    def predict(texts: Sequence[str]) -> list[dict]:
        probabilities = task.predict_proba(run.model, list(texts))
        return prediction_rows(list(texts), probabilities, names, thresholds)

    return ClassifierServing(run.folder.name, "text", names, predict)


def prediction_rows(
    texts: list[str], probabilities: np.ndarray, names: list[str], thresholds: Thresholds
) -> list[dict]:
    """Per text: the labels at or over their threshold (most likely first; `label` joins
    them for one-line output), the highest probability, and every label's probability."""
    vector = thresholds.vector(names)
    rows = []
    for text, row in zip(texts, probabilities, strict=True):
        chosen = [names[j] for j in np.argsort(-row, kind="stable") if row[j] >= vector[j]]
        rows.append(
            {
                "text": text,
                "labels": chosen,
                "label": ", ".join(chosen),
                "score": float(row.max()),
                "probabilities": {name: float(p) for name, p in zip(names, row, strict=True)},
            }
        )
    return rows


def export(model: torch.nn.Module, run: TrainedRun, folder: Path) -> ExportDetails:
    """A transformers folder (problem_type multi_label_classification), or its PEFT adapter,
    with thresholds.json; the tokenizer does the run's normalisation, preprocess.py its stop
    words."""
    tail = (
        "import json\n"
        "\n"
        f'with open(f"{{folder}}/{threshold_file.FILE}") as file:\n'
        '    thresholds = json.load(file)["per_label"]  # tuned on the validation split\n'
        "probabilities = logits.sigmoid()\n"
        "labels = [\n"
        "    [name for i, name in model.config.id2label.items() if row[i] >= thresholds[name]]\n"
        "    for row in probabilities.tolist()\n"
        "]\n"
    )
    loader, preprocessing, files = export_text_classifier(model, run, folder, tail)
    weights = run.folder / (RunFolder.ADAPTER if run.is_adapter else RunFolder.MODEL)
    shutil.copy(weights / threshold_file.FILE, folder / threshold_file.FILE)
    files[threshold_file.FILE] = (
        "each label's decision threshold (a label is predicted when its probability reaches "
        "it), tuned on the validation split"
    )
    adapter = is_peft_model(model)
    return ExportDetails(
        loader=loader,
        inputs='texts = ["The first text to tag", "and another one"]',
        preprocessing=preprocessing,
        files=files,
        adapter=adapter,
    )


def check_data(recipe: Recipe, console: Console, label_issues: bool | None) -> QualityReport:
    return check_multi_label_data(recipe, console, label_issues)
