"""The analytic cost model: memory by component and time from multiply-adds.

Training memory is the runtime (Python, torch and the libraries, measured in this process
before the model is loaded), the weights, a gradient and two AdamW moments per trainable
weight (fp32), the activations autograd keeps for the longest batch (profiled, see
profile.py), and, on a CPU, the allocator's slack. Time is the training multiply-adds of an
epoch over the speed of a short matrix product, plus the bytes the element-wise work moves
over the speed of a large element-wise sum (both measured on the device, each derated to
what training loops reach), plus the measured cost of making the batches and a cost per
optimizer step."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from tunesmith.estimate.profile import ForwardProfile

MB = 2**20
ADAMW_STATES = 2
"""exp_avg and exp_avg_sq, fp32, per trainable weight."""
CPU_SLACK = 1.48
"""A CPU process's resident memory over the tensors of the dynamic part (gradients,
optimizer, activations): glibc's heap cannot reuse the holes that a step's mix of tensor
sizes leaves, so its top climbs past the tensors alive at any time. Measured on SmolLM2
LoRA (fp32, before the fused LoRA layers): the tensors a step allocates peak at 3.1 GB
(counted by a dispatch mode) while the process grows by 6.8 GB. The fused layers
(train/fused_lora.py) leave three fewer output-sized tensors per layer to fragment the heap:
the whole-run peaks of the shipped LoRA recipes (benchmarks/estimate.py, bf16 and fp32) then
fit 1.44-1.52 for SmolLM2, where 1.78-1.88 fitted before."""
OTHER_PHASES_MB = 300.0
"""What the phases around training add to the runtime measured before the model loads (the
data check's libraries and features, the cheaper options, the forgetting reference): 300 to
350 MB on the shipped LoRA recipes, the least of them taken."""
BACKWARD_COPIES = 2
"""The gradient of the largest saved tensor and of its input, alive together."""
RUN_GROWTH = 1.12
"""A whole run's RSS peak over a few-step dry run's (allocator fragmentation over hundreds of
steps of varied shapes, evaluation and checkpoint buffers): measured 1.03 to 1.28 on the
shipped recipes (benchmarks/estimate.py), 1.12 in the middle. Calibrates a dry run only:
the analytic model's CPU_SLACK and OTHER_PHASES_MB were fitted on whole runs."""
CUDA_WORKSPACE = 1.1
"""cuBLAS/cuDNN workspaces and fragmentation on top of the tensors."""
BF16_ACTIVATIONS = 0.6
"""Share of the fp32 activation memory kept under bf16 autocast (matmul outputs halve,
norms and softmax stay fp32)."""
CHECKPOINTING_ACTIVATIONS = 0.25
"""Share of the activations kept with gradient checkpointing (layer inputs, plus one layer
being recomputed)."""
CHECKPOINTING_TIME = 1.33
"""One more forward pass per step."""
MATMUL_EFFICIENCY = {"fp32": 0.49, "bf16": 0.32}
"""Share of the square matrix product's speed that a training step's products reach
(smaller, thinner matrices; under bf16 also attention, which trains in fp32 on a CPU, see
models/attention.py, and the products a rank-16 adapter makes, too thin for AMX tiles).
Fitted, with MODULE_CALL_SECONDS, on SmolLM2 and MiniLM LoRA epochs (benchmarks/estimate.py,
2 cores with AMX; with the fused LoRA layers, whose products run closer to the square one's
speed than peft's four thinner ones: 0.41 and 0.23 fitted before); the dry run replaces the
whole time with the measured one."""
ELEMENTWISE_PASSES = 4.0
"""Times the element-wise work of a step (norms, activations, residual adds, dropout,
softmax, their gradients) moves each byte autograd saves: written in the forward pass,
read and its gradient written and read in the backward pass. Where bf16 products are fast
this memory traffic, not the products, bounds a step."""
MODULE_CALL_SECONDS = {"fp32": 7.8e-5, "bf16": 2.6e-4}
"""A module's fixed cost in a training step (its forward and backward operations' Python,
dispatch and autograd bookkeeping), whatever the batch size; under bf16 autocast adds a
cast before every product. It bounds a small model: MiniLM LoRA trains slower in bf16 than
in fp32 on 2 cores (1.76 against 1.29 s an epoch). A fused LoRA layer counts as the calls
of peft's path (train/fused_lora.py PEFT_MODULE_CALLS)."""
STEP_OVERHEAD_SECONDS = 0.01
"""Fixed cost of an optimizer step (Python, autograd bookkeeping, gradient clipping)."""
OPTIMIZER_SECONDS_PER_PARAMETER = 2e-9
"""AdamW's update, per trainable weight and step (memory-bound: it reads and writes four
fp32 tensors)."""


@dataclass
class MemoryBreakdown:
    runtime_mb: float
    weights_mb: float
    gradients_mb: float
    optimizer_mb: float
    activations_mb: float
    backward_mb: float
    """Gradients of the largest activations, alive at once during the backward pass."""
    casts_mb: float
    """Under bf16: the bf16 copies autocast makes of fp32 matrix weights (trained ones, and
    frozen ones of a model whose weights are not stored in bf16), kept for the backward
    pass. A generative adapter run stores every frozen weight in bf16: no copy."""
    overhead_mb: float
    peak_mb: float
    """Predicted peak for the device: process RSS on a CPU, CUDA peak allocation on a GPU."""

    def to_dict(self) -> dict[str, float]:
        return {key: round(value, 1) for key, value in asdict(self).items()}


def parameter_bytes(model: nn.Module) -> tuple[int, int, float, float]:
    """(total params, trainable params, bytes of all weights and buffers, trainable bytes)."""
    total = trainable = 0
    weight_bytes = trainable_bytes = 0.0
    for parameter in model.parameters():
        total += parameter.numel()
        weight_bytes += parameter.numel() * parameter.element_size()
        if parameter.requires_grad:
            trainable += parameter.numel()
            trainable_bytes += parameter.numel() * 4  # fp32 master weights and moments
    weight_bytes += sum(b.numel() * b.element_size() for b in model.buffers())
    return total, trainable, weight_bytes, trainable_bytes


def memory_breakdown(
    model: nn.Module,
    profile: ForwardProfile,
    batch_size: int,
    device: str,
    runtime_mb: float,
    bf16: bool,
    checkpointing: bool,
) -> MemoryBreakdown:
    _, _, weight_bytes, trainable_bytes = parameter_bytes(model)
    measured_bf16 = profile.under_autocast  # saved bytes and weight copies already bf16
    activations = profile.activation_bytes * batch_size + profile.fixed_activation_bytes
    activations *= activation_scale(profile, bf16)
    activations *= CHECKPOINTING_ACTIVATIONS if checkpointing else 1.0
    backward = BACKWARD_COPIES * profile.largest_bytes * batch_size
    backward *= activation_scale(profile, bf16)
    gradients = trainable_bytes
    optimizer = trainable_bytes * ADAMW_STATES
    casts = cast_copy_bytes(model) if bf16 and not measured_bf16 else 0.0
    dynamic = gradients + optimizer + activations + backward + casts
    if device == "cuda":
        overhead = (weight_bytes + dynamic) * (CUDA_WORKSPACE - 1)
        runtime = 0.0
    else:
        runtime = runtime_mb * MB
        overhead = dynamic * (CPU_SLACK - 1) + OTHER_PHASES_MB * MB
    peak = runtime + weight_bytes + dynamic + overhead
    return MemoryBreakdown(
        runtime_mb=runtime / MB,
        weights_mb=weight_bytes / MB,
        gradients_mb=gradients / MB,
        optimizer_mb=optimizer / MB,
        activations_mb=activations / MB,
        backward_mb=backward / MB,
        casts_mb=casts / MB,
        overhead_mb=overhead / MB,
        peak_mb=peak / MB,
    )


def activation_scale(profile: ForwardProfile, bf16: bool) -> float:
    """What the profiled saved bytes become in the run: BF16_ACTIVATIONS of them under bf16
    autocast, unless the profile already ran under it."""
    return BF16_ACTIVATIONS if bf16 and not profile.under_autocast else 1.0


def cast_copy_bytes(model: nn.Module) -> float:
    """Bytes of the bf16 copies autocast makes of the fp32 weights of matrix layers (Linear,
    convolutions) for one step; embeddings and norms run in fp32 and are not copied."""
    seen: set[int] = set()
    total = 0.0
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            weight = getattr(module, "weight", None)
            if weight is not None and weight.dtype == torch.float32 and id(weight) not in seen:
                seen.add(id(weight))
                total += weight.numel() * 2
    return total


def matmul_flops_per_second(device: torch.device, bf16: bool, size: int = 1024) -> float:
    """Sustained multiply-add speed of a square matrix product (best of a few trials)."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(4):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, (time.perf_counter() - began) / 4)
    return 2 * size**3 / best


@dataclass
class TimeBreakdown:
    """Seconds of one epoch's training steps, by what bounds them."""

    matmul_seconds: float
    """Matrix products: multiply-adds over the measured product speed (MATMUL_EFFICIENCY)."""
    memory_seconds: float
    """Element-wise work: the bytes it moves over the measured memory speed."""
    input_seconds: float
    """Making the batches (reading and decoding images, collating), measured."""
    overhead_seconds: float
    """Per micro-batch and module: Python, dispatch and autograd bookkeeping, which bound
    the steps of a small model."""
    step_seconds: float
    """Per optimizer step: fixed overhead and AdamW's update."""

    @property
    def total(self) -> float:
        return sum(asdict(self).values())

    def to_dict(self) -> dict[str, float]:
        return {key: round(value, 3) for key, value in asdict(self).items()}


def memory_bytes_per_second(device: torch.device, size: int = 16 * 2**20) -> float:
    """Sustained speed of an element-wise sum over tensors larger than the caches (bytes
    read and written per second, best of a few trials)."""
    a = torch.randn(size, device=device)
    b = torch.randn(size, device=device)
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        torch.add(a, b, out=a)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - began)
    return 3 * size * a.element_size() / best


def current_rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / MB
