"""The one setup sequence around the method, shared by `train`, the estimate's dry run, the
benchmarks and the tests: seed, then (after the task kind prepared its family) the head's
parameters, the method applied, gradient checkpointing and compilation. Written once, so the
runs that measure a recipe are the runs that train it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn

from tunesmith.errors import UserError
from tunesmith.method_registry import Method
from tunesmith.recipe import Recipe
from tunesmith.train.compile import compile_blocks


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class WrappedModel:
    model: nn.Module
    """The family's model with the method applied (peft wraps it in place)."""
    head: set[int]
    """id() of the freshly initialised head parameters (they learn at the head rate)."""


def wrap_model(
    recipe: Recipe, family: Any, method: Method, console: Console | None = None
) -> WrappedModel:
    """Apply the recipe's method to `family.model`, then gradient checkpointing and
    compilation as the recipe says. The head is found before the method runs: peft copies
    it."""
    head = family.head_parameters()
    model = method.apply(family.model, recipe.method)
    if recipe.train.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if recipe.train.compile:
        blocks = compile_blocks(model)
        if console is not None:
            console.print(f"Compiling {blocks} blocks (cached after the first run)")
    return WrappedModel(model, head)


def enable_gradient_checkpointing(model: nn.Module) -> None:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(inner, "supports_gradient_checkpointing", False):
        raise UserError(
            f"train.gradient_checkpointing: {type(inner).__name__} does not support it; "
            "set it to false (or lower train.batch_size / preprocess.max_length to save memory)"
        )
    # non-reentrant: works with frozen embeddings (adapters) without extra hooks
    inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
