"""Read a finished run folder back: its recipe, model (or base + adapter) and tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PreTrainedTokenizerBase,
)

from tunesmith.errors import UserError
from tunesmith.models.causal_lm import load_causal_lm, prepare_tokenizer
from tunesmith.models.resolve import resolve_model
from tunesmith.models.structure import is_language_model
from tunesmith.models.text import load_tokenizer
from tunesmith.recipe import Recipe, load_recipe


@dataclass
class TrainedRun:
    folder: Path
    recipe: Recipe
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase

    @property
    def label_names(self) -> list[str]:
        config = self.model.config
        if hasattr(config, "labels"):  # tunesmith's image classifier
            return list(config.labels)
        return [config.id2label[i] for i in range(config.num_labels)]

    @property
    def is_adapter(self) -> bool:
        return (self.folder / "adapter").is_dir()


def save_pretrained_model(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, output: Path, adapter: bool
) -> Path:
    """adapter/ (PEFT format) or model/ (transformers format), each with its tokenizer (and
    chat template); a classifier's adapter also keeps the config with its label names."""
    target = output / ("adapter" if adapter else "model")
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    if adapter and not is_language_model(model.get_base_model()):
        # the base config with this run's label names, so the head loads with the right size
        model.get_base_model().config.save_pretrained(target)
    return target


def load_run(folder: str | Path, device: torch.device | None = None) -> TrainedRun:
    """The trained model of a run, loaded the way any transformers/peft user would."""
    folder = Path(folder)
    if not (folder / "recipe.yaml").is_file():
        raise UserError(f"{folder} is not a tunesmith run folder (no recipe.yaml); give RUN_DIR")
    saved = yaml.safe_load((folder / "recipe.yaml").read_text()) or {}
    preprocess = saved.get("preprocess") or {}
    # a text run trained before text preprocessing existed saw its texts as given
    old = saved.get("task") != "image-classification" and "unicode" not in preprocess
    recipe = load_recipe(folder / "recipe.yaml", ["preprocess.unicode=none"] if old else [])
    adapter, full = folder / "adapter", folder / "model"
    if recipe.task == "image-classification":
        return _load_image_run(folder, recipe, device)
    language_model = recipe.task == "causal-lm"
    if adapter.is_dir():
        from peft import PeftModel

        if language_model:
            base = load_causal_lm(resolve_model(recipe.model))
        else:
            config = AutoConfig.from_pretrained(adapter)
            # the head's shape follows this run's labels; its weights come from the adapter
            base = AutoModelForSequenceClassification.from_pretrained(
                resolve_model(recipe.model), config=config, ignore_mismatched_sizes=True
            )
        model = PeftModel.from_pretrained(base, adapter)
        weights = adapter
    elif full.is_dir():
        auto = AutoModelForCausalLM if language_model else AutoModelForSequenceClassification
        model = auto.from_pretrained(full)
        weights = full
    else:
        raise UserError(f"{folder} has no model/ or adapter/: the run did not finish; train again")
    tokenizer = load_tokenizer(weights)
    if language_model:
        tokenizer = prepare_tokenizer(tokenizer)
    return TrainedRun(folder, recipe, model.to(device or "cpu").eval(), tokenizer)


def _load_image_run(folder: Path, recipe: Recipe, device: torch.device | None) -> TrainedRun:
    """An image run: the classifier (or base + adapter) and, in the tokenizer's place, the
    evaluation transform saved at training time."""
    import json

    from tunesmith.data.image_preprocess import ImageTransform
    from tunesmith.models.vision import VisionClassifier, load_base

    adapter, full = folder / "adapter", folder / "model"
    if adapter.is_dir():
        from peft import PeftModel

        model, weights = PeftModel.from_pretrained(load_base(adapter), adapter), adapter
    elif full.is_dir():
        model, weights = VisionClassifier.load(full), full
    else:
        raise UserError(f"{folder} has no model/ or adapter/: the run did not finish; train again")
    transform = ImageTransform.from_dict(json.loads((weights / "preprocess.json").read_text()))
    return TrainedRun(folder, recipe, model.to(device or "cpu").eval(), transform)
