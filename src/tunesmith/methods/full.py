"""Full fine-tuning: every parameter is updated."""

from torch import nn

from tunesmith.methods.registry import register
from tunesmith.recipe import FullMethod


@register("full")
def apply_full(model: nn.Module, config: FullMethod) -> nn.Module:
    return model.requires_grad_(True)
