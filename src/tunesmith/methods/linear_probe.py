"""Linear probe: the pre-trained encoder is a frozen feature extractor; only the head learns."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from tunesmith.method_registry import MethodSettings, register_method
from tunesmith.methods.freezing import freeze_all_but

if TYPE_CHECKING:
    from torch import nn


class LinearProbeMethod(MethodSettings):
    """Frozen encoder used as a feature extractor; only the head is trained."""

    name: Literal["linear-probe"]
    default_learning_rate: ClassVar[float] = 2e-3


@register_method(LinearProbeMethod)
def apply_linear_probe(model: nn.Module, config: LinearProbeMethod) -> nn.Module:
    from tunesmith.models.structure import head_modules

    return freeze_all_but(model, list(head_modules(model).values()))
