"""Pre-flight estimate: memory and time of a recipe for every method that fits its task,
before a single training step; a dry run of the recipe's own method calibrates it; the
recommendation picks what fits the budgets.

recipe -> data + model (loaded once) -> per method: parameters, profiled activations and
multiply-adds (profile.py) -> memory breakdown and time (memory.py) -> dry run (dry_run.py)
-> verdicts and recommendation (recommend.py)."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console

from tunesmith.errors import UserError
from tunesmith.estimate.memory import (
    CHECKPOINTING_TIME,
    ELEMENTWISE_PASSES,
    MATMUL_EFFICIENCY,
    MODULE_CALL_SECONDS,
    OPTIMIZER_SECONDS_PER_PARAMETER,
    RUN_GROWTH,
    STEP_OVERHEAD_SECONDS,
    MemoryBreakdown,
    TimeBreakdown,
    activation_scale,
    current_rss_mb,
    matmul_flops_per_second,
    memory_breakdown,
    memory_bytes_per_second,
    parameter_bytes,
)
from tunesmith.estimate.profile import ForwardProfile, profile_examples
from tunesmith.method_registry import method_names
from tunesmith.recipe import Recipe, load_recipe


@dataclass
class MethodEstimate:
    method: str
    total_params: int = 0
    trainable_params: int = 0
    memory: MemoryBreakdown | None = None
    checkpointing_peak_mb: float | None = None
    """Peak with train.gradient_checkpointing (None: the model does not support it)."""
    other_device_peak_mb: float | None = None
    """The analytic peak on the other kind of device (CUDA when estimating for a CPU, the
    process RSS when estimating for CUDA)."""
    seconds_per_epoch: float | None = None
    """Training steps of one epoch (evaluations not included)."""
    time: TimeBreakdown | None = None
    """The analytic seconds_per_epoch by what bounds it (before a dry run calibrates it)."""
    total_seconds: float | None = None
    """The whole run: every planned step plus every evaluation of the validation split."""
    not_applicable: str | None = None
    verdict: str = ""

    @property
    def peak_mb(self) -> float | None:
        return self.memory.peak_mb if self.memory else None


@dataclass
class Costs:
    """What does not depend on the method: the data's shape and the device's speed."""

    device: str
    bf16: bool
    batch_size: int
    steps_per_epoch: int
    epochs: float
    evaluations: int
    epoch_cost: float
    """Sum over an epoch's batches of examples x longest length (tokens with padding)."""
    validation_cost: float
    flops_per_second: float | None
    runtime_mb: float
    bytes_per_second: float | None = None
    """Measured element-wise memory speed (None where time is not estimated)."""
    examples_per_epoch: int = 0
    batches_per_epoch: int = 0
    validation_examples: int = 0
    input_seconds_per_example: float = 0.0
    """Measured cost of making a batch, per example (reading images, collating)."""


@dataclass
class Estimate:
    recipe: Recipe
    costs: Costs
    methods: list[MethodEstimate]
    measured: dict[str, Any] | None = None
    """The dry run's measurements of the recipe's method (None: --no-dry-run)."""
    analytic: dict[str, Any] = field(default_factory=dict)
    """The recipe method's prediction before the dry run calibrated it."""
    calibration: dict[str, float] = field(default_factory=dict)

    def method(self, name: str) -> MethodEstimate:
        return next(m for m in self.methods if m.method == name)

    def predicted(self) -> dict[str, Any]:
        """estimate.json's `predicted`: the recipe's method."""
        own = self.method(self.recipe.method.name)
        return {
            "method": own.method,
            "device": self.costs.device,
            "precision": "bf16" if self.costs.bf16 else "fp32",
            "peak_memory_mb": round(own.peak_mb or 0.0, 1),
            "seconds_per_epoch": _round(own.seconds_per_epoch),
            "total_seconds": _round(own.total_seconds),
            "total_params": own.total_params,
            "trainable_params": own.trainable_params,
            "memory": own.memory.to_dict() if own.memory else {},
            "time": own.time.to_dict() if own.time else {},
            "checkpointing_peak_mb": _round(own.checkpointing_peak_mb),
            "cpu_peak_mb" if self.costs.device == "cuda" else "cuda_peak_mb": _round(
                own.other_device_peak_mb
            ),
            "calibrated_by_dry_run": bool(self.calibration),
            "analytic": self.analytic or None,
        }


def estimate(
    recipe: Recipe,
    console: Console | None = None,
    device: str | None = None,
    dry_run: bool = True,
    methods: list[str] | None = None,
) -> Estimate:
    """Estimate the recipe's cost for its method and every other method that fits its task
    (or `methods`), on `device` (default: the recipe's)."""
    from tunesmith.estimate.dry_run import run_dry_run
    from tunesmith.tasks.family import prepare
    from tunesmith.train.device import resolve_device, resolve_precision

    console = console or Console()
    target = device or recipe.train.device
    if target == "cuda" and not torch.cuda.is_available() and dry_run:
        console.print("[yellow]No CUDA device here: the CUDA estimate is analytic (no dry run)")
        dry_run = False
    here = resolve_device("cpu" if target == "cuda" and not torch.cuda.is_available() else target)
    kind = "cuda" if target == "cuda" else here.type
    dtype = resolve_precision(recipe.train.precision, here)
    import tunesmith.train.loop  # noqa: F401  (what `train` imports counts in its memory)
    from tunesmith.models.resolve import resolve_model
    from tunesmith.preflight import check_max_length

    runtime_mb = current_rss_mb()
    check_max_length(recipe, resolve_model(recipe.model))  # as train would refuse it
    console.print(f"Loading {recipe.model} and the data ...")
    family = prepare(recipe, here, None, Console(quiet=True))
    costs = _costs(recipe, family.task, kind, dtype is not None, runtime_mb, here)
    names = _method_names(recipe, methods)
    results = [_estimate_method(recipe, name, family, costs) for name in names]
    result = Estimate(recipe, costs, results)
    if dry_run:
        console.print(f"Dry run: a few real steps of {recipe.method.name} ...")
        result.measured = run_dry_run(recipe)
        _calibrate(result)
    return result


def compare_models(
    recipe: Recipe, models: list[str], console: Console, device: str | None = None
) -> list[tuple[str, MethodEstimate | str]]:
    """The recipe's method on each candidate model (analytic): (model, estimate or why not)."""
    rows: list[tuple[str, MethodEstimate | str]] = []
    for model in models:
        try:
            candidate = _with(recipe, model=model)
            found = estimate(
                candidate, Console(quiet=True), device, dry_run=False, methods=[recipe.method.name]
            )
            rows.append((model, found.methods[0]))
        except UserError as error:
            rows.append((model, str(error)))
    return rows


def predict_run(
    recipe: Recipe,
    model: torch.nn.Module,
    task: Any,
    device: torch.device,
    bf16: bool,
    runtime_mb: float,
) -> dict[str, Any]:
    """The analytic prediction for `train`'s estimate.json (the method already applied)."""
    costs = _costs(recipe, task, device.type, bf16, runtime_mb, device)
    result = _measure_method(recipe.method.name, model, task, recipe, costs)
    return Estimate(recipe, costs, [result]).predicted()


# --- per method -------------------------------------------------------------------------


def _method_names(recipe: Recipe, methods: list[str] | None) -> list[str]:
    from tunesmith.tasks.registry import get_task

    fitting = get_task(recipe.task).methods
    known = method_names()
    names = methods or [name for name in known if name in fitting]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"estimate: unknown method(s) {', '.join(unknown)}; use {', '.join(known)}")
    own = recipe.method.name
    return [own, *[n for n in names if n != own]]


def _estimate_method(recipe: Recipe, name: str, family: Any, costs: Costs) -> MethodEstimate:
    from tunesmith.methods import get_method

    config = recipe.method
    if name != recipe.method.name:
        try:
            config = _with(recipe, method={"name": name}).method
        except UserError as error:
            return MethodEstimate(name, not_applicable=str(error))
    method = get_method(name)
    try:
        model = method.apply(copy.deepcopy(family.model), config)
    except Exception as error:  # peft refuses some architectures, each in its own way
        return MethodEstimate(name, not_applicable=_reason(error))
    from tunesmith.train.setup import set_up_fast_paths

    set_up_fast_paths(model, recipe, method, torch.bfloat16 if costs.bf16 else None)  # as train
    try:
        return _measure_method(name, model, family.task, recipe, costs)
    except (ValueError, RuntimeError, TypeError, KeyError) as error:  # fails in forward
        return MethodEstimate(name, not_applicable=_reason(error))
    finally:
        del model


def _measure_method(
    name: str, model: torch.nn.Module, task: Any, recipe: Recipe, costs: Costs
) -> MethodEstimate:
    lengths = np.asarray(task.lengths("train"))
    order = np.argsort(-lengths, kind="stable")
    longest = [int(i) for i in order[:2]]
    one = task.batch("train", longest[:1])
    two = task.batch("train", longest if len(longest) == 2 else longest * 2)
    profile = profile_examples(model, task, one, two)
    total, trainable, _, _ = parameter_bytes(model)
    arguments = (model, profile, costs.batch_size, costs.device, costs.runtime_mb, costs.bf16)
    memory = memory_breakdown(*arguments, recipe.train.gradient_checkpointing)
    other = "cpu" if costs.device == "cuda" else "cuda"
    other_peak = memory_breakdown(
        model, profile, costs.batch_size, other, costs.runtime_mb, costs.bf16,
        recipe.train.gradient_checkpointing,
    ).peak_mb  # fmt: skip
    checkpointing = None
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(inner, "supports_gradient_checkpointing", False):
        checkpointing = memory_breakdown(*arguments, True).peak_mb
    epoch, total_seconds = _seconds(profile, costs, recipe.train.gradient_checkpointing, trainable)
    return MethodEstimate(
        method=name,
        total_params=total,
        trainable_params=trainable,
        memory=memory,
        checkpointing_peak_mb=checkpointing,
        other_device_peak_mb=other_peak,
        seconds_per_epoch=epoch.total if epoch else None,
        time=epoch,
        total_seconds=total_seconds,
    )


def _seconds(
    profile: ForwardProfile, costs: Costs, checkpointing: bool, trainable: int
) -> tuple[TimeBreakdown | None, float | None]:
    """One epoch's steps by what bounds them, and the whole run (every epoch and every
    evaluation of the validation split)."""
    if not costs.flops_per_second or not costs.bytes_per_second:
        return None, None
    precision = "bf16" if costs.bf16 else "fp32"
    products = costs.flops_per_second * MATMUL_EFFICIENCY[precision]
    tokens = max(profile.tokens, 1)
    saved = profile.activation_bytes / tokens  # per token (per image) of the longest example
    saved *= activation_scale(profile, costs.bf16)
    repeat = CHECKPOINTING_TIME if checkpointing else 1.0
    epoch = TimeBreakdown(
        matmul_seconds=profile.train_flops / tokens / products * costs.epoch_cost * repeat,
        memory_seconds=ELEMENTWISE_PASSES * saved / costs.bytes_per_second * costs.epoch_cost
        * repeat,
        input_seconds=costs.input_seconds_per_example * costs.examples_per_epoch,
        overhead_seconds=profile.module_calls
        * MODULE_CALL_SECONDS[precision]
        * costs.batches_per_epoch,
        step_seconds=(STEP_OVERHEAD_SECONDS + OPTIMIZER_SECONDS_PER_PARAMETER * trainable)
        * costs.steps_per_epoch,
    )  # fmt: skip
    evaluation = (
        profile.forward_flops / tokens / products * costs.validation_cost
        + saved / costs.bytes_per_second * costs.validation_cost
        + costs.input_seconds_per_example * costs.validation_examples
    )
    return epoch, epoch.total * costs.epochs + evaluation * costs.evaluations


def input_seconds_per_example(task: Any, batch_size: int) -> float:
    """What making a batch costs per example, timed on validation examples (no
    augmentation, so the training's random state is untouched); 0 without any."""
    count = min(batch_size, len(task.lengths("validation")))
    if count == 0:
        return 0.0
    indices = list(range(count))
    task.batch("validation", indices)  # the first one warms caches up
    began = time.perf_counter()
    task.batch("validation", indices)
    return (time.perf_counter() - began) / count


def _costs(
    recipe: Recipe, task: Any, kind: str, bf16: bool, runtime_mb: float, here: torch.device
) -> Costs:
    from tunesmith.train.batching import length_grouped_batches, sorted_batches
    from tunesmith.train.loop import plan_steps

    config = recipe.train
    lengths = np.asarray(task.lengths("train"))
    batches = length_grouped_batches(lengths.tolist(), config.batch_size, config.seed, 0)
    plan = plan_steps(len(batches), config)
    validation = np.asarray(task.lengths("validation"))
    eval_size = task.eval_batch_size  # the task's own rule, so the estimate cannot drift from it
    speed = bandwidth = None
    input_seconds = 0.0
    if here.type == kind:  # time is measured on the device itself, never guessed across
        speed = matmul_flops_per_second(here, bf16)
        bandwidth = memory_bytes_per_second(here)
        input_seconds = input_seconds_per_example(task, config.batch_size)
    return Costs(
        device=kind,
        bf16=bf16,
        batch_size=config.batch_size,
        steps_per_epoch=plan.steps_per_epoch,
        epochs=plan.total_steps / plan.steps_per_epoch,
        evaluations=math.ceil(plan.total_steps / plan.eval_every),
        epoch_cost=sum(batch_cost(lengths, b) for b in batches),
        validation_cost=sum(
            batch_cost(validation, b) for b in sorted_batches(validation.tolist(), eval_size)
        ),
        flops_per_second=speed,
        runtime_mb=runtime_mb,
        bytes_per_second=bandwidth,
        examples_per_epoch=len(lengths),
        batches_per_epoch=len(batches),
        validation_examples=len(validation),
        input_seconds_per_example=input_seconds,
    )


def batch_cost(lengths: np.ndarray, indices: list[int]) -> float:
    """What a micro-batch costs: its examples x its longest length (padding included)."""
    return float(len(indices) * lengths[indices].max()) if indices else 0.0


def _calibrate(result: Estimate) -> None:
    """Scale every method's prediction by how far the recipe method's analytic prediction
    was from its dry run (the same data, model and device)."""
    own = result.method(result.recipe.method.name)
    measured = result.measured or {}
    if own.memory is None:
        return
    result.analytic = {
        "peak_memory_mb": round(own.memory.peak_mb, 1),
        "seconds_per_epoch": _round(own.seconds_per_epoch),
    }
    growth = RUN_GROWTH if result.costs.device == "cpu" else 1.0
    memory = measured["peak_memory_mb"] * growth / own.memory.peak_mb
    result.calibration["memory"] = memory
    # a one-off warm-up (first allocations) spread over the planned epochs
    epoch = measured["seconds_per_epoch"] + measured.get("warmup_seconds", 0.0) / max(
        result.costs.epochs, 1e-9
    )
    if own.seconds_per_epoch:
        result.calibration["time"] = epoch / own.seconds_per_epoch
    for item in result.methods:
        if item.memory is None:
            continue
        item.memory.overhead_mb += item.memory.peak_mb * (memory - 1)
        item.memory.peak_mb *= memory
        if item.checkpointing_peak_mb:
            item.checkpointing_peak_mb *= memory
        if "time" in result.calibration and item.seconds_per_epoch:
            item.seconds_per_epoch *= result.calibration["time"]
            item.total_seconds = (item.total_seconds or 0) * result.calibration["time"]
    own.seconds_per_epoch = epoch
    own.total_seconds = (
        epoch * result.costs.epochs + measured["eval_seconds"] * result.costs.evaluations
    )


NOT_APPLICABLE = (
    ("past key values", "needs a key-value cache (decoders only)"),
    ("past_key_values", "needs a key-value cache (decoders only)"),
    ("target modules", "finds no layers to adapt in this model"),
    ("target_modules", "finds no layers to adapt in this model"),
    ("not supported", "does not support this model's architecture"),
)
"""Why a method does not apply, in words, by what the library's refusal says (first match);
the library's own text never reaches the table."""


def _reason(error: Exception) -> str:
    """A short human reason for a method that cannot be applied to (or run on) the model."""
    text = str(error).lower()
    return next(
        (reason for pattern, reason in NOT_APPLICABLE if pattern in text),
        "this model's architecture does not support it",
    )


def _with(recipe: Recipe, **changes: Any) -> Recipe:
    """The recipe with top-level sections replaced (validated again)."""
    return load_recipe({**yaml.safe_load(recipe.to_yaml()), **changes})


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
