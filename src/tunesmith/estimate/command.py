"""`tunesmith estimate`: print the estimate, the verdicts and the recommendation."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from tunesmith.errors import GateFailed
from tunesmith.estimate import Estimate, compare_models, estimate
from tunesmith.estimate.recommend import (
    _duration,
    _size,
    default_memory_budget,
    forgetting_matters,
    judge,
    nothing_fits_message,
    parse_duration,
    parse_memory,
)
from tunesmith.recipe import Recipe


def run_estimate(
    recipe: Recipe,
    console: Console,
    memory_budget: str | None,
    time_budget: str | None,
    device: str | None,
    dry_run: bool,
    models: list[str],
    as_json: bool,
) -> None:
    memory_mb = parse_memory(memory_budget) if memory_budget is not None else None
    time_s = parse_duration(time_budget) if time_budget is not None else None
    quiet = Console(quiet=True) if as_json else console
    result = estimate(recipe, quiet, device, dry_run)
    budget = memory_mb if memory_mb is not None else default_memory_budget(result.costs.device)
    chosen = judge(result, budget, time_s)
    comparisons = compare_models(recipe, models, quiet, device) if models else []
    if as_json:
        print(json.dumps(to_json(result, budget, time_s, chosen, comparisons), indent=2))
    else:
        show(result, console, budget, memory_budget is None, time_s, chosen, comparisons)
    if chosen is None:
        raise GateFailed(nothing_fits_message(result, budget, time_s))


def show(
    result: Estimate,
    console: Console,
    budget: float,
    free: bool,
    time_s: float | None,
    chosen: Any,
    comparisons: list,
) -> None:
    costs, recipe = result.costs, result.recipe
    console.print(
        f"{recipe.model} · {recipe.task} · batch {costs.batch_size} · "
        f"{costs.steps_per_epoch} steps/epoch x {costs.epochs:g} epochs · {costs.device}, "
        f"{'bf16' if costs.bf16 else 'fp32'} · budget {_size(budget)}"
        + (" (free now)" if free else "")
        + (f", {_duration(time_s)}" if time_s else "")
    )
    peak = "peak (RSS)" if costs.device == "cpu" else "peak (CUDA)"
    other = "on CUDA" if costs.device == "cpu" else "CPU RSS"
    table = Table(title="Every method on this recipe's data")
    columns = (
        "method",
        "trainable",
        peak,
        "with checkpointing",
        other,
        "s/epoch",
        "run",
        "verdict",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("method", "verdict") else "right")
    for item in result.methods:
        if item.memory is None:
            table.add_row(item.method, "-", "-", "-", "-", "-", "-", item.verdict)
            continue
        table.add_row(
            item.method + (" (recipe)" if item.method == recipe.method.name else ""),
            f"{item.trainable_params:,}",
            _size(item.memory.peak_mb),
            _size(item.checkpointing_peak_mb) if item.checkpointing_peak_mb else "-",
            _size(item.other_device_peak_mb) if item.other_device_peak_mb else "-",
            f"{item.seconds_per_epoch:.1f}" if item.seconds_per_epoch else "-",
            _duration(item.total_seconds) if item.total_seconds else "-",
            item.verdict,
        )
    console.print(table)
    own = result.method(recipe.method.name)
    if own.memory:
        parts = own.memory.to_dict()
        console.print(
            f"{own.method}: {own.total_params:,} parameters, {own.trainable_params:,} trained. "
            "Memory: "
            + ", ".join(
                f"{key.removesuffix('_mb')} {_size(value)}"
                for key, value in parts.items()
                if key != "peak_mb" and value >= 0.5
            )
            + f" -> peak {_size(parts['peak_mb'])}"
        )
    if result.measured:
        measured = result.measured
        scale = result.calibration
        console.print(
            f"Dry run ({measured['timed_steps']} timed steps): peak "
            f"{_size(measured['peak_memory_mb'])}, "
            f"{measured['seconds_per_epoch']:.1f} s per epoch, {measured['eval_seconds']:.1f} s "
            f"per evaluation; the analytic model was scaled by {scale.get('memory', 1):.2f} "
            f"(memory) and {scale.get('time', 1):.2f} (time) for every method"
        )
    else:
        console.print("[dim]Analytic estimate (no dry run): memory within about 35%")
    if comparisons:
        models = Table(title=f"Candidate models with {recipe.method.name}")
        for column in ("model", "parameters", "trainable", peak, "s/epoch"):
            models.add_column(column, justify="left" if column == "model" else "right")
        for model, item in comparisons:
            if isinstance(item, str):
                models.add_row(model, "-", "-", "-", item)
            else:
                models.add_row(
                    model,
                    f"{item.total_params:,}",
                    f"{item.trainable_params:,}",
                    _size(item.peak_mb or 0),
                    f"{item.seconds_per_epoch:.1f}" if item.seconds_per_epoch else "-",
                )
        console.print(models)
    if chosen is not None:
        same = chosen.method == recipe.method.name
        keeps = same and chosen.batch_size == recipe.train.batch_size
        keeps = keeps and not chosen.gradient_checkpointing
        why = "the recipe fits as it is" if keeps else _why_not(result, budget, time_s)
        console.print(
            f"[bold]Recommended:[/] {chosen.describe()}, {'bf16' if result.costs.bf16 else 'fp32'}"
            f" (peak {_size(chosen.peak_mb)}"
            + (f", about {_duration(chosen.total_seconds)}" if chosen.total_seconds else "")
            + f"): {why}"
        )


def _why_not(result: Estimate, budget: float, time_s: float | None) -> str:
    recipe = result.recipe
    own = result.method(recipe.method.name)
    if own.memory is not None and forgetting_matters(recipe) and own.method == "full":
        return (
            "guards.forgetting stops or rolls back on forgetting, and an adapter leaves the "
            "pre-trained weights as they were"
        )
    if own.memory is None:
        return f"{own.method} does not apply here ({own.not_applicable})"
    written = f"{own.method} at batch_size {recipe.train.batch_size}"
    if own.memory.peak_mb > budget:
        return f"{written} needs {_size(own.memory.peak_mb)}, over the {_size(budget)} budget"
    return (
        f"{written} takes about {_duration(own.total_seconds or 0)}, over {_duration(time_s or 0)}"
    )


def to_json(
    result: Estimate, budget: float, time_s: float | None, chosen: Any, comparisons: list
) -> dict[str, Any]:
    return {
        "predicted": result.predicted(),
        "measured": result.measured,
        "calibration": result.calibration,
        "budget": {"memory_mb": round(budget, 1), "seconds": time_s},
        "methods": [
            {
                "method": m.method,
                "total_params": m.total_params,
                "trainable_params": m.trainable_params,
                "memory": m.memory.to_dict() if m.memory else None,
                "checkpointing_peak_mb": m.checkpointing_peak_mb,
                "other_device_peak_mb": m.other_device_peak_mb,
                "seconds_per_epoch": m.seconds_per_epoch,
                "total_seconds": m.total_seconds,
                "verdict": m.verdict,
            }
            for m in result.methods
        ],
        "recommendation": None
        if chosen is None
        else {
            "method": chosen.method,
            "batch_size": chosen.batch_size,
            "gradient_accumulation": chosen.gradient_accumulation,
            "gradient_checkpointing": chosen.gradient_checkpointing,
            "peak_memory_mb": round(chosen.peak_mb, 1),
            "total_seconds": chosen.total_seconds,
        },
        "models": [
            {"model": model, "error": item}
            if isinstance(item, str)
            else {
                "model": model,
                "peak_memory_mb": item.peak_mb,
                "seconds_per_epoch": item.seconds_per_epoch,
                "total_params": item.total_params,
            }
            for model, item in comparisons
        ],
    }
