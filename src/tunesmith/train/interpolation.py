"""Weight interpolation between the starting and the tuned weights: the forgetting guard's
rescue (WiSE-FT, Wortsman et al. 2022).

Fine-tuning moves the weights from where they started (theta_0) to where the task wanted
them (theta_1); the weights theta_0 + a * (theta_1 - theta_0) trade the task's gain against
forgetting smoothly as `a` goes from 0 to 1. When the tuned weights forgot more than the
guard allows, a bisection on `a` finds the largest coefficient whose forgetting is under the
threshold in a handful of measurements, and the best of those candidates by validation score
is kept. For LoRA the coefficient scales the adapter (B moves, A is held: B @ A scales).
At a = 0 and a = 1 the weights are the starting and the tuned ones exactly (torch.lerp)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from tunesmith.evaluate.metrics import is_improvement

State = dict[str, torch.Tensor]
"""Trainable weights by parameter name."""


@torch.no_grad()
def interpolate(
    model: nn.Module, start: State, tuned: State, alpha: float, held: Sequence[str] = ()
) -> None:
    """Set the model's weights named in `tuned` to start + alpha * (tuned - start); a
    weight whose name contains one of `held` takes its tuned value."""
    for name, parameter in model.named_parameters():
        if name not in tuned:
            continue
        end = tuned[name].to(parameter.device, parameter.dtype)
        if any(part in name for part in held) or name not in start:
            parameter.copy_(end)
        else:
            origin = start[name].to(parameter.device, parameter.dtype)
            parameter.copy_(torch.lerp(origin, end, alpha))


def bisect_coefficient(
    forgetting: Callable[[float], float], threshold: float, steps: int
) -> list[tuple[float, float]]:
    """(coefficient, forgetting) of each of `steps` bisection points between 0 (under the
    threshold: the start) and 1 (over it: the tuned weights). Each point under the threshold
    moves the lower end up, each over it the upper end down; a measure that is not a number
    counts as over."""
    low, high = 0.0, 1.0
    measured = []
    for _ in range(steps):
        middle = (low + high) / 2
        value = forgetting(middle)
        measured.append((middle, value))
        if math.isfinite(value) and value <= threshold:
            low = middle
        else:
            high = middle
    return measured


@dataclass
class Candidate:
    coefficient: float | None
    """1: the tuned weights, 0: the starting ones; None: a checkpoint of the loop."""
    measure: float
    increase: float
    validation: dict[str, float]
    source: str = "interpolation"
    """interpolation, or checkpoint (the loop's kept weights)."""


@dataclass
class Rescue:
    """What the rescue tried and kept, for metrics.json (`forgetting.rescue`)."""

    candidates: list[Candidate] = field(default_factory=list)
    chosen: Candidate | None = None
    tuned: Candidate | None = None
    seconds: float = 0.0

    def summary(self, watched: str) -> dict:
        def row(candidate: Candidate | None) -> dict | None:
            if candidate is None:
                return None
            return {
                "source": candidate.source,
                "coefficient": candidate.coefficient,
                "measure": candidate.measure,
                "increase": candidate.increase,
                "validation": candidate.validation,
            }

        return {
            "method": "interpolation",
            "metric": watched,
            "chosen": row(self.chosen),
            "tuned": row(self.tuned),
            "candidates": [row(c) for c in self.candidates],
            "seconds": round(self.seconds, 2),
        }


def rescue_by_interpolation(
    model: nn.Module,
    start: State,
    tuned: State,
    measure: Callable[[nn.Module], tuple[float, float]],
    validate: Callable[[nn.Module], dict[str, float]],
    watched: str,
    threshold: float,
    steps: int,
    kept: Candidate,
    tuned_point: Candidate,
    held: Sequence[str] = (),
    on_point: Callable[[Candidate], None] | None = None,
) -> Rescue:
    """Search the coefficient between `start` and `tuned` (whose forgetting is over the
    threshold) and leave the model holding the best candidate under the threshold by
    validation `watched`: an interpolation or `kept`, the loop's kept weights (the model's
    weights on entry). `tuned_point`: what the loop measured of `tuned`. `measure` gives
    (measure, increase) of the model as it is."""
    began = time.perf_counter()
    kept_state = {n: p.detach().clone() for n, p in model.named_parameters() if n in tuned}
    rescue = Rescue(tuned=tuned_point)

    def at(alpha: float) -> float:
        interpolate(model, start, tuned, alpha, held)
        value, change = measure(model)
        point = Candidate(alpha, value, change, validate(model))
        rescue.candidates.append(point)
        if on_point is not None:
            on_point(point)
        return change

    bisect_coefficient(at, threshold, steps)
    under = [c for c in rescue.candidates if math.isfinite(c.increase) and c.increase <= threshold]
    best = kept if math.isfinite(kept.increase) and kept.increase <= threshold else None
    for candidate in under:
        if best is None or _better(candidate, best, watched):
            best = candidate
    rescue.chosen = best
    if best is None or best.source == "checkpoint":
        interpolate(model, start, kept_state, 1.0)
    else:
        interpolate(model, start, tuned, best.coefficient, held)
    rescue.seconds = time.perf_counter() - began
    return rescue


def _better(candidate: Candidate, than: Candidate, watched: str) -> bool:
    value, other = candidate.validation.get(watched), than.validation.get(watched)
    if value is None or not math.isfinite(value):
        return False
    return other is None or not math.isfinite(other) or is_improvement(watched, value, other)
