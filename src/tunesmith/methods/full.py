"""Full fine-tuning: every parameter is updated."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from tunesmith.method_registry import MethodSettings, register_method

if TYPE_CHECKING:
    from torch import nn


class FullMethod(MethodSettings):
    """Update every parameter: best quality, highest cost, most forgetting."""

    name: Literal["full"]
    default_learning_rate: ClassVar[float] = 5e-5


@register_method(FullMethod)
def apply_full(model: nn.Module, config: FullMethod) -> nn.Module:
    return model.requires_grad_(True)
