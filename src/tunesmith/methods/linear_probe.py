"""Linear probe: the pre-trained encoder is a frozen feature extractor; only the head learns."""

from torch import nn

from tunesmith.methods.registry import freeze_all_but, register
from tunesmith.models.structure import head_modules
from tunesmith.recipe import LinearProbeMethod


@register("linear-probe")
def apply_linear_probe(model: nn.Module, config: LinearProbeMethod) -> nn.Module:
    return freeze_all_but(model, list(head_modules(model).values()))
