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
from tunesmith.models.attention import use_fast_cpu_training_attention
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
    recipe: Recipe,
    family: Any,
    method: Method,
    console: Console | None = None,
    dtype: torch.dtype | None = None,
    sharded: bool = False,
) -> WrappedModel:
    """Apply the recipe's method to `family.model`, set it up for the precision
    (`set_up_precision`), then gradient checkpointing and compilation as the recipe says.
    The head is found before the method runs: peft copies it."""
    head = family.head_parameters()
    model = method.apply(family.model, recipe.method)
    set_up_precision(model, recipe, method, dtype, sharded)
    if recipe.train.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if recipe.train.compile:
        blocks = compile_blocks(model)
        if console is not None:
            console.print(f"Compiling {blocks} blocks (cached after the first run)")
    return WrappedModel(model, head)


def set_up_precision(
    model: nn.Module,
    recipe: Recipe,
    method: Method,
    dtype: torch.dtype | None,
    sharded: bool = False,
) -> None:
    """A model (its method applied) as it trains under autocast to `dtype` (None: fp32,
    nothing to do): for an adapter of a generative kind the frozen matrices stored in
    `dtype`, adapter inputs left in their dtype, and under bf16 on a CPU attention trained
    in fp32 (models/attention.py). `train` and the estimate's profile both start here."""
    if dtype is None:
        return
    if stores_frozen_matrices(recipe, method, sharded):
        store_frozen_matrices(model, dtype)
    keep_adapter_input_dtype(model)
    if dtype == torch.bfloat16:
        use_fast_cpu_training_attention()


def stores_frozen_matrices(recipe: Recipe, method: Method, sharded: bool = False) -> bool:
    """Whether a bf16 run keeps the frozen matrices in bf16 (`store_frozen_matrices`): for
    an adapter of a generative kind, unless FSDP shards the weights (one dtype per shard)."""
    from tunesmith.tasks.registry import get_task

    return method.saves_adapter and get_task(recipe.task).generative and not sharded


FROZEN_CAST_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d)
"""Modules whose weights autocast casts to the low precision for every forward pass."""


def store_frozen_matrices(model: nn.Module, dtype: torch.dtype) -> int:
    """Store the weights of every frozen Linear and convolution in `dtype`; the bytes saved.

    Under autocast each of these layers casts its fp32 weight to bf16 on every forward
    pass, and does not cache the cast of a frozen weight: for an adapter on a frozen model
    that is a copy of the whole model per forward pass, which generation repeats for every
    new token (SmolLM2 with LoRA, batch 8: 32 new tokens in 2.7 s stored, 4.0 s cast; a
    training step is as fast either way) and which the backward pass keeps. Stored in bf16
    they compute exactly what autocast computed (the same bf16 operands), from half the
    memory. Only for methods that save an adapter (the frozen weights are never written
    back) and generative kinds (every forward pass of theirs runs under autocast). A
    weight shared with another module (an output layer tied to the input embeddings)
    stays as it is, and so do embeddings and norms (autocast runs those in fp32 anyway)."""
    uses: dict[int, int] = {}
    for _, parameter in model.named_parameters(remove_duplicate=False):
        uses[id(parameter)] = uses.get(id(parameter), 0) + 1
    saved = 0
    for module in model.modules():
        if not isinstance(module, FROZEN_CAST_MODULES):
            continue
        own = list(module.parameters(recurse=False))
        if not own or any(p.requires_grad or uses[id(p)] > 1 for p in own):
            continue
        if any(p.dtype != torch.float32 for p in own):
            continue
        saved += sum(p.numel() * (p.element_size() - torch.finfo(dtype).bits // 8) for p in own)
        module.to(dtype)
    return saved


def keep_adapter_input_dtype(model: nn.Module) -> int:
    """Let adapter layers take their input in the dtype it comes in; returns how many.

    peft casts a layer's input to its adapter weights' dtype (fp32) before the adapter's
    product, which autocast then casts straight back to bf16: two copies of every bf16
    activation entering an adapted layer (attention output, MLP inner states), and two more
    of its gradient. Under autocast the product runs in bf16 either way, and bf16 -> fp32
    -> bf16 is exact, so losses and gradients are bitwise the same without them."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    for layer in layers:
        layer.cast_input_dtype_enabled = False
    return len(layers)


def enable_gradient_checkpointing(model: nn.Module) -> None:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(inner, "supports_gradient_checkpointing", False):
        raise UserError(
            f"train.gradient_checkpointing: {type(inner).__name__} does not support it; "
            "set it to false (or lower train.batch_size / preprocess.max_length to save memory)"
        )
    # non-reentrant: works with frozen embeddings (adapters) without extra hooks
    inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
