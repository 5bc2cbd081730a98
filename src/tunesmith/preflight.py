"""Checks that refuse a run before its first minute of work, shared by every command that
trains: what the model can read (`preprocess.max_length`), whether the method fits the model
(the same rule `tunesmith estimate` applies: the method wraps the model and one example goes
through it), and whether `train.gradient_checkpointing` is supported.

Each check names the recipe key and the fix; none changes the model or the random state the
run will use."""

from __future__ import annotations

import copy
from pathlib import Path

import psutil
import torch
from torch import nn

from tunesmith.errors import UserError, first_line
from tunesmith.method_registry import Method
from tunesmith.models.limits import model_position_limit
from tunesmith.recipe import Recipe
from tunesmith.train.task import TrainTask

PROBE_SHARE = 0.25
"""The method probe copies the model; it is skipped when the copy would take more than this
share of the free memory (the run then finds out at its first step, and still cleans up)."""


def check_max_length(recipe: Recipe, model_folder: Path) -> None:
    """`preprocess.max_length` within the model's position limit (BERT: 512), read from its
    config.json before any data is read or model loaded."""
    asked = recipe.preprocess.max_length
    if asked == "auto":  # chosen within the model's limit (data/lengths.py)
        return
    limit = model_position_limit(model_folder) if asked is not None else None
    if limit is not None and asked > limit:
        raise UserError(
            f"preprocess.max_length: {asked}, but {recipe.model} reads at most {limit} tokens "
            f"(its position embeddings); set preprocess.max_length to {limit} or less"
        )


def check_method_fits(recipe: Recipe, method: Method, model: nn.Module, task: TrainTask) -> None:
    """Wrap a copy of the model with the method and put one training example through it:
    a method that does not apply (prefix tuning on an encoder without a key-value cache, an
    adapter for another architecture) is refused now, not after scoring the base model."""
    if _copy_bytes(model) > PROBE_SHARE * _free_bytes(model):
        return
    rng = torch.get_rng_state()
    try:
        probe = method.apply(copy.deepcopy(model), recipe.method)
        with torch.no_grad():
            probe.eval()
            task.loss_sum(probe, task.batch("train", [0]))
    except UserError:
        raise
    except (ValueError, RuntimeError, TypeError, AttributeError, KeyError, IndexError) as error:
        reason = first_line(error)
        raise UserError(
            f"method.name: {recipe.method.name} does not apply to {recipe.model} ({reason}); "
            "choose another method (`tunesmith estimate RECIPE` lists the methods that fit)"
        ) from None
    finally:
        torch.set_rng_state(rng)


def check_gradient_checkpointing(recipe: Recipe, model: nn.Module) -> None:
    if recipe.train.gradient_checkpointing and not getattr(
        model, "supports_gradient_checkpointing", False
    ):
        raise UserError(
            f"train.gradient_checkpointing: {type(model).__name__} does not support it; "
            "set it to false (or lower train.batch_size / preprocess.max_length to save memory)"
        )


def _copy_bytes(model: nn.Module) -> int:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _free_bytes(model: nn.Module) -> int:
    device = next(model.parameters()).device
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return psutil.virtual_memory().available
