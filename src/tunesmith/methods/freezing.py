"""Shared by the methods: freeze a model by structure, count what trains."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


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
