"""Image classification with a finished run: load the classifier (or base + adapter) and its
evaluation transform, score it, predict on image files, folders or tables, export."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
from tunesmith.errors import UserError
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
    is_peft_model,
    label_rows,
    placed,
    refuse_retrieval,
)
from tunesmith.tasks.image_classification.family import (
    ImageClassificationFamily,
    image_transforms,
)
from tunesmith.tasks.image_classification.task import ImageClassificationTask
from tunesmith.tasks.registry import ExportDetails
from tunesmith.tasks.serving import ClassifierServing
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


def serving_model(run: TrainedRun, retrieval: bool | None) -> ClassifierServing:
    """Images come as binary file objects (uploads), read as `predict` reads files."""
    refuse_retrieval(run, retrieval)
    empty = ImageExamples([], [], [], "")
    task = run_task(run, ImageSplits(empty, empty, empty, run.label_names, []))

    def predict(images: Sequence[Any]) -> list[dict]:
        probabilities = task.predict_proba(run.model, list(images))
        return label_rows("image", [str(i) for i in images], probabilities, run.label_names)

    return ClassifierServing(run.folder.name, "image", run.label_names, predict)


def export(model: torch.nn.Module, run: TrainedRun, folder: Path) -> ExportDetails:
    """A transformers custom model (config.json with auto_map, model.safetensors, the code in
    models/portable/) and an image processor doing the run's evaluation transform, both
    loaded with trust_remote_code; tunesmith's own vision_config.json and preprocess.json
    too. An unmerged adapter is refused: its base is tunesmith's own classifier class."""
    if is_peft_model(model):
        raise UserError(
            f"export: {run.folder} holds a {run.recipe.method.name} adapter of tunesmith's own "
            "image classifier, which peft cannot rebuild without tunesmith; add --merge to "
            "fold it into the weights (a folder transformers loads on its own)"
        )
    transform: ImageTransform = run.tokenizer
    model.save_portable(
        folder,
        {
            "size": transform.size,
            "image_mean": list(transform.mean),
            "image_std": list(transform.std),
            "crop_fraction": transform.crop_fraction,
            "denoise": transform.denoise,
            "denoise_size": transform.denoise_size,
        },
    )
    weights = run.folder / (RunFolder.ADAPTER if run.is_adapter else RunFolder.MODEL)
    shutil.copy(weights / PREPROCESS_FILE, folder / PREPROCESS_FILE)
    denoise = (
        f"a {transform.denoise} filter (size {transform.denoise_size}), then "
        if transform.denoise != "none"
        else ""
    )
    return ExportDetails(
        loader=(
            "import torch\n"
            "from transformers import AutoImageProcessor, AutoModelForImageClassification\n"
            "\n"
            "# trust_remote_code runs the three small .py files in this folder (torch and\n"
            "# transformers only): tunesmith's classifier and its evaluation transform\n"
            "processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)\n"
            "model = AutoModelForImageClassification.from_pretrained(\n"
            "    folder, trust_remote_code=True\n"
            ").eval()\n"
            "with torch.no_grad():\n"
            '    logits = model(**processor(images, return_tensors="pt")).logits\n'
            "probabilities = logits.softmax(-1)\n"
            "labels = [model.config.id2label[int(i)] for i in probabilities.argmax(-1)]\n"
        ),
        inputs='images = ["photo.jpg", "another.png"]  # file paths or PIL images',
        preprocessing=(
            "Each image is read as RGB (transparency on white, EXIF orientation applied), "
            f"then {denoise}the centre square that a resize of the shorter side to "
            f"{round(transform.size / transform.crop_fraction)} pixels and a "
            f"{transform.size}x{transform.size} centre crop would keep is resampled once "
            "(bicubic), and normalised with mean "
            f"{[round(v, 4) for v in transform.mean]} and std "
            f"{[round(v, 4) for v in transform.std]} (pixels in 0-1): the run's evaluation "
            "transform, done by `image_processing_tunesmith_vision.py` "
            "(preprocessor_config.json), so the pixels are the ones `tunesmith predict` sees."
        ),
        files={
            "config.json": "the architecture and labels, with `auto_map` naming the code below",
            "model.safetensors": "the weights (an adapter already merged)",
            "configuration_tunesmith_vision.py, modeling_tunesmith_vision.py": (
                "the classifier as a transformers custom model (torch and transformers only)"
            ),
            "image_processing_tunesmith_vision.py, preprocessor_config.json": (
                "the evaluation transform as an image processor (numpy and Pillow)"
            ),
            "vision_config.json, preprocess.json": "the same model and transform in "
            "tunesmith's own format",
        },
        image_packages=True,
    )


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
