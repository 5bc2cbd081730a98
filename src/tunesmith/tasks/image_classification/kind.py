"""Image classification with a finished run: load the classifier (or base + adapter) and its
evaluation transform, score it, predict on image files, folders or tables, export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from tunesmith.data.image_preprocess import ImageTransform
from tunesmith.data.images import (
    ImageExamples,
    ImageSplits,
    load_image_classification,
    load_labelled_images,
    read_image_inputs,
)
from tunesmith.data.quality import KindChecks, QualityReport, run_checks
from tunesmith.data.quality.items import SPLITS, CheckData
from tunesmith.models.resolve import resolve_model
from tunesmith.models.vision import (
    VisionClassifier,
    load_base,
    load_vision_classifier,
    vision_kind,
)
from tunesmith.recipe import Recipe
from tunesmith.run_folder import RunFolder
from tunesmith.tasks.common import (
    check_same_labels,
    classifier_eval_batch_size,
    label_rows,
    placed,
)
from tunesmith.tasks.image_classification.family import (
    ImageClassificationFamily,
    image_transforms,
)
from tunesmith.tasks.image_classification.task import ImageClassificationTask
from tunesmith.train.device import resolve_device
from tunesmith.trained_run import TrainedRun

PREPROCESS_FILE = "preprocess.json"
"""The evaluation transform, saved beside the weights (model/ or adapter/)."""


def prepare(
    recipe: Recipe, device: torch.device, dtype: torch.dtype | None, console: Console
) -> ImageClassificationFamily:
    return ImageClassificationFamily(recipe, device, dtype)


def load_run(folder: Path, recipe: Recipe, device: torch.device | None) -> TrainedRun:
    """In the tokenizer's place: the evaluation transform saved at training time."""
    adapter, full = folder / RunFolder.ADAPTER, folder / RunFolder.MODEL
    if adapter.is_dir():
        from peft import PeftModel

        model, weights = PeftModel.from_pretrained(load_base(adapter), adapter), adapter
    else:
        model, weights = VisionClassifier.load(full), full
    saved = json.loads((weights / PREPROCESS_FILE).read_text(encoding="utf-8"))
    transform = ImageTransform.from_dict(saved)
    return TrainedRun(folder, recipe, model.to(device or "cpu").eval(), transform)


def run_task(run: TrainedRun, splits: ImageSplits) -> ImageClassificationTask:
    device, dtype = placed(run)
    return ImageClassificationTask(splits, run.tokenizer, run.tokenizer, device, dtype)


def evaluate_run(run: TrainedRun, data: str | None) -> dict:
    if data is None:
        splits = load_image_classification(run.recipe.data, run.recipe.train.seed)
        check_same_labels(run, splits.label_names, "images")
    else:
        test = load_labelled_images(data, run.recipe.data, run.label_names)
        empty = ImageExamples([], [], [], "")
        splits = ImageSplits(empty, empty, test, run.label_names, [])
    metrics = run_task(run, splits).evaluate(run.model, "test", detailed=True)
    metrics["examples"] = len(splits.test)
    metrics["source"] = splits.test.source
    return metrics


def predict_run(
    run: TrainedRun, inputs: list[str], text_column: str | None, max_new_tokens: int | None
) -> list[dict]:
    paths = read_image_inputs(inputs, run.recipe.data)
    empty = ImageExamples([], [], [], "")
    task = run_task(run, ImageSplits(empty, empty, empty, run.label_names, []))
    return label_rows("image", paths, task.predict_proba(run.model, paths), run.label_names)


def export(model: torch.nn.Module, run: TrainedRun, folder: Path) -> None:
    """tunesmith's own format (safetensors + vision_config.json) with its preprocess.json."""
    model.save(folder)
    weights = run.folder / (RunFolder.ADAPTER if run.is_adapter else RunFolder.MODEL)
    shutil.copy(weights / PREPROCESS_FILE, folder / PREPROCESS_FILE)


def check_data(recipe: Recipe, console: Console, label_issues: bool | None) -> QualityReport:
    return run_checks(recipe, KindChecks("images", None, frozen_features), console, label_issues)


@torch.inference_mode()
def frozen_features(data: CheckData, recipe: Recipe, labels: list[str]) -> dict[str, np.ndarray]:
    """Each split's pooled features from the recipe's pre-trained model (no head)."""
    device = resolve_device(recipe.train.device)
    folder = resolve_model(recipe.model)
    ids = {label: i for i, label in enumerate(labels)}
    splits = ImageSplits(
        **{
            name: ImageExamples(
                paths=s.paths, labels=[ids[x] for x in s.labels], rows=s.rows, source=s.file
            )
            for name, s in data.splits.items()
        },
        label_names=labels,
    )
    model = load_vision_classifier(folder, labels, vision_kind(recipe.model, folder)).to(device)
    train, evaluation = image_transforms(recipe, model)
    batch_size = classifier_eval_batch_size(recipe.train)
    task = ImageClassificationTask(
        splits, train, evaluation, device, None, eval_batch_size=batch_size
    )
    return {name: task.features(model, name) for name in SPLITS}
