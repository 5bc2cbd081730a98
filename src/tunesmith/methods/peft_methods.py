"""Adapters through peft: LoRA, DoRA, (IA)^3, prefix tuning, prompt tuning, p-tuning and
LLaMA-Adapter. The base stays frozen and the adapter's on-disk format is peft's."""

from __future__ import annotations

from peft import (
    AdaptionPromptConfig,
    IA3Config,
    LoraConfig,
    PeftConfig,
    PrefixTuningConfig,
    PromptEncoderConfig,
    PromptTuningConfig,
    PromptTuningInit,
    TaskType,
    get_peft_model,
)
from torch import nn

from tunesmith.errors import UserError
from tunesmith.methods.registry import register
from tunesmith.models.structure import head_modules, layer_stack, peft_task_type
from tunesmith.recipe import (
    AdapterMethod,
    DoraMethod,
    IA3Method,
    LoraMethod,
    PrefixMethod,
    PromptMethod,
    PtuningMethod,
)


@register("lora", saves_adapter=True)
def apply_lora(model: nn.Module, config: LoraMethod) -> nn.Module:
    targets = config.target_modules
    if targets == "all-linear":
        targets = _default_lora_targets(model)
    peft_config = LoraConfig(
        task_type=peft_task_type(model),
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=targets,
        modules_to_save=list(head_modules(model)) or None,
        use_dora=config.name == "dora",
    )
    return _wrap(model, peft_config)


@register("dora", saves_adapter=True)
def apply_dora(model: nn.Module, config: DoraMethod) -> nn.Module:
    return apply_lora(model, config)


@register("ia3", saves_adapter=True)
def apply_ia3(model: nn.Module, config: IA3Method) -> nn.Module:
    peft_config = IA3Config(
        task_type=peft_task_type(model),
        target_modules=config.target_modules,
        feedforward_modules=config.feedforward_modules,
        modules_to_save=list(head_modules(model)) or None,
    )
    return _wrap(model, peft_config)


@register("prefix", saves_adapter=True, virtual_tokens=True, mergeable=False)
def apply_prefix(model: nn.Module, config: PrefixMethod) -> nn.Module:
    peft_config = PrefixTuningConfig(
        task_type=peft_task_type(model), num_virtual_tokens=config.num_virtual_tokens
    )
    return _wrap(model, peft_config)


@register("prompt", saves_adapter=True, virtual_tokens=True, mergeable=False)
def apply_prompt(model: nn.Module, config: PromptMethod) -> nn.Module:
    from_text = config.init_text is not None
    peft_config = PromptTuningConfig(
        task_type=peft_task_type(model),
        num_virtual_tokens=config.num_virtual_tokens,
        prompt_tuning_init=PromptTuningInit.TEXT if from_text else PromptTuningInit.RANDOM,
        prompt_tuning_init_text=config.init_text,
        tokenizer_name_or_path=model.name_or_path if from_text else None,
    )
    return _wrap(model, peft_config)


@register("ptuning", saves_adapter=True, virtual_tokens=True, mergeable=False)
def apply_ptuning(model: nn.Module, config: PtuningMethod) -> nn.Module:
    peft_config = PromptEncoderConfig(
        task_type=peft_task_type(model),
        num_virtual_tokens=config.num_virtual_tokens,
        encoder_hidden_size=config.encoder_hidden_size,
    )
    return _wrap(model, peft_config)


@register("adapter", saves_adapter=True, virtual_tokens=True, mergeable=False)
def apply_adapter(model: nn.Module, config: AdapterMethod) -> nn.Module:
    from peft.tuners.adaption_prompt.config import TRANSFORMERS_MODEL_CONFIG

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
    return _wrap(model, peft_config)


def _default_lora_targets(model: nn.Module) -> list[str]:
    """Every Linear in the transformer blocks; for an image classifier, its own choice
    (Linear and pointwise Conv2d layers in the blocks)."""
    from tunesmith.models.vision import VisionClassifier, lora_target_modules

    if isinstance(model, VisionClassifier):
        return lora_target_modules(model)
    return _linear_layers_in_stack(model)


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
    except (ValueError, TypeError, AttributeError) as error:
        name = peft_config.peft_type.value.lower()
        raise UserError(
            f"method: {name} cannot wrap {type(model).__name__}: "
            f"{str(error).splitlines()[0]}; set method.target_modules to module names of the "
            "model, or choose another method"
        ) from None
