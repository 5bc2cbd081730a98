"""Read a finished run folder back: its recipe, model (or base + adapter) and tokenizer.
The shared part (is the folder whole, is its recipe readable) is here; how a kind's model
loads is its `load_run`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError
from transformers import PreTrainedTokenizerBase

from tunesmith.errors import UserError, first_line
from tunesmith.models.structure import is_language_model
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
        reason = first_line(error)
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
    from tunesmith.tasks.registry import get_task

    adapter = folder / RunFolder.ADAPTER
    if adapter.is_dir():
        require_files(adapter, ADAPTER_FILES)
    elif not (folder / RunFolder.MODEL).is_dir():
        raise UserError(f"{folder} has no model/ or adapter/: the run did not finish; train again")
    return get_task(recipe.task).load_run(folder, recipe, device)


def require_files(folder: Path, names: tuple[str, ...]) -> None:
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise UserError(
            f"{folder} has no {', '.join(missing)}: {RunFolder(folder.parent).damaged_advice()}"
        )
