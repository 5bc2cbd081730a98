"""Prefix tuning (Li & Liang 2021) through peft: learned key/value prefixes per layer."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from tunesmith.method_registry import register_method
from tunesmith.methods.peft_wrap import wrap
from tunesmith.methods.virtual_tokens import VirtualTokensSettings

if TYPE_CHECKING:
    from torch import nn


class PrefixMethod(VirtualTokensSettings):
    """Prefix tuning (Li & Liang 2021): learned key/value prefixes in every attention layer."""

    name: Literal["prefix"]
    default_learning_rate: ClassVar[float] = 1e-2


@register_method(PrefixMethod, saves_adapter=True, virtual_tokens=True, mergeable=False)
def apply_prefix(model: nn.Module, config: PrefixMethod) -> nn.Module:
    from peft import PrefixTuningConfig

    from tunesmith.models.structure import peft_task_type

    peft_config = PrefixTuningConfig(
        task_type=peft_task_type(model), num_virtual_tokens=config.num_virtual_tokens
    )
    return wrap(model, peft_config)
