"""Image classification: labelled images, a pre-trained CNN or ViT with a fresh head, a
frozen-feature probe (which also starts the head: LP-FT) and a pixel baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn

from tunesmith.data.image_preprocess import ImageTransform
from tunesmith.data.images import load_image_classification
from tunesmith.data.text import SPLITS
from tunesmith.evaluate.baselines import (
    fit_linear_probe,
    frozen_features_base,
    probe_metrics,
)
from tunesmith.evaluate.forgetting import (
    REFERENCE_PHOTOS,
    ImageNetDisagreement,
    RepresentationDrift,
    reference_photos,
)
from tunesmith.evaluate.slices import ExampleResults
from tunesmith.method_registry import Method
from tunesmith.models.resolve import resolve_model
from tunesmith.models.vision import imagenet_head, load_vision_classifier, vision_kind
from tunesmith.recipe import Recipe
from tunesmith.tasks.common import classifier_eval_batch_size, scored_splits
from tunesmith.tasks.image_classification.task import ImageClassificationTask

PIXEL_SIDE = 32
"""The pixel baseline reads each image at this side (3 x 32 x 32 = 3,072 features)."""


def image_transforms(recipe: Recipe, model: nn.Module) -> tuple[ImageTransform, ImageTransform]:
    """(training, evaluation) transforms: the recipe's settings and the model's size and
    normalisation."""
    config = model.config
    size = recipe.preprocess.image_size or config.image_size
    return tuple(  # type: ignore[return-value]
        ImageTransform.from_recipe(recipe.preprocess, size, config.mean, config.std, train=train)
        for train in (True, False)
    )


class ImageClassificationFamily:
    headline = ("accuracy", "macro_f1")

    def __init__(self, recipe: Recipe, device: torch.device, dtype: torch.dtype | None) -> None:
        self.recipe = recipe
        self.splits = load_image_classification(recipe.data, recipe.train.seed)
        folder = resolve_model(recipe.model)
        kind = vision_kind(recipe.model, folder)
        self.folder, self.kind = folder, kind
        self.model = load_vision_classifier(folder, self.splits.label_names, kind).to(device)
        self.train_transform, self.tokenizer = image_transforms(recipe, self.model)
        self.task = ImageClassificationTask(
            self.splits,
            self.train_transform,
            self.tokenizer,
            device,
            dtype,
            eval_batch_size=classifier_eval_batch_size(recipe.train),
            label_smoothing=recipe.train.label_smoothing,
            seed=recipe.train.seed,
        )
        self.probe_head = recipe.train.head_init in ("auto", "probe")
        self.score_start = self.probe_head

    def describe(self, console: Console) -> None:
        sizes = ", ".join(f"{n} {len(self.splits.split(n))}" for n in SPLITS)
        size = self.tokenizer.size
        console.print(
            f"Data: {sizes}; {len(self.splits.label_names)} labels; images at {size}x{size}"
        )
        if self.splits.skipped:
            shown = "; ".join(self.splits.skipped[:5])
            more = (
                f" (+{len(self.splits.skipped) - 5} more)" if len(self.splits.skipped) > 5 else ""
            )
            console.print(
                f"[yellow]{len(self.splits.skipped)} unreadable images skipped "
                f"(data.skip_bad): {shown}{more}"
            )

    def adapt_to(self, method: Method) -> None:
        """BatchNorm keeps its pre-trained running statistics whatever the method (unless
        train.batchnorm: update): small fine-tuning batches would shift them, and with them
        the frozen layers' features (the affine weights still train where the method trains
        them)."""
        self.model.freeze_batchnorm(self.recipe.train.batchnorm == "frozen")

    def score_before(self, console: Console, split: str = "test") -> dict[str, dict]:
        console.print(
            f"Scoring the cheaper options on the {split} split (pixels, frozen pre-trained "
            "features) ..."
        )
        labels = scored_splits(lambda name: list(self.splits.split(name).labels), split)
        names = self.splits.label_names
        pixels = scored_splits(lambda name: self.task.downscaled_pixels(name, PIXEL_SIDE), split)
        baseline = frozen_features_base(
            pixels, labels, names, f"logistic regression on {PIXEL_SIDE}x{PIXEL_SIDE} pixels"
        )
        features = scored_splits(lambda name: self.task.features(self.model, name), split)
        self._probe = fit_linear_probe(features, labels)
        base = probe_metrics(
            self._probe,
            features,
            labels,
            names,
            "frozen pre-trained features + logistic regression",
        )
        return {"base": base, "baseline": baseline}

    def init_head(self, console: Console) -> None:
        """LP-FT: the head starts as the frozen-feature probe (the one score_before fitted,
        else one fitted now), so fine-tuning begins from a good classifier."""
        if not self.probe_head:
            return
        probe = getattr(self, "_probe", None)
        if probe is None:
            fitted_on = ("train", "validation")  # never test: `tune` may not have read it
            labels = {name: list(self.splits.split(name).labels) for name in fitted_on}
            features = {name: self.task.features(self.model, name) for name in fitted_on}
            probe = fit_linear_probe(features, labels)
        weight, bias = probe.head_weights(len(self.splits.label_names))
        classifier = self.model.classifier
        with torch.no_grad():
            classifier.weight.copy_(torch.as_tensor(weight, dtype=classifier.weight.dtype))
            classifier.bias.copy_(torch.as_tensor(bias, dtype=classifier.bias.dtype))
        console.print("Head initialised from the frozen-feature probe (LP-FT)")

    def score_after(self, model: nn.Module) -> dict:
        return self.task.evaluate(model, "test", detailed=True)

    def test_examples(self) -> ExampleResults | None:
        test = self.splits.test
        return self.task.example_results("test", test.source, test.rows)

    def head_parameters(self) -> set[int]:
        # a probe-initialised head is already good: it learns at the body's rate
        if self.probe_head:
            return set()
        return {id(p) for p in self.model.classifier.parameters()}

    def finish(self, model: nn.Module, output: Path) -> dict[str, Any]:
        return {
            "labels": self.splits.label_names,
            "splits": {name: len(self.splits.split(name)) for name in SPLITS},
            "skipped_images": self.splits.skipped,
            "head_init": "probe" if self.probe_head else "random",
        }

    def forgetting_measure(self, reference: str) -> ImageNetDisagreement | RepresentationDrift:
        """On reference photos (random crops of scikit-learn's two sample photographs; the
        text reference does not apply to images): the original ImageNet head's top-1
        class, or the backbone features' CKA drift when there is no such head."""
        pixels = torch.stack([self.tokenizer(photo, None) for photo in reference_photos()])
        device = self.task.device

        @torch.inference_mode()
        def features(model: nn.Module) -> np.ndarray:
            was_training = model.training
            model.eval()
            pooled = model.features(pixels.to(device)).float().cpu().numpy()
            model.train(was_training)
            return pooled

        head = imagenet_head(self.folder, self.kind)
        if head is not None:
            return ImageNetDisagreement(features, head, self.model, REFERENCE_PHOTOS)
        return RepresentationDrift(features, self.model, REFERENCE_PHOTOS)

    def save(self, model: nn.Module, output: Path, adapter: bool) -> Path:
        """model/ (the classifier: safetensors + vision_config.json) or adapter/ (PEFT
        format plus vision_config.json); preprocess.json in both, for predict."""
        target = output / ("adapter" if adapter else "model")
        if adapter:
            model.save_pretrained(target)
            model.get_base_model().save_config(target)
        else:
            model.save(target)
        (target / "preprocess.json").write_text(json.dumps(self.tokenizer.to_dict(), indent=2))
        return target
