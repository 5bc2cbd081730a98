"""Selective fine-tuning: only the last N transformer layers and the head are updated."""

from torch import nn

from tunesmith.errors import UserError
from tunesmith.methods.registry import freeze_all_but, register
from tunesmith.models.structure import final_norm, head_modules, is_language_model, layer_stack
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
    if is_language_model(model):
        trainable += final_norm(model)
    return freeze_all_but(model, trainable)
