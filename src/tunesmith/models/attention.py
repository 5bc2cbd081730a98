"""Attention that trains fast on a CPU under bf16.

PyTorch's CPU flash-attention kernel is fast forward in bf16 but about four times slower
backward than in fp32 (SmolLM2's shapes, batch 16 of 112 tokens, 2 cores with AMX: 29 ms
for forward + backward in bf16 against 10 ms in fp32): a quarter of a LoRA step went to
it. So where autograd will need the backward pass, bf16 queries, keys and values are
raised to fp32 for the attention product (the casts cost a tenth of what they save) and
the result returns in bf16; inference and every other device keep transformers' own SDPA
path untouched. fp32 attention is also the more precise of the two.

It is registered under transformers' own "sdpa" name (`AttentionInterface.register`), so
a model's config, and so every saved or exported model, is unchanged."""

from __future__ import annotations

from typing import Any

import torch


def use_fast_cpu_training_attention() -> None:
    """Route transformers' "sdpa" attention through `_sdpa` for this process (idempotent:
    registering sets one mapping entry)."""
    from transformers import AttentionInterface

    AttentionInterface.register("sdpa", _sdpa)


def needs_fp32(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> bool:
    """bf16 attention on a CPU (bf16 inputs, or CPU autocast to bf16, which casts SDPA's
    inputs), with a backward pass to come."""
    bf16 = any(t.dtype == torch.bfloat16 for t in (query, key, value)) or (
        torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    )
    return (
        query.device.type == "cpu"
        and bf16
        and torch.is_grad_enabled()
        and (query.requires_grad or key.requires_grad or value.requires_grad)
    )


def _sdpa(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, Any]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if not needs_fp32(query, key, value):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.float()
    kwargs = {  # T5's position bias, added to the scores, comes in the model's dtype
        key: value.float()
        if isinstance(value, torch.Tensor) and value.is_floating_point()
        else value
        for key, value in kwargs.items()
    }
    with torch.autocast("cpu", enabled=False):
        output, weights = sdpa_attention_forward(
            module, query.float(), key.float(), value.float(), attention_mask, **kwargs
        )
    return output.to(torch.bfloat16), weights
