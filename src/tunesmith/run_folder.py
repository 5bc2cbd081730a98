"""Read a finished run folder back: its recipe, model (or base + adapter) and tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PreTrainedTokenizerBase,
)

from tunesmith.errors import UserError
from tunesmith.models.causal_lm import load_causal_lm, prepare_tokenizer
from tunesmith.models.resolve import resolve_model
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
        return [config.id2label[i] for i in range(config.num_labels)]

    @property
    def is_adapter(self) -> bool:
        return (self.folder / "adapter").is_dir()


def load_run(folder: str | Path, device: torch.device | None = None) -> TrainedRun:
    """The trained model of a run, loaded the way any transformers/peft user would."""
    folder = Path(folder)
    if not (folder / "recipe.yaml").is_file():
        raise UserError(f"{folder} is not a tunesmith run folder (no recipe.yaml); give RUN_DIR")
    recipe = load_recipe(folder / "recipe.yaml")
    adapter, full = folder / "adapter", folder / "model"
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
