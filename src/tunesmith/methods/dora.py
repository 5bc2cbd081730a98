"""DoRA (Liu et al. 2024): LoRA on the weights' direction plus a learned magnitude."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from tunesmith.method_registry import register_method
from tunesmith.methods.lora import LORA_A, LoraMethod, apply_lora

if TYPE_CHECKING:
    from torch import nn


class DoraMethod(LoraMethod):
    """Weight-decomposed LoRA (Liu et al. 2024): LoRA on the direction, a learned magnitude."""

    name: Literal["dora"]  # type: ignore[assignment]


@register_method(DoraMethod, saves_adapter=True, held_in_interpolation=LORA_A)
def apply_dora(model: nn.Module, config: DoraMethod) -> nn.Module:
    return apply_lora(model, config, use_dora=True)
