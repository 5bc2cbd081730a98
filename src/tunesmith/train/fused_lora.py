"""A LoRA layer's forward and backward as one product each, in place of peft's four.

peft computes `base(x) + lora_B(lora_A(x)) * scaling`: the rank-r product's output, its
scaled copy and the sum are three tensors as large as the layer's output, written and read
again in the backward pass. For SmolLM2 (r 8, batch 16) they took a third of a training
step on 2 CPU cores, more than the adapter's arithmetic. Here the low-rank update is added
into the base product's output in place by one `addmm_` (scaled there), and the backward
pass does the same for the input's gradient: the same function, the same gradients up to
float rounding (a test compares both with peft's), one output-sized tensor instead of four.

Installed on every peft LoRA `Linear` (`fuse_lora_layers`); a layer takes peft's own path
whenever the fused one does not apply: adapters disabled or merged, several or mixed
adapters, DoRA and other variants, dropout, a LoRA bias, a trained base weight.
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def fuse_lora_layers(model: nn.Module) -> int:
    """Give every peft LoRA Linear of `model` the fused forward; returns how many."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    layers = [m for m in model.modules() if isinstance(m, LoraLinear)]
    for layer in layers:
        if "_peft_forward" not in layer.__dict__:
            layer._peft_forward = layer.forward
            layer.forward = types.MethodType(_fused_forward, layer)
    return len(layers)


def _fused_forward(layer: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    adapter = _single_plain_adapter(layer)
    if adapter is None or args or kwargs:
        return layer._peft_forward(x, *args, **kwargs)
    base = layer.base_layer
    return _LoraLinear.apply(
        x,
        base.weight,
        base.bias,
        layer.lora_A[adapter].weight,
        layer.lora_B[adapter].weight,
        float(layer.scaling[adapter]),
    )


PEFT_MODULE_CALLS = 5
"""Module calls of peft's path through one LoRA layer (the layer, its base layer, dropout, A
and B), which the fused path makes in one: the estimate counts a fused layer as these, so
its fixed cost per call stays comparable between fused and unfused models."""


def fused_flops(layer: nn.Module, x: torch.Tensor) -> tuple[float, float] | None:
    """(forward, forward + backward) multiply-add flops of `layer` on input `x` when it runs
    the fused path (its sub-layers then run no forward of their own for a profile to see),
    else None. Backward: the input's gradient through W and the low-rank path, and the
    gradients of A and B."""
    if "_peft_forward" not in layer.__dict__:
        return None
    adapter = _single_plain_adapter(layer)
    if adapter is None:
        return None
    rows = x.numel() // x.shape[-1]
    inputs, outputs = layer.base_layer.in_features, layer.base_layer.out_features
    rank = layer.lora_A[adapter].out_features
    base, down, up = (2.0 * rows * n for n in (inputs * outputs, rank * inputs, rank * outputs))
    forward = base + down + up
    adapter_gradients = 2 * up + down  # through B to A's output, B's weight, A's weight
    input_gradient = base + down if x.requires_grad else 0.0
    return forward, forward + adapter_gradients + input_gradient


def _single_plain_adapter(layer: Any) -> str | None:
    """The one active adapter when the fused path computes what peft would, else None."""
    if layer.disable_adapters or layer.merged or not isinstance(layer.base_layer, nn.Linear):
        return None
    active = [a for a in layer.active_adapters if a in layer.lora_A]
    if len(active) != 1:
        return None
    (adapter,) = active
    if adapter in getattr(layer, "lora_variant", {}):  # DoRA and the like
        return None
    if not isinstance(layer.lora_dropout[adapter], nn.Identity):
        return None
    if layer.lora_B[adapter].bias is not None or getattr(layer, "fan_in_fan_out", False):
        return None
    base = layer.base_layer
    if base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad):
        return None
    return adapter


def _compute_dtype(x: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """What autocast would multiply in (its dtype where it is on), else the inputs' own."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return torch.promote_types(x.dtype, weight.dtype)


class _LoraLinear(torch.autograd.Function):
    """y = x W^T + b + s (x A^T) B^T, with W and b frozen; A (r x in) and B (out x r) train."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling):
        dtype = _compute_dtype(x, weight)
        with torch.autocast(x.device.type, enabled=False):
            inputs = x.reshape(-1, x.shape[-1]).to(dtype)
            a, b = lora_a.to(dtype), lora_b.to(dtype)
            out = F.linear(inputs, weight.to(dtype), None if bias is None else bias.to(dtype))
            low_rank = inputs @ a.T
            out.addmm_(low_rank, b.T, alpha=scaling)
        ctx.save_for_backward(inputs, weight, a, b, low_rank)  # a, b: r x (in + out), small
        ctx.scaling, ctx.x_shape, ctx.x_dtype = scaling, x.shape, x.dtype
        ctx.adapter_dtypes = lora_a.dtype, lora_b.dtype
        return out.view(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad_out):
        inputs, weight, a, b, low_rank = ctx.saved_tensors
        dtype, scaling = inputs.dtype, ctx.scaling
        a_dtype, b_dtype = ctx.adapter_dtypes
        with torch.autocast(grad_out.device.type, enabled=False):
            grad = grad_out.reshape(-1, grad_out.shape[-1]).to(dtype)
            grad_low_rank = (grad @ b).mul_(scaling)
            grad_b = (grad.T @ low_rank).mul_(scaling).to(b_dtype)
            grad_a = (grad_low_rank.T @ inputs).to(a_dtype)
            grad_x = None
            if ctx.needs_input_grad[0]:
                grad_x = grad @ weight.to(dtype)
                grad_x.addmm_(grad_low_rank, a)
                grad_x = grad_x.view(ctx.x_shape).to(ctx.x_dtype)
        return grad_x, None, None, grad_a, grad_b, None
