"""Adapters through peft (LoRA, (IA)^3): the base stays frozen, its on-disk format is peft's."""

from __future__ import annotations

from peft import IA3Config, LoraConfig, PeftConfig, TaskType, get_peft_model
from torch import nn

from tunesmith.errors import UserError
from tunesmith.methods.registry import register
from tunesmith.models.text import head_modules, layer_stack
from tunesmith.recipe import IA3Method, LoraMethod


@register("lora", saves_adapter=True)
def apply_lora(model: nn.Module, config: LoraMethod) -> nn.Module:
    targets = config.target_modules
    if targets == "all-linear":
        targets = _linear_layers_in_stack(model)
    peft_config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=targets,
        modules_to_save=list(head_modules(model)),
    )
    return _wrap(model, peft_config)


@register("ia3", saves_adapter=True)
def apply_ia3(model: nn.Module, config: IA3Method) -> nn.Module:
    peft_config = IA3Config(
        task_type=TaskType.SEQ_CLS,
        target_modules=config.target_modules,
        feedforward_modules=config.feedforward_modules,
        modules_to_save=list(head_modules(model)),
    )
    return _wrap(model, peft_config)


def _linear_layers_in_stack(model: nn.Module) -> list[str]:
    """Full names of every Linear inside the transformer blocks (attention and MLP)."""
    stack = layer_stack(model)
    inside = {id(m) for m in stack.modules()}
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and id(module) in inside
    ]


def _wrap(model: nn.Module, peft_config: PeftConfig) -> nn.Module:
    try:
        return get_peft_model(model, peft_config)
    except ValueError as error:
        raise UserError(
            f"method: {peft_config.peft_type.value.lower()} cannot wrap {type(model).__name__}: "
            f"{str(error).splitlines()[0]}; set method.target_modules to module names of the model"
        ) from None
