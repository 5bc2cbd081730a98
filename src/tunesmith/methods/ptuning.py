"""P-tuning (Liu et al. 2021) through peft: virtual tokens from a small trained encoder."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from tunesmith.method_registry import register_method
from tunesmith.methods.peft_wrap import wrap
from tunesmith.methods.virtual_tokens import VirtualTokensSettings

if TYPE_CHECKING:
    from torch import nn


class PtuningMethod(VirtualTokensSettings):
    """P-tuning (Liu et al. 2021): virtual tokens produced by a small trained encoder."""

    name: Literal["ptuning"]
    encoder_hidden_size: int = Field(128, ge=1)
    default_learning_rate: ClassVar[float] = 3e-3


@register_method(PtuningMethod, saves_adapter=True, virtual_tokens=True, mergeable=False)
def apply_ptuning(model: nn.Module, config: PtuningMethod) -> nn.Module:
    from peft import PromptEncoderConfig

    from tunesmith.models.structure import peft_task_type

    peft_config = PromptEncoderConfig(
        task_type=peft_task_type(model),
        num_virtual_tokens=config.num_virtual_tokens,
        encoder_hidden_size=config.encoder_hidden_size,
    )
    return wrap(model, peft_config)
