"""LLaMA-Adapter (Zhang et al. 2023) through peft's adaption prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from tunesmith.errors import UserError
from tunesmith.method_registry import MethodSettings, register_method
from tunesmith.methods.peft_wrap import wrap

if TYPE_CHECKING:
    from torch import nn


class AdapterMethod(MethodSettings):
    """LLaMA-Adapter (Zhang et al. 2023, peft's adaption prompt): gated learned prompts in
    the top attention layers; Llama- and Mistral-style decoders."""

    name: Literal["adapter"]
    adapter_len: int = Field(10, ge=1)
    """Learned prompt tokens per adapted layer."""
    adapter_layers: int = Field(8, ge=1)
    """How many of the top decoder layers get an adapter."""
    default_learning_rate: ClassVar[float] = 1e-2


@register_method(AdapterMethod, saves_adapter=True, virtual_tokens=True, mergeable=False)
def apply_adapter(model: nn.Module, config: AdapterMethod) -> nn.Module:
    from peft import AdaptionPromptConfig, TaskType
    from peft.tuners.adaption_prompt.config import TRANSFORMERS_MODEL_CONFIG

    from tunesmith.models.structure import layer_stack

    kind = getattr(model.config, "model_type", "?")
    if kind not in TRANSFORMERS_MODEL_CONFIG:
        raise UserError(
            f"method: adapter (LLaMA-Adapter) supports {', '.join(TRANSFORMERS_MODEL_CONFIG)} "
            f"models, not {kind!r}; use lora, dora or prefix instead"
        )
    layers = len(layer_stack(model))
    if config.adapter_layers > layers:
        raise UserError(
            f"method.adapter_layers: {config.adapter_layers}, but the model has {layers} "
            f"layers; use at most {layers}"
        )
    peft_config = AdaptionPromptConfig(
        task_type=TaskType.CAUSAL_LM,
        adapter_len=config.adapter_len,
        adapter_layers=config.adapter_layers,
    )
    return wrap(model, peft_config)
