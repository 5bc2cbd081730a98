"""Prompt tuning (Lester et al. 2021) through peft: learned input embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from tunesmith.method_registry import register_method
from tunesmith.methods.peft_wrap import wrap
from tunesmith.methods.virtual_tokens import VirtualTokensSettings

if TYPE_CHECKING:
    from torch import nn


class PromptMethod(VirtualTokensSettings):
    """Prompt tuning (Lester et al. 2021): learned input embeddings before the prompt."""

    name: Literal["prompt"]
    init_text: str | None = None
    """Start the virtual tokens from this text's embeddings (e.g. a task description)
    instead of random vectors."""
    default_learning_rate: ClassVar[float] = 3e-2


@register_method(PromptMethod, saves_adapter=True, virtual_tokens=True, mergeable=False)
def apply_prompt(model: nn.Module, config: PromptMethod) -> nn.Module:
    from peft import PromptTuningConfig, PromptTuningInit

    from tunesmith.models.structure import peft_task_type

    from_text = config.init_text is not None
    peft_config = PromptTuningConfig(
        task_type=peft_task_type(model),
        num_virtual_tokens=config.num_virtual_tokens,
        prompt_tuning_init=PromptTuningInit.TEXT if from_text else PromptTuningInit.RANDOM,
        prompt_tuning_init_text=config.init_text,
        tokenizer_name_or_path=model.name_or_path if from_text else None,
    )
    return wrap(model, peft_config)
