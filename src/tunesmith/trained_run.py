"""Read a finished run folder back: its recipe, model (or base + adapter) and tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError
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
from tunesmith.run_folder import RunFolder

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
"""What peft needs in adapter/ (a run never writes pickled adapter weights)."""


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
    """The trained model of a finished run, loaded the way any transformers/peft user would;
    a missing, incomplete or damaged run folder is a clear error, never a traceback."""
    run = RunFolder(folder)
    run.require_finished()
    recipe = load_run_recipe(run)
    try:
        return _load(run.path, recipe, device)
    except UserError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, SafetensorError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(
            f"{run.weights}: the trained model cannot be loaded ({reason}); {run.damaged_advice()}"
        ) from None


def load_run_recipe(run: RunFolder) -> Recipe:
    """The run's recipe.yaml, as it was trained (a damaged file is a clear error)."""
    path = run / RunFolder.RECIPE
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise UserError(f"{path} cannot be read ({error}); {run.damaged_advice()}") from None
    if not isinstance(saved, dict):
        raise UserError(f"{path} is not a recipe; {run.damaged_advice()}")
    preprocess = saved.get("preprocess") or {}
    # a text run trained before text preprocessing existed saw its texts as given
    old = saved.get("task") != "image-classification" and "unicode" not in preprocess
    try:
        return load_recipe(path, ["preprocess.unicode=none"] if old else [])
    except UserError as error:
        raise UserError(f"{error}\n{run.damaged_advice()}") from None


def _load(folder: Path, recipe: Recipe, device: torch.device | None) -> TrainedRun:
    adapter, full = folder / RunFolder.ADAPTER, folder / RunFolder.MODEL
    if adapter.is_dir():
        _require_files(adapter, ADAPTER_FILES)
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


def _require_files(folder: Path, names: tuple[str, ...]) -> None:
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise UserError(
            f"{folder} has no {', '.join(missing)}: {RunFolder(folder.parent).damaged_advice()}"
        )
