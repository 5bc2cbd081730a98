"""Budgets, a verdict per method, and the recommended setting: the recipe's method if it
fits, else the same method with a smaller batch (gradient accumulation keeps the effective
batch) or gradient checkpointing, else the cheapest other method that fits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from tunesmith.errors import UserError
from tunesmith.estimate import Estimate, MethodEstimate
from tunesmith.estimate.memory import (
    CHECKPOINTING_ACTIVATIONS,
    CHECKPOINTING_TIME,
    CPU_SLACK,
    CUDA_WORKSPACE,
    MB,
)

PREFERENCE = (
    "lora", "dora", "ia3", "selective", "adapter", "ptuning", "prompt", "prefix",
    "linear-probe", "full",
)  # fmt: skip
"""Other methods tried in this order when the recipe's does not fit: adapters first (close
to full fine-tuning in quality, far cheaper), the head-only probe late, full last. A method
not named here is tried after these."""
_UNITS = {"b": 1 / MB, "kb": 1 / 1024, "k": 1 / 1024, "mb": 1, "m": 1, "gb": 1024, "g": 1024}
_TIME_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


@dataclass
class Option:
    method: str
    batch_size: int
    gradient_accumulation: int
    gradient_checkpointing: bool
    peak_mb: float
    total_seconds: float | None

    def describe(self) -> str:
        parts = [self.method, f"batch_size {self.batch_size}"]
        if self.gradient_accumulation > 1:
            parts.append(f"gradient_accumulation {self.gradient_accumulation}")
        if self.gradient_checkpointing:
            parts.append("gradient_checkpointing")
        return ", ".join(parts)


def parse_memory(text: str) -> float:
    """'16GB', '800 MB', '1.5g' -> megabytes."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower().removesuffix("ib") if match else ""
    unit = {"": "mb", "gi": "g", "mi": "m"}.get(unit, unit)
    if not match or unit not in _UNITS or match.group(1).count(".") > 1:
        raise UserError(f"--memory-budget {text!r}: write a size such as 16GB or 800MB")
    megabytes = float(match.group(1)) * _UNITS[unit]
    if megabytes <= 0:
        raise UserError(f"--memory-budget {text!r}: a budget must be above zero, e.g. 16GB")
    return megabytes


def parse_duration(text: str, option: str = "--time-budget") -> float:
    """'2h', '90m', '45s', '1h30m' -> seconds; errors name `option`."""
    parts = re.findall(r"([\d.]+)\s*([a-zA-Z]*)", text)
    if not parts or re.sub(r"[\d.\sa-zA-Z]", "", text):
        raise UserError(f"{option} {text!r}: write a duration such as 2h, 90m or 1h30m")
    total = 0.0
    for number, unit in parts:
        unit = unit.lower() or "s"
        if unit not in _TIME_UNITS:
            raise UserError(f"{option} {text!r}: unknown unit {unit!r}; use s, m or h")
        if number.count(".") > 1 or number == ".":
            raise UserError(f"{option} {text!r}: write a duration such as 2h, 90m or 1h30m")
        total += float(number) * _TIME_UNITS[unit]
    if total <= 0:
        raise UserError(f"{option} {text!r}: a budget must be above zero, e.g. 30m")
    return total


def default_memory_budget(device: str) -> float:
    """What is free now: available RAM on a CPU, the device's memory on a GPU."""
    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory / MB
    import psutil

    return psutil.virtual_memory().available / MB


def options(result: Estimate, item: MethodEstimate) -> list[Option]:
    """The method at the recipe's batch, then at halved batches (accumulation keeps the
    effective batch), each without and with gradient checkpointing."""
    if item.memory is None:
        return []
    batch = result.recipe.train.batch_size
    accumulation = result.recipe.train.gradient_accumulation
    slack = CUDA_WORKSPACE if result.costs.device == "cuda" else CPU_SLACK
    calibration = result.calibration.get("memory", 1.0)
    per_example = (item.memory.activations_mb + item.memory.backward_mb) * slack * calibration
    per_example /= batch
    found = []
    size = batch
    while size >= 1:
        shrink = per_example * (batch - size)
        steps = accumulation * batch // size
        plain = Option(item.method, size, steps, False, item.peak_mb - shrink, item.total_seconds)
        found.append(plain)
        if item.checkpointing_peak_mb is not None:
            kept = per_example * CHECKPOINTING_ACTIVATIONS * (batch - size)
            slower = item.total_seconds * CHECKPOINTING_TIME if item.total_seconds else None
            found.append(
                Option(item.method, size, steps, True, item.checkpointing_peak_mb - kept, slower)
            )
        if size == 1:
            break
        size //= 2
    return found


def fits(option: Option, memory_mb: float, time_s: float | None) -> bool:
    slow = time_s is not None and option.total_seconds is not None
    return option.peak_mb <= memory_mb and not (slow and option.total_seconds > time_s)


def judge(result: Estimate, memory_mb: float, time_s: float | None) -> Option | None:
    """Set each method's verdict; return the recommended option (None: nothing fits)."""
    chosen: Option | None = None
    own = result.recipe.method.name
    preference = [*PREFERENCE, *[m.method for m in result.methods if m.method not in PREFERENCE]]
    order = [own, *[m for m in preference if m != own]]
    if own == "full" and forgetting_matters(result.recipe):
        order = preference  # adapters leave the pre-trained weights as they were
    by_name = {m.method: m for m in result.methods}
    for name in order:
        item = by_name.get(name)
        if item is None:
            continue
        if item.not_applicable:
            item.verdict = f"not applicable: {item.not_applicable}"
            continue
        candidates = options(result, item)
        good = [o for o in candidates if fits(o, memory_mb, time_s)]
        first = candidates[0]
        if good and good[0] is first:
            item.verdict = "fits"
        elif good and good[0].batch_size == first.batch_size:
            item.verdict = "fits with gradient checkpointing"
        elif good:
            item.verdict = f"fits at {good[0].describe().split(', ', 1)[1]}"
        elif first.peak_mb > memory_mb:
            smallest = min(o.peak_mb for o in candidates)
            item.verdict = f"does not fit: needs {_size(smallest)} at the least"
        else:
            item.verdict = f"too slow: about {_duration(first.total_seconds or 0)}"
        if good and chosen is None:
            chosen = good[0]
    return chosen


def forgetting_matters(recipe: Any) -> bool:
    """The recipe stops or rolls back on forgetting: it cares more about keeping the
    pre-trained model's knowledge than about the last point of the task score."""
    guard = recipe.guards.forgetting
    return guard is not None and bool(guard.reference) and guard.action != "warn"


def nothing_fits_message(result: Estimate, memory_mb: float, time_s: float | None) -> str:
    every = [o for m in result.methods for o in options(result, m)]
    if not every:
        return "no method applies to this model and task"
    smallest = min(every, key=lambda o: o.peak_mb)
    fastest = min(every, key=lambda o: o.total_seconds or 0)
    parts = [f"no method fits the budget of {_size(memory_mb)}"]
    if time_s is not None:
        parts[0] += f" and {_duration(time_s)}"
    parts.append(f"the smallest option is {smallest.describe()} at {_size(smallest.peak_mb)}")
    if time_s is not None and fastest.total_seconds:
        parts.append(f"the fastest takes about {_duration(fastest.total_seconds)}")
    length = result.recipe.preprocess.max_length
    hint = "raise the budget"
    if length:
        hint += f", shorten preprocess.max_length (now {length})"
    hint += ", train fewer epochs (train.epochs / train.max_steps) or choose a smaller model"
    return "; ".join(parts) + f". To fit: {hint}"


def _size(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"
