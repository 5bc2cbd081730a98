"""LoRA (Hu et al. 2021) through peft: trained low-rank updates beside frozen weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from tunesmith.method_registry import MethodSettings, register_method
from tunesmith.methods.peft_wrap import wrap

if TYPE_CHECKING:
    from torch import nn


class LoraMethod(MethodSettings):
    """Low-rank adapters (Hu et al. 2021) through peft; the base weights stay frozen."""

    name: Literal["lora"]
    r: int = Field(8, ge=1, le=1024)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the adapter input; 0 by default: the random masks cost about 20% of a
    LoRA step on a CPU, and early stopping already guards against overfitting."""
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    default_learning_rate: ClassVar[float] = 1e-3


LORA_A = ("lora_A", "lora_embedding_A")
"""LoRA's down-projection: its B starts at zero, so scaling B alone scales B @ A."""


@register_method(LoraMethod, saves_adapter=True, held_in_interpolation=LORA_A)
def apply_lora(model: nn.Module, config: LoraMethod, use_dora: bool = False) -> nn.Module:
    from peft import LoraConfig

    from tunesmith.models.structure import head_modules, peft_task_type

    targets = config.target_modules
    if targets == "all-linear":
        targets = default_lora_targets(model)
    peft_config = LoraConfig(
        task_type=peft_task_type(model),
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=targets,
        modules_to_save=list(head_modules(model)) or None,
        use_dora=use_dora,
    )
    return wrap(model, peft_config)


def default_lora_targets(model: nn.Module) -> list[str]:
    """Every Linear in the transformer blocks (attention and MLP; of the encoder and the
    decoder of an encoder-decoder); for an image classifier, its own choice (Linear and
    pointwise Conv2d layers in the blocks)."""
    from torch import nn

    from tunesmith.models.structure import layer_stacks
    from tunesmith.models.vision import VisionClassifier, lora_target_modules

    if isinstance(model, VisionClassifier):
        return lora_target_modules(model)
    inside = {id(module) for stack in layer_stacks(model) for module in stack.modules()}
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and id(module) in inside
    ]
