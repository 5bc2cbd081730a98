"""What one training example costs a model: the activations autograd keeps for the backward
pass, and the multiply-adds of the forward and backward passes.

Measured, not guessed per architecture: one real example goes through the task's own
forward with autograd's saved-tensor hooks and a hook on every module, so any transformer,
CNN or adapter is profiled the same way, and only what the backward pass will need counts
(a frozen encoder under a linear probe keeps nothing; a frozen layer under LoRA keeps less
than a trained one)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tunesmith.train.fused_lora import PEFT_MODULE_CALLS, fused_flops
from tunesmith.train.task import Batch, TrainTask


@dataclass
class ForwardProfile:
    activation_bytes: float
    """Bytes of module outputs in the autograd graph, for one example."""
    forward_flops: float
    """Multiply-adds x 2 of the matrix products (linear, convolution, attention), one example."""
    train_flops: float
    """Forward plus backward: each product costs once more for the input gradient when its
    input is in the graph, and once more for the weight gradient when the weight trains."""
    tokens: int
    """Tokens of the profiled example (1 for an image)."""
    fixed_activation_bytes: float = 0.0
    """Saved bytes that do not grow with the batch (see profile_examples)."""
    largest_bytes: float = 0.0
    """The largest single saved tensor (e.g. an LLM's output-layer logits): the backward pass
    holds its gradient and its input's gradient at once."""
    module_calls: int = 0
    """Modules the forward pass ran through: what a step's fixed per-operation cost
    (Python, dispatch, autograd bookkeeping) grows with, whatever the batch."""
    under_autocast: bool = False
    """Profiled under bf16 autocast (a model whose frozen weights are stored in bf16 runs
    only so): the saved bytes are already bf16, autocast's weight copies included."""


def profile_examples(model: nn.Module, task: TrainTask, one: Batch, two: Batch) -> ForwardProfile:
    """Per-example costs from a batch of one and a batch of two examples: what does not grow
    with the batch (a DoRA weight norm, a prefix's key-value projection) is kept apart in
    `fixed_activation_bytes` instead of being counted once per example."""
    single = profile_example(model, task, one)
    double = profile_example(model, task, two)
    per_example = max(double.activation_bytes - single.activation_bytes, 0.0)
    return ForwardProfile(
        activation_bytes=per_example,
        forward_flops=single.forward_flops,
        train_flops=single.train_flops,
        tokens=single.tokens,
        largest_bytes=single.largest_bytes,
        fixed_activation_bytes=max(single.activation_bytes - per_example, 0.0),
        module_calls=single.module_calls,
        under_autocast=single.under_autocast,
    )


def profile_example(model: nn.Module, task: TrainTask, batch: Batch) -> ForwardProfile:
    """Profile `batch` (one example) through `task.loss_sum`, with grad enabled, no backward.

    Activations are what autograd itself saves for the backward pass (its saved-tensor
    hooks see every tensor, functional operations included), counted once per storage and
    without the weights."""
    totals = {"activations": 0.0, "forward": 0.0, "train": 0.0, "largest": 0.0, "calls": 0}
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights and storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            totals["activations"] += storage.nbytes()
            totals["largest"] = max(totals["largest"], storage.nbytes())
        return tensor

    def count(module: nn.Module, inputs: tuple, output: object) -> None:
        totals["calls"] += 1
        first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        out = output[0] if isinstance(output, (tuple, list)) and output else output
        fused = fused_flops(module, first) if first is not None else None
        if fused is not None:  # a fused LoRA layer: its sub-layers ran no forward of their own
            totals["forward"] += fused[0]
            totals["train"] += fused[1]
            totals["calls"] += PEFT_MODULE_CALLS - 1
            return
        flops = _flops(module, first, out)
        if flops:
            weight = getattr(module, "weight", None)
            input_in_graph = first is not None and first.requires_grad
            weight_trains = isinstance(weight, torch.Tensor) and weight.requires_grad
            totals["forward"] += flops
            totals["train"] += flops * (1 + input_in_graph + weight_trains)

    handles = [module.register_forward_hook(count) for module in model.modules()]
    stored_bf16 = any(p.dtype == torch.bfloat16 for p in model.parameters())
    device = next(model.parameters()).device.type
    try:
        with (
            torch.enable_grad(),
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
            torch.autocast(device, dtype=torch.bfloat16, enabled=stored_bf16),
        ):
            task.loss_sum(model, batch)
    finally:
        for handle in handles:
            handle.remove()
    return ForwardProfile(
        activation_bytes=totals["activations"],
        forward_flops=totals["forward"],
        train_flops=totals["train"],
        tokens=batch.tokens,
        largest_bytes=totals["largest"],
        module_calls=int(totals["calls"]),
        under_autocast=stored_bf16,
    )


def _flops(module: nn.Module, first: torch.Tensor | None, output: object) -> float:
    if not isinstance(output, torch.Tensor) or first is None:
        return 0.0
    if isinstance(module, nn.Linear):
        return 2.0 * module.in_features * output.numel()
    if type(module).__name__ == "Conv1D":  # GPT-2's transposed linear: weight (in, out)
        return 2.0 * module.weight.shape[0] * output.numel()
    if isinstance(module, nn.Conv2d):
        kernel = module.kernel_size[0] * module.kernel_size[1]
        return 2.0 * kernel * module.in_channels / module.groups * output.numel()
    if type(module).__name__.endswith("Attention") and first.dim() == 3:
        batch, length, hidden = first.shape  # scores and weighted sum: 2 products of L x L x H
        return 4.0 * batch * length * length * hidden
    return 0.0
