"""`tunesmith train`: recipe -> data -> model + method -> loop -> evaluation -> run folder.

Every input is read and validated before the run folder is created, so a bad file or a bad
setting leaves nothing behind.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tunesmith.data.quality import QualityReport, check_data, gate
from tunesmith.data.slices import check_slice_columns
from tunesmith.errors import GateFailed, UserError
from tunesmith.estimate.memory import current_rss_mb
from tunesmith.evaluate.slices import describe_slices, slice_metrics
from tunesmith.method_registry import Method
from tunesmith.methods import count_parameters, get_method
from tunesmith.models.resolve import resolve_model
from tunesmith.preflight import check_gradient_checkpointing, check_max_length, check_method_fits
from tunesmith.progress import phase, short_model_name
from tunesmith.recipe import Recipe, load_recipe
from tunesmith.run_folder import (
    OutputPlan,
    RunFolder,
    inputs_of,
    plan_output,
    same_recipe_changes,
)
from tunesmith.safe_files import fingerprint
from tunesmith.tasks.family import Family, prepare
from tunesmith.tasks.registry import get_task
from tunesmith.tracking import NO_TRACKING, Tracker, Tracking, plan_tracking
from tunesmith.train.allocator import keep_freed_memory
from tunesmith.train.checkpoint import has_checkpoint, refuse_pickled, trainable_state
from tunesmith.train.device import peak_memory_mb, resolve_device, resolve_precision
from tunesmith.train.distributed import Distributed
from tunesmith.train.guards import ForgettingMonitor, OverfittingMonitor, overfitting_risk
from tunesmith.train.loop import FitResult, fit
from tunesmith.train.rescue import rescue_forgetting
from tunesmith.train.setup import seed_everything, wrap_model


def prepare_output(recipe: Recipe, output: Path, resume: bool, overwrite: bool) -> OutputPlan:
    """Refuse to mix a new run into an old one, to write over an input, or to resume a run
    with another recipe; checked before any work is done, and nothing is changed."""
    plan = plan_output(output, resume=resume, overwrite=overwrite, inputs=inputs_of(recipe))
    if resume:
        check_resumable(recipe, RunFolder(output))
    return plan


RESUMABLE_CHANGES = frozenset(
    {"output_dir", "train.max_steps", "train.epochs", "train.keep_checkpoints"}
    | {"tracking", "tracking.backend", "tracking.uri", "tracking.experiment"}
    | {"report", "report.language", "report.price_per_hour", "report.currency"}
)
"""Keys --resume may change: where the run lives (a folder may be moved), how long it
trains (continue a run that stopped at max_steps for more steps), and where it is tracked
(the model is the same wherever it is recorded). Anything else would make the continued
run a different run."""


def check_resumable(recipe: Recipe, folder: RunFolder) -> None:
    """--resume continues the same run: a checkpoint, and the very recipe it was started with."""
    if not has_checkpoint(folder / RunFolder.CHECKPOINTS):
        raise UserError(
            f"--resume: {folder} has no checkpoint to resume from "
            "(checkpoints are removed after a finished run unless train.keep_checkpoints)"
        )
    try:
        saved = yaml.safe_load((folder / RunFolder.RECIPE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        saved = None
    if not isinstance(saved, dict):
        raise UserError(
            f"--resume: {folder / RunFolder.RECIPE} is missing or damaged; "
            "train again without --resume into a new folder"
        )
    refuse_pickled(folder / RunFolder.CHECKPOINTS)
    chosen = (saved.get("preprocess") or {}).get("max_length")
    if recipe.preprocess.max_length == "auto" and isinstance(chosen, int):
        recipe.preprocess.max_length = chosen  # the length auto chose when the run started
    current = yaml.safe_load(recipe.to_yaml())
    changed = [k for k in same_recipe_changes(saved, current) if k not in RESUMABLE_CHANGES]
    if changed:
        raise UserError(
            f"--resume: the recipe differs from the one {folder} was started with "
            f"({', '.join(changed[:8])}); resume with the same recipe and --set values, or "
            "train into a new folder"
        )


@dataclass
class SearchTrial:
    """How a trial of `tunesmith tune` differs from `train`. The search checked the data
    and scored the cheaper options once (on validation), so a trial does neither; it never
    reads a score off the test split and writes no report: the chosen trial is completed
    on test once the search ended (`complete_on_test`)."""

    on_evaluation: Callable[[dict], None] | None = None
    """Sees every evaluation's history line (the pruner; it may raise to end the trial)."""
    check_cost: Callable[[dict | None], None] | None = None
    """Sees the analytic estimate (estimate.json's `predicted`) before the first step; it
    raises to skip a trial that would not fit the budgets."""
    tracking: Tracking | None = None
    """Where the search records its trials (each a child of the search's run); None: the
    trial is not tracked, whatever its recipe says (the search decides)."""
    run_name: str | None = None
    """The trial's name in the tracker (trial-0003)."""
    tags: dict[str, str] = field(default_factory=dict)
    """More tags of the trial's tracked run (its number)."""
    stopped: tuple[type[BaseException], ...] = ()
    """Exceptions that stop a trial on purpose (pruned, skipped): its tracked run ends
    KILLED, not FAILED."""


def train(
    recipe: Recipe,
    output_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    console: Console | None = None,
    trial: SearchTrial | None = None,
    tracking_uri: str | None = None,
) -> dict:
    """Fine-tune as the recipe says and write the run folder; returns metrics.json's content.

    Started several times by `--nproc N` or torchrun, each process trains its share of every
    batch; process 0 alone checks the data, writes the run folder and prints, and the
    others return an empty dict. `trial`: a run inside `tunesmith tune` (see SearchTrial).
    `tracking_uri` (--tracking-uri): where the recipe's `tracking` records the run."""
    clock = PhaseClock()
    keep_freed_memory()  # the next step reuses this step's memory: no page faults
    device = resolve_device(recipe.train.device)
    cluster = Distributed.from_environment(recipe.train.distributed, device.type)
    try:
        return _train(
            recipe, output_dir, resume, overwrite, console, device, cluster, clock, trial,
            tracking_uri,
        )  # fmt: skip
    finally:
        cluster.close()


class PhaseClock:
    """Wall time of each phase of the whole command (what the user waits for, not only the
    training steps), for metrics.json's `phase_seconds` and the report's cost section."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self._last = self.started

    def lap(self, name: str) -> None:
        """The time since the previous lap (or the start) was spent in phase `name`."""
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._last, 3)
        self._last = now

    def total(self) -> float:
        return round(time.perf_counter() - self.started, 3)


def _train(
    recipe: Recipe,
    output_dir: str | Path | None,
    resume: bool,
    overwrite: bool,
    console: Console | None,
    device: torch.device,
    cluster: Distributed,
    clock: PhaseClock,
    trial: SearchTrial | None = None,
    tracking_uri: str | None = None,
) -> dict:
    main = cluster.is_main
    console = console if main and console is not None else Console(quiet=not main)
    output = Path(output_dir or recipe.output_dir or "runs/run")
    recipe.output_dir = str(output)
    plan = cluster.broadcast(
        cluster.on_main(lambda: prepare_output(recipe, output, resume, overwrite))
    )
    # the tracker is checked here, before any work (a search checked its own once)
    tracking = cluster.on_main(lambda: _tracking(recipe, tracking_uri, trial)) or Tracking()
    seed_everything(recipe.train.seed)
    if device.type == "cuda" and cluster.enabled:
        device = torch.device("cuda", cluster.local_rank)
        torch.cuda.set_device(device)
    if cluster.enabled:
        console.print(
            f"{cluster.world_size} processes ({recipe.train.distributed}); global batch "
            f"{recipe.train.batch_size}, about {recipe.train.batch_size / cluster.world_size:g} "
            "rows per process"
        )

    runtime_mb = current_rss_mb()
    check_max_length(recipe, resolve_model(recipe.model))
    check_slice_columns(recipe.data)
    fingerprints = data_fingerprints(recipe) if main else {}
    clock.lap("setup")
    quality = None
    if not resume and trial is None:  # process 0 checks; a failed gate stops every process
        with phase("Checking the data", console):
            quality = cluster.on_main(lambda: check_data_quality(recipe, console))
    clock.lap("data_check")
    seed_everything(recipe.train.seed)  # a fresh head draws the same with or without the check
    dtype = resolve_precision(recipe.train.precision, device)
    with phase("Loading the model and the data", console):
        family = prepare(recipe, device, dtype, console)
        method = get_method(recipe.method.name)
        family.adapt_to(method)
        check_gradient_checkpointing(recipe, family.model)
        check_method_fits(recipe, method, family.model, family.task)
    family.describe(console)
    precision = "bf16" if dtype is not None else "fp32"
    console.print(f"Model {recipe.model} on {device.type}, {precision}")
    clock.lap("load")

    # every check has passed: from here on a failure removes what this run created
    run = plan.create() if main else RunFolder(plan.work)
    tracker = NO_TRACKING
    try:
        if main:
            tracker = start_tracker(tracking, recipe, plan, run, console, trial)
        clock.lap("setup")
        with tracker.recording(trial.stopped if trial is not None else ()):
            return _fit_and_write(
                recipe, plan, run, family, method, quality, fingerprints, runtime_mb, console,
                device, dtype, cluster, clock, trial, tracker,
            )  # fmt: skip
    except KeyboardInterrupt:
        if main:
            _say_how_to_resume(recipe, plan, console)
        raise
    except (UserError, GateFailed):
        if main:
            plan.abandon()
        raise
    except BaseException:  # a bug: keep a checkpoint to resume from, else leave nothing
        if main and not has_checkpoint(run / RunFolder.CHECKPOINTS):
            plan.abandon()
        raise


def _tracking(recipe: Recipe, uri: str | None, trial: SearchTrial | None) -> Tracking:
    """Where this run is recorded, checked: a trial's comes from its search."""
    if trial is not None:
        return trial.tracking or Tracking()
    return plan_tracking(recipe.tracking, uri)


def start_tracker(
    tracking: Tracking,
    recipe: Recipe,
    plan: OutputPlan,
    run: RunFolder,
    console: Console,
    trial: SearchTrial | None,
) -> Tracker:
    """The run's tracker, started with the resolved recipe as its parameters (the recipe
    is complete here: preprocess.max_length auto has its number)."""
    name = (trial.run_name if trial is not None else None) or plan.final.name
    tracker = tracking.open(console, name, run.path)
    tags = {
        "tunesmith.command": "tune" if trial is not None else "train",
        "tunesmith.task": recipe.task,
        "tunesmith.method": recipe.method.name,
        "tunesmith.model": str(recipe.model),
        "tunesmith.run_folder": str(plan.final.absolute()),
        **(trial.tags if trial is not None else {}),
    }
    tracker.start(yaml.safe_load(recipe.to_yaml()), tags)
    return tracker


@dataclass
class RunContext:
    """What every phase of one training run shares."""

    recipe: Recipe
    plan: OutputPlan
    run: RunFolder
    family: Family
    method: Method
    console: Console
    device: torch.device
    dtype: torch.dtype | None
    cluster: Distributed
    clock: PhaseClock
    trial: SearchTrial | None = None
    tracker: Tracker = NO_TRACKING
    """Records the run (tracking.py): every history line, then the final metrics and files."""

    @property
    def main(self) -> bool:
        return self.cluster.is_main


def _fit_and_write(
    recipe: Recipe,
    plan: OutputPlan,
    run: RunFolder,
    family: Family,
    method: Method,
    quality: QualityReport | None,
    fingerprints: dict,
    runtime_mb: float,
    console: Console,
    device: torch.device,
    dtype: torch.dtype | None,
    cluster: Distributed,
    clock: PhaseClock,
    trial: SearchTrial | None = None,
    tracker: Tracker = NO_TRACKING,
) -> dict:
    """The phases after every check passed: score before, apply the method, fit, score
    after, write. Processes other than 0 train their share and return an empty dict."""
    ctx = RunContext(
        recipe, plan, run, family, method, console, device, dtype, cluster, clock, trial,
        tracker,
    )  # fmt: skip
    with phase("Scoring the cheaper options and the base model", console):
        before, forgetting = score_before(ctx)
    clock.lap("score_before")
    # the method's start and the loop draw from the same random state whether or not the
    # data check and the cheaper options ran before (a tune trial skips them): a trial and
    # `tunesmith train` of its recipe train the same model
    seed_everything(ctx.recipe.train.seed)
    model, head, template = apply_method(ctx, forgetting)
    predicted = start_run_files(ctx, model, quality, runtime_mb)
    clock.lap("setup")
    result, guards = fit_model(ctx, model, head, forgetting)
    clock.lap("training")
    if cluster.sharded:  # every process sends its shards; process 0 tests and saves
        weights = trainable_state(model)
        if ctx.main:
            model = method.apply(template, recipe.method)
            model.load_state_dict(weights, strict=False)
    if not ctx.main:
        return {}
    with phase("Scoring the fine-tuned model", console):
        metrics = score_after(ctx, model, result, guards, before)
    metrics["data_fingerprints"] = fingerprints
    clock.lap("score_after")
    return write_run(ctx, model, metrics, result, predicted)


def score_before(ctx: RunContext) -> tuple[dict, ForgettingMonitor | None]:
    """The cheaper contenders on the test split (process 0), the head's start (LP-FT) and
    the forgetting guard's measure of the pre-trained model."""
    contenders = ctx.main and ctx.trial is None  # a search scores them once, on validation
    before = ctx.family.score_before(ctx.console) if contenders else {}
    if ctx.main:
        ctx.family.init_head(ctx.console)
    # under FSDP every process takes part in measuring (each holds a shard of the model)
    measures = ctx.main or ctx.cluster.sharded
    forgetting = forgetting_monitor(ctx.recipe, ctx.family, ctx.console) if measures else None
    return before, forgetting


def apply_method(
    ctx: RunContext, forgetting: ForgettingMonitor | None
) -> tuple[torch.nn.Module, set[int], torch.nn.Module | None]:
    """(model with the method, head parameter ids, FSDP template)."""
    # FSDP shards the model in place: process 0 keeps the pre-trained one to rebuild it whole
    template = copy.deepcopy(ctx.family.model) if ctx.cluster.sharded and ctx.main else None
    wrapped = wrap_model(
        ctx.recipe, ctx.family, ctx.method, ctx.console, ctx.dtype, ctx.cluster.sharded
    )
    if forgetting is not None:
        forgetting.keep_start(wrapped.model)
    trainable, total = count_parameters(wrapped.model)
    ctx.console.print(
        f"Method {ctx.recipe.method.name}: {trainable:,} trainable of {total:,} parameters "
        f"({100 * trainable / total:.2f}%)"
    )
    warn_overfitting_risk(ctx.recipe, ctx.family.task, trainable, ctx.console)
    warn_forgetting_risk(ctx.recipe, ctx.family.task, ctx.console)
    return wrapped.model, wrapped.head, template


def start_run_files(
    ctx: RunContext, model: torch.nn.Module, quality: QualityReport | None, runtime_mb: float
) -> dict | None:
    """recipe.yaml, quality.json and the predicted half of estimate.json (process 0)."""
    if not ctx.main:
        return None
    if not ctx.plan.resume:  # a resumed run rewrites its files only once it finished
        ctx.run.write_text(RunFolder.RECIPE, ctx.recipe.to_yaml())
    if quality is not None:
        quality.write(ctx.run.path)
    predicted = predict_cost(
        ctx.recipe, model, ctx.family.task, ctx.device, ctx.dtype, runtime_mb, ctx.console
    )
    if not ctx.plan.resume:
        write_estimate(ctx.run, predicted, None)
    if ctx.trial is not None and ctx.trial.check_cost is not None:
        ctx.trial.check_cost(predicted)
    return predicted


def fit_model(
    ctx: RunContext, model: torch.nn.Module, head: set[int], forgetting: ForgettingMonitor | None
) -> tuple[FitResult, list]:
    recipe = ctx.recipe
    guards = [g for g in (forgetting, overfitting_monitor(recipe)) if g is not None]
    result = fit(
        model,
        ctx.family.task,
        recipe.train,
        recipe.learning_rate,
        ctx.device,
        ctx.dtype,
        ctx.run.path,
        resume=ctx.plan.resume,
        console=ctx.console,
        head=head,
        head_learning_rate=recipe.head_learning_rate,
        score_start=ctx.family.score_start,
        guards=guards,
        cluster=ctx.cluster,
        on_evaluation=ctx.trial.on_evaluation if ctx.trial is not None else None,
        on_record=lambda record: ctx.tracker.log_metrics(record, record["step"]),
    )
    ctx.console.print(result.stop_reason)
    return result, guards


def score_after(
    ctx: RunContext, model: torch.nn.Module, result: FitResult, guards: list, before: dict
) -> dict:
    """metrics.json's content: the tuned model on test and validation beside the contenders,
    the guards' verdicts and the cost."""
    recipe, family = ctx.recipe, ctx.family
    guard_results, kept = guard_summaries(
        recipe, model, result, guards, ctx.console, family.task, ctx.method.held_in_interpolation
    )
    searching = ctx.trial is not None  # a search never scores test (complete_on_test does)
    fine_tuned = None if searching else family.score_after(model)
    if kept is not None:  # the kept weights' own score, from their evaluation in the loop
        validation = {k.removeprefix("val_"): v for k, v in kept.items() if k.startswith("val_")}
    else:
        validation = family.task.evaluate(model, "validation")
    extra = {} if searching else family.finish(model, ctx.run.path)
    if not searching:
        extra |= per_slice(recipe, family, ctx.console)
    trainable, total = count_parameters(model)
    stopping = recipe.train.early_stopping
    metrics = {
        "task": recipe.task,
        "method": recipe.method.name,
        "model": recipe.model,
        **extra,
        "params": {"total": total, "trainable": trainable},
        "precision": "bf16" if ctx.dtype is not None else "fp32",
        "device": ctx.device.type,
        "learning_rate": recipe.learning_rate,
        "fine_tuned": fine_tuned,
        "validation": validation,
        **before,
        **guard_results,
        "train_seconds": round(result.train_seconds, 3),
        "samples_per_second": round(result.samples_per_second, 2),
        "tokens_per_second": round(result.tokens_per_second, 1),
        "peak_memory_mb": round(peak_memory_mb(ctx.device), 1),
        "steps": result.steps,
        "planned_epochs": planned_epochs(recipe, family.task),
        "best_step": result.best_step,
        "stopped_early": result.stopped_early,
        "stop_reason": result.stop_reason,
        "early_stopping_metric": stopping.metric if stopping else "loss",
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if fine_tuned is None:
        del metrics["fine_tuned"]
    return metrics


def per_slice(recipe: Recipe, family: Family, console: Console) -> dict:
    """metrics.json's `slices`, `slices_worst` and `slices_warnings` (data.slice_columns):
    the tuned model's test metrics per slice, from the kind's per-example results."""
    if not recipe.data.slice_columns:
        return {}
    found = slice_metrics(
        recipe.data, family.test_examples(), family.headline[0], recipe.train.seed
    )
    for line in describe_slices(found):
        console.print(line, highlight=False)
    return found


def guard_summaries(
    recipe: Recipe,
    model: torch.nn.Module,
    result: FitResult,
    guards: list,
    console: Console,
    task: Any,
    held: tuple[str, ...] = (),
) -> tuple[dict, dict | None]:
    """The guards' verdicts, and the history line of the kept weights (None when the
    weights changed after their last evaluation): what it measured is not measured again.
    A run the forgetting guard ended past its threshold is rescued first (`rescue`)."""
    summaries: dict = {}
    kept = result.kept_record
    forgetting = next((g for g in guards if isinstance(g, ForgettingMonitor)), None)
    if forgetting is not None:
        if forgetting.finish(model, result.restored_best):
            kept = None  # back to the starting weights
        rescue = None
        if forgetting.ended_past_threshold and forgetting.config.rescue == "interpolate":
            with phase("Rescue: interpolating between the starting and the tuned weights", console):
                rescue, kept = rescue_forgetting(
                    recipe, model, result, forgetting, kept, task, held, console
                )
        measured = (kept or {}).get(f"forgetting_{forgetting.measure.name}")
        # what was measured on: vision measures its own photos, whatever the recipe names
        measured_on = getattr(forgetting.measure, "reference", None)
        reference = measured_on or recipe.guards.forgetting.reference
        summaries["forgetting"] = forgetting.summary(model, reference, measured)
        summaries["forgetting"]["retries_used"] = result.retries_used
        if rescue is not None:
            summaries["forgetting"]["rescue"] = rescue
        console.print(describe_forgetting(summaries["forgetting"]))
    overfit = next((g for g in guards if isinstance(g, OverfittingMonitor)), None)
    if overfit is not None:
        summaries["overfitting"] = {
            "detected_at_step": overfit.detected_at,
            "patience": overfit.config.patience,
            "action": overfit.config.action,
        }
    return summaries, kept


def write_run(
    ctx: RunContext,
    model: torch.nn.Module,
    metrics: dict,
    result: FitResult,
    predicted: dict | None,
) -> dict:
    """The model, metrics.json, estimate.json and report.html; then the run takes its place
    (with --overwrite: replaces the old one only now)."""
    run, recipe, clock = ctx.run, ctx.recipe, ctx.clock
    ctx.family.save(model, run.path, ctx.method.saves_adapter)
    if ctx.plan.resume:  # the same recipe, but for how long it trained (RESUMABLE_CHANGES)
        run.write_text(RunFolder.RECIPE, recipe.to_yaml())
    clock.lap("save")
    measured = measured_cost(metrics, result, ctx.family.task, recipe)
    write_estimate(run, predicted, measured)
    warn_if_underestimated(predicted, measured, ctx.console)
    # the report renders from metrics.json: its own time is counted in what it shows last
    metrics["phase_seconds"] = dict(clock.seconds)
    metrics["wall_seconds"] = clock.total()
    run.write_json(RunFolder.METRICS, metrics)
    report = None
    if ctx.trial is None:  # a trial's report is written once it is chosen and tested
        with phase("Writing the report", ctx.console):
            report = _write_report(run.path, recipe.report.language)
    clock.lap("report")
    metrics["phase_seconds"] = dict(clock.seconds)
    metrics["wall_seconds"] = clock.total()
    run.write_json(RunFolder.METRICS, metrics)
    ctx.tracker.log_final(metrics, result.steps)
    ctx.tracker.log_artifacts(
        run / n for n in (RunFolder.RECIPE, RunFolder.METRICS, RunFolder.REPORT)
    )
    ctx.tracker.end()  # before the swap: TensorBoard's files are closed when they move
    final = ctx.plan.commit()
    if ctx.trial is None:
        print_comparison(ctx.console, metrics, ctx.family.headline)
        print_contenders(ctx.console, metrics)
    shown = f"\nReport: {final / RunFolder.REPORT}" if report else ""
    ctx.console.print(f"Run folder: {final}{shown}", highlight=False, markup=False)
    phases = ", ".join(f"{name} {sec:.1f} s" for name, sec in clock.seconds.items())
    ctx.console.print(f"Wall time {metrics['wall_seconds']:.1f} s ({phases})", highlight=False)
    where = ctx.tracker.where((run.path, final))
    if where:
        ctx.console.print(where, highlight=False, markup=False)
    return metrics


def complete_on_test(folder: Path, console: Console) -> dict:
    """The test half of a run a `tunesmith tune` trial trained (SearchTrial): the cheaper
    options and the tuned model scored once on test, metrics.json completed as `train`
    writes it, and the report; returns metrics.json's content."""
    run = RunFolder(folder)
    recipe = load_recipe(run / RunFolder.RECIPE)
    device = resolve_device(recipe.train.device)
    dtype = resolve_precision(recipe.train.precision, device)
    with phase("Loading the model and the data", console):
        family = prepare(recipe, device, dtype, console)
        trained = get_task(recipe.task).load_run(run.path, recipe, device)
    with phase("Scoring the cheaper options and the base model", console):
        before = family.score_before(console)
    with phase("Scoring the fine-tuned model", console):
        metrics = run.read_json(RunFolder.METRICS)
        metrics["fine_tuned"] = family.score_after(trained.model)
        metrics |= family.finish(trained.model, run.path) | before
        metrics |= per_slice(recipe, family, console)
    run.write_json(RunFolder.METRICS, metrics)
    with phase("Writing the report", console):
        _write_report(run.path, recipe.report.language)
    print_comparison(console, metrics, family.headline)
    print_contenders(console, metrics)
    return metrics


def data_fingerprints(recipe: Recipe) -> dict[str, dict]:
    """Each data file's path and SHA-256 as trained on: `eval` refuses to score a test split
    that changed since (the split would hold other rows without a word)."""
    files = {split: getattr(recipe.data, split) for split in ("train", "validation", "test")}
    return {
        split: {"path": str(path), "sha256": fingerprint(path)}
        for split, path in files.items()
        if path
    }


def _say_how_to_resume(recipe: Recipe, plan: OutputPlan, console: Console) -> None:
    if not has_checkpoint(plan.work / RunFolder.CHECKPOINTS):
        plan.abandon()
        console.print(
            "[yellow]Interrupted before the first checkpoint: nothing was kept"
            + (f"; {escape(str(plan.final))} still holds the previous run" if plan.staged else "")
        )
        return
    command = f"tunesmith train {recipe.source or 'RECIPE'} --output {plan.work} --resume"
    console.print(
        f"[yellow]Interrupted: the last checkpoint is in "
        f"{escape(str(plan.work / RunFolder.CHECKPOINTS))}; continue with: {escape(command)}"
        + (f" ({escape(str(plan.final))} still holds the previous run)" if plan.staged else ""),
        highlight=False,
    )


def check_data_quality(recipe: Recipe, console: Console) -> QualityReport | None:
    """The data-quality gate (guards.data_quality): error-level findings stop the run
    before any model is loaded for training, unless the recipe says warn."""
    mode = recipe.guards.data_quality
    if mode == "off":
        return None
    console.print("Checking the data (guards.data_quality) ...")
    report = check_data(recipe, console)
    report.print_brief(console)
    gate(report, mode)
    if report.errors:
        console.print(
            f"[yellow]guards.data_quality is warn: training despite {len(report.errors)} "
            "error-level finding(s); they are recorded in quality.json and the report"
        )
    return report


def forgetting_monitor(
    recipe: Recipe, family: Family, console: Console
) -> ForgettingMonitor | None:
    """guards.forgetting: the measure on the pre-trained model, before the method."""
    config = recipe.guards.forgetting
    if config is None or not config.reference:
        return None
    monitor = ForgettingMonitor(family.forgetting_measure(config.reference), config)
    before = monitor.start(family.model)
    reference = getattr(monitor.measure, "reference", None) or config.reference
    console.print(
        f"Forgetting guard: {monitor.measure.name} on {reference} is {before:.4g} before "
        f"training; action {config.action} past an increase of {monitor.threshold:g}"
    )
    return monitor


def overfitting_monitor(recipe: Recipe) -> OverfittingMonitor | None:
    config = recipe.guards.overfitting
    return OverfittingMonitor(config) if config is not None else None


def warn_overfitting_risk(recipe: Recipe, task: object, trainable: int, console: Console) -> None:
    from tunesmith.train.loop import plan_steps

    examples = len(task.lengths("train"))
    plan = plan_steps(-(-examples // recipe.train.batch_size), recipe.train)
    risk = overfitting_risk(examples, plan.total_steps / plan.steps_per_epoch, trainable)
    if risk:
        console.print(f"[yellow]{risk}")


def warn_forgetting_risk(recipe: Recipe, task: object, console: Console) -> None:
    """Before training: a method updating the pre-trained weights at a high learning rate
    or on little data, with the cheaper alternatives (train/forgetting_risk.py)."""
    from tunesmith.train.forgetting_risk import recipe_forgetting_risk

    risk = recipe_forgetting_risk(recipe, len(task.lengths("train")), planned_epochs(recipe, task))
    if risk:
        console.print(f"[yellow]{escape(risk)}")


def describe_forgetting(summary: dict) -> str:
    change = summary["increase"]
    shown = f"{change:+.1%}" if summary["measure"] == "perplexity" else f"{change:.3f}"
    chosen = (summary.get("rescue") or {}).get("chosen") or {}
    rescued = (
        f"; interpolation kept {chosen['coefficient']:.3g} of the tuned change"
        if chosen.get("source") == "interpolation"
        else ""
    )
    return (
        f"Forgetting ({summary['measure']} on {summary['reference']}): {summary['before']:.4g} "
        f"-> {summary['after']:.4g} ({shown}; threshold {summary['threshold']:g}, action "
        f"taken: {summary['action_taken']}{rescued})"
    )


def predict_cost(
    recipe: Recipe,
    model: torch.nn.Module,
    task: object,
    device: torch.device,
    dtype: torch.dtype | None,
    runtime_mb: float,
    console: Console,
) -> dict | None:
    """The analytic estimate of this run (estimate.json's `predicted`), printed in one line.
    The random state is kept as it was, so estimating never changes what training does."""
    from tunesmith.estimate import predict_run

    state = torch.get_rng_state()
    try:
        predicted = predict_run(recipe, model, task, device, dtype is not None, runtime_mb)
    except (ValueError, RuntimeError) as error:  # a model the profiler cannot run
        console.print(f"[yellow]No cost estimate for this model: {error}")
        return None
    finally:
        torch.set_rng_state(state)
    seconds = predicted["seconds_per_epoch"]
    console.print(
        f"Estimate: peak {predicted['peak_memory_mb']:,.0f} MB"
        + (f", {seconds:.1f} s per epoch" if seconds else "")
        + " (analytic; `tunesmith estimate` calibrates it with a dry run)"
    )
    return predicted


def planned_epochs(recipe: Recipe, task: object) -> float:
    """The epochs the loop planned (train.epochs, `auto` resolved; max_steps counted), for
    the report's setup: what was used, not what the recipe left to the defaults."""
    from tunesmith.train.loop import plan_steps

    plan = plan_steps(-(-len(task.lengths("train")) // recipe.train.batch_size), recipe.train)
    return round(plan.total_steps / plan.steps_per_epoch, 3)


def measured_cost(metrics: dict, result: object, task: object, recipe: Recipe) -> dict:
    from tunesmith.train.loop import plan_steps

    batches = -(-len(task.lengths("train")) // recipe.train.batch_size)
    steps_per_epoch = plan_steps(batches, recipe.train).steps_per_epoch
    epochs = max(result.steps / steps_per_epoch, 1e-9)
    return {
        "peak_memory_mb": metrics["peak_memory_mb"],
        "seconds_per_epoch": round(result.train_seconds / epochs, 3),
        "epochs": round(epochs, 3),
    }


OVERRUN = {"peak_memory_mb": 1.5, "seconds_per_epoch": 2.0}
"""How far past its prediction a measure may go before the run warns."""


def warn_if_underestimated(predicted: dict | None, measured: dict, console: Console) -> None:
    for key, factor in OVERRUN.items():
        guess = (predicted or {}).get(key)
        if guess and measured[key] > factor * guess:
            console.print(
                f"[yellow]{key} was {measured[key]:,.1f}, {measured[key] / guess:.1f}x the "
                f"estimate of {guess:,.1f}: run `tunesmith estimate` (with its dry run) before "
                "a larger run of this kind"
            )


def write_estimate(run: RunFolder, predicted: dict | None, measured: dict | None) -> None:
    if predicted is None:
        return
    run.write_json(RunFolder.ESTIMATE, {"predicted": predicted, "measured": measured})


def _write_report(output: Path, language: str) -> Path | None:
    from tunesmith.report import write_report

    return write_report(output, language)


def print_comparison(console: Console, metrics: dict, names: tuple[str, ...]) -> None:
    """The test scores of the cheaper options and the fine-tune, readable at 80 columns: the
    scores never wrap, the descriptions wrap at word boundaries in the first column."""
    table = Table(title="Test split: fine-tuned vs cheaper options")
    table.add_column("model", min_width=14, overflow="fold")
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)
    model = short_model_name(metrics.get("model") or "")
    described = {
        "baseline": "a classical model",
        "base": f"{model}, untuned",
        "fine_tuned": f"{metrics.get('method')} fine-tuning of {model}",
    }
    for key, label in (("baseline", "baseline"), ("base", "base"), ("fine_tuned", "fine-tuned")):
        scores = metrics.get(key)
        if scores:
            description = scores.get("description") or described[key]
            cells = [f"{scores[n]:.4f}" if n in scores else "-" for n in names]
            table.add_row(Text.assemble((label, "bold"), "\n", (description, "dim")), *cells)
    console.print(table)


def print_contenders(console: Console, metrics: dict) -> None:
    """Fine-tune or RAG: each contender's scores and cost per answer, then the verdict."""
    contenders = metrics.get("contenders") or {}
    if len(contenders) < 2:
        return
    table = Table(title="Test prompts: fine-tune or retrieve?")
    table.add_column("option", overflow="fold")
    for column in ("ROUGE-L", "token F1", "prompt tok", "s/answer"):
        table.add_column(column, justify="right", no_wrap=True)
    for name, scores in contenders.items():
        table.add_row(
            name,
            *(f"{scores[k]:.3f}" if k in scores else "-" for k in ("rouge_l", "token_f1")),
            f"{scores['prompt_tokens']:.0f}" if "prompt_tokens" in scores else "-",
            f"{scores['seconds_per_answer']:.2f}" if "seconds_per_answer" in scores else "-",
        )
    console.print(table)
    retrieval = metrics.get("retrieval") or {}
    if "recall_at_k" in retrieval:
        console.print(f"Retrieval recall@{retrieval['top_k']}: {retrieval['recall_at_k']:.3f}")
    sentence = (metrics.get("verdict") or {}).get("sentence")
    if sentence:
        console.print(sentence, highlight=False, markup=False)
