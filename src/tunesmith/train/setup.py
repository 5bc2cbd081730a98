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
from tunesmith.train.fused_lora import fuse_lora_layers


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
    (`set_up_fast_paths`), then gradient checkpointing and compilation as the recipe says.
    The head is found before the method runs: peft copies it."""
    head = family.head_parameters()
    model = method.apply(family.model, recipe.method)
    set_up_fast_paths(model, recipe, method, dtype, sharded)
    if recipe.train.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if recipe.train.compile:
        blocks = compile_blocks(model)
        if console is not None:
            console.print(f"Compiling {blocks} blocks (cached after the first run)")
    return WrappedModel(model, head)


def set_up_fast_paths(
    model: nn.Module,
    recipe: Recipe,
    method: Method,
    dtype: torch.dtype | None,
    sharded: bool = False,
) -> None:
    """A model (its method applied) as it trains fastest under autocast to `dtype` (None:
    fp32): LoRA layers fused (train/fused_lora.py); then under a low precision, for an
    adapter of a generative kind, the frozen weights stored in `dtype`, adapter inputs left
    in their dtype, and under bf16 on a CPU attention trained in fp32 (models/attention.py).
    `train` and the estimate's profile both start here."""
    if not sharded:
        fuse_lora_layers(model)
    if dtype is None:
        return
    if stores_frozen_weights(recipe, method, sharded):
        store_frozen_weights(model, dtype)
    keep_adapter_input_dtype(model)
    if dtype == torch.bfloat16:
        use_fast_cpu_training_attention()


def stores_frozen_weights(recipe: Recipe, method: Method, sharded: bool = False) -> bool:
    """Whether a bf16 run keeps the frozen weights in bf16 (`store_frozen_weights`): for an
    adapter of a generative kind, unless FSDP shards the weights (one dtype per shard)."""
    from tunesmith.tasks.registry import get_task

    return method.saves_adapter and get_task(recipe.task).generative and not sharded


def store_frozen_weights(model: nn.Module, dtype: torch.dtype) -> int:
    """Store every frozen floating-point weight of `model` in `dtype` (matrices, embeddings,
    norms, a tied output layer); the bytes saved. The trained weights (the adapter) stay
    fp32, as the optimiser needs them.

    Under autocast each Linear casts its fp32 weight to bf16 on every forward pass and does
    not cache the cast of a frozen weight: for an adapter on a frozen model a copy of the
    whole model per forward pass, which generation repeats for every new token (SmolLM2 LoRA,
    batch 8: 32 new tokens in 2.7 s stored, 4.0 s cast). With the embeddings in bf16 as
    well, the residual stream between the layers is bf16, as in a model loaded with
    `torch_dtype=bfloat16` (norms and softmax still compute in fp32 inside): half the bytes
    for every element-wise pass over it (norms, residual adds, rotary embeddings), which
    autocast leaves in fp32. Measured on 2 AMX cores, SmolLM2 LoRA r8 batch 16: a step
    2.93 s with fp32 embeddings and norms, 2.75 s with all frozen weights in bf16 (fused
    LoRA layers: 2.80 s and 2.46 s); test loss after one epoch (r16, batch 8, vs_hf.py)
    3.0429 and 3.0411. Only for methods that save an adapter (the frozen weights are never
    written back) and generative kinds (every forward pass of theirs runs under autocast)."""
    saved = 0
    for parameter in model.parameters():  # each once: a tied weight is not seen twice
        if parameter.requires_grad or not parameter.dtype.is_floating_point:
            continue
        if parameter.dtype == dtype:
            continue
        saved += parameter.numel() * (parameter.element_size() - torch.finfo(dtype).bits // 8)
        parameter.data = parameter.data.to(dtype)
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
