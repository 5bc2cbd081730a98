"""The forgetting guard's rescue of a run that ended past its threshold: the interpolation
search of train/interpolation.py on the run's own measure and validation split, shown line
by line, and what it kept."""

from __future__ import annotations

from typing import Any

import torch
from rich.console import Console

from tunesmith.evaluate.forgetting import increase
from tunesmith.recipe import Recipe
from tunesmith.train.guards import ForgettingMonitor
from tunesmith.train.interpolation import Candidate, rescue_by_interpolation
from tunesmith.train.loop import FitResult


def rescue_forgetting(
    recipe: Recipe,
    model: torch.nn.Module,
    result: FitResult,
    forgetting: ForgettingMonitor,
    kept: dict | None,
    task: Any,
    held: tuple[str, ...],
    console: Console,
) -> tuple[dict | None, dict | None]:
    """The weights went past the threshold at the end: search the interpolation between the
    starting and those weights, keep the best under the threshold (train/interpolation.py).
    (metrics.json's forgetting.rescue, the kept weights' history line)."""
    names = {n for n, _ in model.named_parameters()}
    if not forgetting.start_state or not set(forgetting.crossed_state or {}) <= names:
        console.print("[yellow]Rescue: the weights were not kept whole (sharded): skipped")
        return None, kept
    stopping = recipe.train.early_stopping
    watched = stopping.metric if stopping and stopping.metric else "loss"
    name = forgetting.measure.name

    def measure(module: torch.nn.Module) -> tuple[float, float]:
        value = forgetting.measure(module)
        return value, increase(forgetting.measure, forgetting.before, value)

    def validate(module: torch.nn.Module) -> dict[str, float]:
        scores = task.evaluate(module, "validation")
        module.train()
        return scores

    def point(record: dict | None, coefficient: float | None, source: str) -> Candidate:
        if record is None:  # weights never evaluated as they are: measure them now
            value, change = measure(model)
            return Candidate(coefficient, value, change, validate(model), source)
        value = record.get(f"forgetting_{name}", float("nan"))
        validation = {k.removeprefix("val_"): v for k, v in record.items() if k.startswith("val_")}
        return Candidate(coefficient, value, record.get("forgetting_increase", float("nan")),
                         validation, source)  # fmt: skip

    def shown(candidate: Candidate) -> None:
        score = candidate.validation.get(watched, float("nan"))
        console.print(
            f"  coefficient {candidate.coefficient:.3f}: {name} {candidate.measure:.4g} "
            f"({candidate.increase:+.1%} against {forgetting.threshold:g}), validation "
            f"{watched} {score:.4f}",
            highlight=False,
        )

    rescued = rescue_by_interpolation(
        model,
        forgetting.start_state,
        forgetting.crossed_state or {},
        measure,
        validate,
        watched,
        forgetting.threshold,
        forgetting.config.rescue_steps,
        point(kept, None, "checkpoint"),
        point(result.last_record, 1.0, "interpolation"),
        held,
        on_point=shown,
    )
    chosen = rescued.chosen
    summary = rescued.summary(watched)
    if chosen is None:
        console.print("[yellow]Rescue: no weights under the threshold were found")
        return summary, kept
    if chosen.source == "checkpoint":
        console.print("Rescue: the best checkpoint under the threshold stays", highlight=False)
        return summary, kept
    console.print(
        f"Rescue: kept coefficient {chosen.coefficient:.3f} of the tuned change "
        f"({rescued.seconds:.1f} s)",
        highlight=False,
    )
    record = {f"val_{k}": v for k, v in chosen.validation.items()}
    return summary, record | {f"forgetting_{name}": chosen.measure}
