"""One table from method name to the function that makes a model trainable with it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

Apply = Callable[[nn.Module, Any], nn.Module]


@dataclass(frozen=True)
class Method:
    name: str
    apply: Apply
    """(model, method config) -> the model to train, with only its trainable params unfrozen."""
    saves_adapter: bool
    """True: the run saves a PEFT adapter (adapter/); False: the whole model (model/)."""
    virtual_tokens: bool
    """True: the method prepends learned tokens to each row (prefix, prompt, p-tuning,
    LLaMA-Adapter), so causal-lm rows hold one example each instead of being packed."""
    mergeable: bool
    """True: `export --merge` can fold the trained weights into a plain model."""


METHODS: dict[str, Method] = {}


def register(
    name: str, saves_adapter: bool = False, virtual_tokens: bool = False, mergeable: bool = True
) -> Callable[[Apply], Apply]:
    def decorator(apply: Apply) -> Apply:
        METHODS[name] = Method(name, apply, saves_adapter, virtual_tokens, mergeable)
        return apply

    return decorator


def freeze_all_but(model: nn.Module, trainable: list[nn.Module]) -> nn.Module:
    """Freeze by structure: only the parameters of `trainable` modules keep gradients."""
    model.requires_grad_(False)
    for module in trainable:
        module.requires_grad_(True)
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = total = 0
    for parameter in model.parameters():
        total += parameter.numel()
        if parameter.requires_grad:
            trainable += parameter.numel()
    return trainable, total
