"""Selective fine-tuning: only the last N transformer layers and the head are updated."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from tunesmith.errors import UserError
from tunesmith.method_registry import MethodSettings, register_method
from tunesmith.methods.freezing import freeze_all_but

if TYPE_CHECKING:
    from torch import nn


class SelectiveMethod(MethodSettings):
    """Train only the last `layers` transformer layers plus the classification head (for a
    causal LM: plus the final norm; the tied output layer stays frozen)."""

    name: Literal["selective"]
    layers: int = Field(2, ge=1)
    default_learning_rate: ClassVar[float] = 1e-4


@register_method(SelectiveMethod)
def apply_selective(model: nn.Module, config: SelectiveMethod) -> nn.Module:
    from tunesmith.models.structure import final_norm, head_modules, is_language_model, layer_stack

    layers = layer_stack(model)
    if config.layers > len(layers):
        raise UserError(
            f"method.layers: {config.layers}, but the model has {len(layers)} layers; "
            f"use at most {len(layers)} (or method.name: full)"
        )
    trainable = [*layers[-config.layers :], *head_modules(model).values()]
    if is_language_model(model):
        trainable += final_norm(model)
    return freeze_all_but(model, trainable)
