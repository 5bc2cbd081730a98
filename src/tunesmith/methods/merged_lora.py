"""Answers through LoRA's merged weights: while a model generates, each LoRA layer's update
is folded into its frozen weight, so a decoding step runs one matrix product per layer
instead of three (the base weight, then A, then B). Decoding is a long run of tiny steps in
which those extra products cost about half as much as the model itself (SmolLM2, batch 16,
2 cores); with them folded in, tuned answers take the base model's time.

Nothing is changed for good: the adapters are not touched, and the frozen weights come back
afterwards as the very tensors they were (not merged and unmerged again, which would round
them). Models this does not apply to (other adapters, DoRA, a LoRA already merged, sharded
weights) generate as they are."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


@contextmanager
def lora_merged(model: nn.Module) -> Iterator[nn.Module]:
    """`model`, for the duration, with every LoRA update folded into its layer's frozen
    weight (in that weight's dtype) and the adapters switched off."""
    layers = mergeable_lora_layers(model)
    if not layers:
        yield model
        return
    originals: list[tuple[nn.Module, nn.Parameter]] = []
    try:
        with torch.no_grad():
            for layer in layers:
                base = layer.get_base_layer()
                weight = base.weight
                delta = sum(layer.get_delta_weight(name).float() for name in layer.active_adapters)
                merged = (weight.float() + delta).to(weight.dtype)
                originals.append((base, weight))
                base.weight = nn.Parameter(merged, requires_grad=False)
        with model.disable_adapter():
            yield model
    finally:
        for base, weight in originals:
            base.weight = weight


def mergeable_lora_layers(model: nn.Module) -> list[Any]:
    """The model's LoRA layers when every one of them can be folded in (plain LoRA on a
    Linear or Embedding, not merged, weights not sharded) and switching the adapters off
    changes nothing else (no trained copies of whole modules or tokens); else none."""
    if not hasattr(model, "disable_adapter"):
        return []
    from peft.tuners.lora import LoraLayer
    from peft.utils.other import AuxiliaryTrainingWrapper

    modules = list(model.modules())
    if any(isinstance(m, AuxiliaryTrainingWrapper) for m in modules):
        return []
    layers = [m for m in modules if isinstance(m, LoraLayer)]
    return layers if layers and all(_foldable(layer) for layer in layers) else []


def _foldable(layer: Any) -> bool:
    from torch.distributed.tensor import DTensor

    weight = getattr(layer.get_base_layer(), "weight", None)
    if weight is None or isinstance(weight, DTensor) or layer.merged or layer.disable_adapters:
        return False
    names = list(layer.active_adapters)
    adapters = {**layer.lora_A, **layer.lora_embedding_A}
    return bool(names) and all(
        name in adapters and name not in layer.lora_variant for name in names
    )
