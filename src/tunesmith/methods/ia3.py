"""(IA)^3 (Liu et al. 2022) through peft: learned rescaling vectors on activations."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from tunesmith.method_registry import MethodSettings, register_method
from tunesmith.methods.peft_wrap import wrap

if TYPE_CHECKING:
    from torch import nn


class IA3Method(MethodSettings):
    """(IA)^3 (Liu et al. 2022): learned rescaling vectors, even fewer parameters than LoRA."""

    name: Literal["ia3"]
    target_modules: list[str] | None = None
    """Modules to rescale; peft's default for the architecture when absent."""
    feedforward_modules: list[str] | None = None
    default_learning_rate: ClassVar[float] = 3e-3


@register_method(IA3Method, saves_adapter=True)
def apply_ia3(model: nn.Module, config: IA3Method) -> nn.Module:
    from peft import IA3Config

    from tunesmith.models.structure import head_modules, peft_task_type

    peft_config = IA3Config(
        task_type=peft_task_type(model),
        target_modules=config.target_modules,
        feedforward_modules=config.feedforward_modules,
        modules_to_save=_with_weights(model, list(head_modules(model))) or None,
    )
    return wrap(model, peft_config)


def _with_weights(model: nn.Module, names: list[str]) -> list[str]:
    """The head's modules to train and save, each one that holds a weight: BERT's pooler
    (a Linear inside a module) becomes `bert.pooler.dense`, because peft's (IA)^3 merge
    copies `.weight` from every saved module and fails on one that has none."""
    modules = dict(model.named_modules())
    out: list[str] = []
    for name in names:
        if hasattr(modules[name], "weight"):
            out.append(name)
            continue
        out += [
            f"{name}.{child}"
            for child, module in modules[name].named_modules()
            if child and hasattr(module, "weight") and not list(module.children())
        ]
    return out
