"""Selective fine-tuning: only the last N transformer layers and the head are updated."""

from torch import nn

from tunesmith.errors import UserError
from tunesmith.methods.registry import freeze_all_but, register
from tunesmith.models.text import head_modules, layer_stack
from tunesmith.recipe import SelectiveMethod


@register("selective")
def apply_selective(model: nn.Module, config: SelectiveMethod) -> nn.Module:
    layers = layer_stack(model)
    if config.layers > len(layers):
        raise UserError(
            f"method.layers: {config.layers}, but the model has {len(layers)} layers; "
            f"use at most {len(layers)} (or method.name: full)"
        )
    trainable = [*layers[-config.layers :], *head_modules(model).values()]
    return freeze_all_but(model, trainable)
