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
from tunesmith.progress import TABLE_WIDTH, short_model_name
from tunesmith.recipe import Recipe
from tunesmith.train.forgetting_risk import recipe_forgetting_risk


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
        f"{short_model_name(recipe.model)} · {recipe.task} · batch {costs.batch_size} · "
        f"{costs.steps_per_epoch} steps/epoch x {costs.epochs:g} epochs · {costs.device}, "
        f"{'bf16' if costs.bf16 else 'fp32'} · budget {_size(budget)}"
        + (" (free now)" if free else "")
        + (f", {_duration(time_s)}" if time_s else ""),
        highlight=False,
    )
    console.print(methods_table(result), width=min(console.width, TABLE_WIDTH))
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
        console.print(models_table(recipe, comparisons, result.costs.device))
        for model, item in comparisons:  # whole, below the table: a path must not fold
            if isinstance(item, str):
                console.print(f"{model}: {item}", highlight=False, markup=False)
    risk = recipe_forgetting_risk(recipe, costs.examples_per_epoch, costs.epochs)
    if risk:
        console.print(risk, style="yellow", highlight=False, markup=False)
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


def _checkpointing_helps(item: Any) -> bool:
    """Whether gradient checkpointing saves a noticeable share (5%) of this method's peak."""
    saved = item.checkpointing_peak_mb
    return bool(item.memory and saved and saved < 0.95 * item.memory.peak_mb)


def methods_table(result: Estimate) -> Table:
    """Every method's cost, readable at 80 columns: numbers never wrap, the verdict wraps at
    words; a column that would say nothing (checkpointing saving no memory) is left out."""
    peak = "peak (RSS)" if result.costs.device == "cpu" else "peak (CUDA)"
    checkpointing = any(_checkpointing_helps(item) for item in result.methods)
    table = Table(
        title="Every method on this recipe's data",
        caption="* the recipe's method",
        caption_justify="left",
    )
    table.add_column("method", no_wrap=True)
    for column in ("trained", peak, *(["checkpointed"] if checkpointing else []), "s/epoch"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("run", justify="right", no_wrap=True)
    table.add_column("verdict", overflow="fold", min_width=16)
    for item in result.methods:
        name = item.method + (" *" if item.method == result.recipe.method.name else "")
        if item.memory is None:
            table.add_row(name, *["-"] * (5 if checkpointing else 4), item.verdict)
            continue
        saved = item.checkpointing_peak_mb
        table.add_row(
            name,
            _count(item.trainable_params),
            _size(item.memory.peak_mb),
            *([_size(saved) if _checkpointing_helps(item) else "-"] if checkpointing else []),
            f"{item.seconds_per_epoch:.1f}" if item.seconds_per_epoch else "-",
            _duration(item.total_seconds) if item.total_seconds else "-",
            item.verdict,
        )
    return table


def models_table(recipe: Recipe, comparisons: list, device: str) -> Table:
    """The recipe's method on each candidate model; one that cannot be estimated reads as
    dashes (why is printed below the table)."""
    table = Table(title=f"Candidate models with {recipe.method.name}")
    table.add_column("model", overflow="fold", min_width=12)
    peak = "peak (RSS)" if device == "cpu" else "peak (CUDA)"
    for column in ("parameters", "trainable", peak, "s/epoch"):
        table.add_column(column, justify="right", no_wrap=True)
    for model, item in comparisons:
        if isinstance(item, str):
            table.add_row(short_model_name(model), "-", "-", "-", "-")
            continue
        table.add_row(
            short_model_name(model),
            _count(item.total_params),
            _count(item.trainable_params),
            _size(item.peak_mb or 0),
            f"{item.seconds_per_epoch:.1f}" if item.seconds_per_epoch else "-",
        )
    return table


def _count(value: int) -> str:
    """Parameters in K/M/B: '4.7K' reads faster than '4,739' in a narrow column."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= size:
            digits = 1 if value < 100 * size else 0
            return f"{value / size:.{digits}f}{suffix}"
    return str(value)


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
