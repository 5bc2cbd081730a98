"""The one training loop: AdamW, warmup + decay, accumulation, clipping, mixed precision,
evaluation, early stopping with the best weights restored, checkpoints and resume.

Every task family plugs in through `TrainTask`; loss normalisation, accumulation and
throughput are computed here and nowhere else.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress
from torch import nn

from tunesmith.evaluate.metrics import is_improvement
from tunesmith.progress import columns as progress_columns
from tunesmith.progress import shown
from tunesmith.recipe import TrainConfig
from tunesmith.run_folder import RunFolder
from tunesmith.train.batching import length_grouped_batches
from tunesmith.train.checkpoint import (
    LoopState,
    has_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    save_weights,
)
from tunesmith.train.device import autocast
from tunesmith.train.distributed import Distributed, TrainStep
from tunesmith.train.guards import Decision, Guard, Retry
from tunesmith.train.schedule import lr_factor
from tunesmith.train.task import Batch, TrainTask


@dataclass
class FitResult:
    steps: int
    best_step: int | None
    best_value: float | None
    stopped_early: bool
    stop_reason: str
    train_seconds: float
    samples_per_second: float
    tokens_per_second: float
    restored_best: bool = False
    """The weights of the best evaluation were restored at the end."""
    kept_record: dict | None = None
    """The history line of the evaluation of the weights the model holds on return (its
    validation metrics and guard measures), None when they were never evaluated as such."""
    last_record: dict | None = None
    """The history line of the last evaluation (of the weights at the end of training)."""
    retries_used: int = 0
    """Times a guard rolled back and training went on."""


@dataclass
class LoopPlan:
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    eval_every: int


def plan_steps(batches_per_epoch: int, config: TrainConfig) -> LoopPlan:
    steps_per_epoch = max(1, math.ceil(batches_per_epoch / config.gradient_accumulation))
    epochs = config.epochs
    if epochs == "auto":
        target, fewest, most = config.auto_epochs
        epochs = min(max(math.ceil(target / steps_per_epoch), fewest), most)
    total = config.max_steps or max(1, math.ceil(steps_per_epoch * epochs))
    every = steps_per_epoch if config.eval_every == "epoch" else config.eval_every
    return LoopPlan(steps_per_epoch, total, int(total * config.warmup_ratio), min(every, total))


def make_optimizer(
    model: nn.Module,
    config: TrainConfig,
    lr: float,
    head: set[int] | None = None,
    head_lr: float | None = None,
    fused: bool = True,
) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases and norm weights (1-D tensors); the parameters whose
    id() is in `head` learn at `head_lr`. `fused`: one kernel updates every tensor of a group
    (on CPU and CUDA) instead of a dozen element-wise passes over each."""
    scales = layer_scales(model, config.layer_decay, head) if config.layer_decay else {}
    groups: dict[tuple[bool, bool, float], list[nn.Parameter]] = {}
    for parameter in model.parameters():
        if parameter.requires_grad:
            is_head = id(parameter) in (head or ())
            key = (is_head, parameter.ndim >= 2, scales.get(id(parameter), 1.0))
            groups.setdefault(key, []).append(parameter)
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "lr": head_lr if is_head and head_lr else lr * scale,
                "weight_decay": config.weight_decay if decays else 0.0,
            }
            for (is_head, decays, scale), params in sorted(groups.items())
        ],
        lr=lr,
        **({"fused": True} if fused else {"foreach": True}),
    )


def layer_scales(model: nn.Module, decay: float, head: set[int] | None) -> dict[int, float]:
    """Layer-wise learning-rate decay: id(parameter) -> factor. The top layer of the stack
    learns at the full rate, each one below `decay` times slower, what comes before the
    stack (embeddings, stem) slowest; what comes after it (final norm, head) at full rate."""
    from tunesmith.models.structure import layer_stack

    layers = layer_stack(model)
    depth = {id(p): i for i, layer in enumerate(layers) for p in layer.parameters()}
    top = len(layers)
    scales: dict[int, float] = {}
    seen_stack = False
    for parameter in model.parameters():
        key = id(parameter)
        if key in depth:
            seen_stack = True
            scales[key] = decay ** (top - 1 - depth[key])
        elif key not in (head or ()) and not seen_stack:
            scales[key] = decay**top
    return scales


def fit(
    model: nn.Module,
    task: TrainTask,
    config: TrainConfig,
    learning_rate: float,
    device: torch.device,
    dtype: torch.dtype | None,
    run_dir: Path,
    resume: bool = False,
    console: Console | None = None,
    on_evaluation: Callable[[dict], None] | None = None,
    head: set[int] | None = None,
    head_learning_rate: float | None = None,
    score_start: bool = False,
    guards: Sequence[Guard] = (),
    cluster: Distributed | None = None,
    on_record: Callable[[dict], None] | None = None,
) -> FitResult:
    """Train `model` in place; on return it holds the best weights seen on validation.

    `score_start`: evaluate before the first step and count the starting weights as a
    candidate, so a run that only makes the model worse ends where it started (for a
    pre-trained LLM, or a head already fitted by a probe; not for a random head).
    `guards` (forgetting, overfitting) see every evaluation: they add to its history line,
    may end the run, and may bar weights from becoming the best.
    `cluster`: this process's place among several (see `train.distributed`); process 0
    alone writes to `run_dir`. `on_record` sees every history line once it is written
    (process 0, the step-0 line included): experiment tracking records it."""
    loop = _set_up(
        model, task, config, learning_rate, device, dtype, run_dir, console or Console(),
        on_evaluation, head, head_learning_rate, guards, cluster or Distributed(),
    )  # fmt: skip
    loop.on_record = on_record
    _start_or_resume(loop, resume)
    if score_start and loop.state.step == 0:
        record = {"step": 0, "epoch": 0.0}
        improved = _evaluate(loop, record, loop.console)
        loop.console.print(_describe(record, loop.watched, improved) + "  (before training)")
    _train(loop)
    return _finish(loop)


@dataclass
class _Loop:
    """What one `fit` works with, made once by `_set_up`."""

    model: nn.Module
    task: TrainTask
    config: TrainConfig
    device: torch.device
    dtype: torch.dtype | None
    console: Console
    cluster: Distributed
    plan: LoopPlan
    lengths: list[int]
    step_module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    anchors: dict[nn.Parameter, torch.Tensor]
    head: set[int]
    guards: Sequence[Guard]
    on_evaluation: Callable[[dict], None] | None
    run_dir: Path
    state: LoopState
    guard_every: int | None = None
    """Steps between the guards' own checks, when more frequent than the evaluations."""
    records: list[dict] = field(default_factory=list)
    """Every evaluation's history line, in order."""
    on_record: Callable[[dict], None] | None = None
    """Sees each history line as it is written (process 0)."""

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / RunFolder.CHECKPOINTS

    @property
    def history(self) -> Path:
        return self.run_dir / RunFolder.HISTORY

    @property
    def watched(self) -> str:
        stopping = self.config.early_stopping
        return stopping.metric if stopping and stopping.metric else "loss"


def _set_up(
    model: nn.Module,
    task: TrainTask,
    config: TrainConfig,
    learning_rate: float,
    device: torch.device,
    dtype: torch.dtype | None,
    run_dir: Path,
    console: Console,
    on_evaluation: Callable[[dict], None] | None,
    head: set[int] | None,
    head_learning_rate: float | None,
    guards: Sequence[Guard],
    cluster: Distributed,
) -> _Loop:
    """The step plan, the (distributed) step module, AdamW and its schedule."""
    lengths = task.lengths("train")
    plan = plan_steps(math.ceil(len(lengths) / config.batch_size), config)
    head_names = {n for n, p in model.named_parameters() if id(p) in (head or ())}
    step_module = cluster.wrap(TrainStep(model, task.loss_sum), device)
    if cluster.sharded:  # sharding replaced the parameters: find the head's again
        head = {id(p) for n, p in model.named_parameters() if n in head_names}
    optimizer = make_optimizer(
        model, config, learning_rate, head, head_learning_rate, fused=not cluster.sharded
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, plan.total_steps, plan.warmup_steps, config.scheduler)
    )
    anchors = _anchors(model, head) if config.l2_sp else {}
    cadences = [c for g in guards if (c := _cadence(g, plan)) is not None]
    guard_every = cluster.broadcast(min(cadences) if cadences else None)
    return _Loop(
        model, task, config, device, dtype, console, cluster, plan, lengths, step_module,
        optimizer, scheduler, anchors, head or set(), guards, on_evaluation, run_dir,
        LoopState(), guard_every,
    )  # fmt: skip


def _cadence(guard: Guard, plan: LoopPlan) -> int | None:
    cadence = getattr(guard, "cadence", None)
    return cadence(plan.steps_per_epoch, plan.eval_every) if cadence is not None else None


def _start_or_resume(loop: _Loop, resume: bool) -> None:
    """Continue from the checkpoint (history cut back to it), or start a fresh history."""
    main = loop.cluster.is_main
    if resume and has_checkpoint(loop.checkpoints):
        loop.state = load_checkpoint(
            loop.checkpoints, loop.model, loop.optimizer, loop.scheduler, loop.cluster
        )
        if main:
            _truncate_history(loop.history, loop.state.step)
        if loop.state.retry_l2_sp:  # a retry's L2-SP goes on, anchored at the start
            start = next((s for g in loop.guards if (s := getattr(g, "start_state", None))), {})
            _pull_towards(loop, start, loop.state.retry_l2_sp)
        loop.console.print(f"Resuming at step {loop.state.step} of {loop.plan.total_steps}")
    elif main:
        loop.run_dir.mkdir(parents=True, exist_ok=True)
        loop.history.write_text("")
    if main:
        loop.checkpoints.mkdir(parents=True, exist_ok=True)


def _evaluate(loop: _Loop, record: dict, out: Console) -> bool:
    """Validation metrics and the guards' verdicts into `record` (process 0's, on every
    process), appended to the history; whether these weights are the best so far. A guard's
    rollback with a retry left restores weights and goes on instead of stopping."""
    cluster, state = loop.cluster, loop.state
    decisions: list[Decision] = []
    if cluster.is_main or cluster.sharded:
        with cluster.gathered(loop.step_module):
            validation = loop.task.evaluate(loop.model, "validation")
            record.update({f"val_{k}": v for k, v in validation.items()})
            decisions = [guard.observe(loop.model, record, out) for guard in loop.guards]
        loop.model.train()
    record, decisions = cluster.broadcast((record, decisions))
    eligible = all(d.eligible for d in decisions)
    improved = eligible and _track_best(
        record, loop.watched, loop.config.early_stopping, state, loop.model,
        loop.checkpoints, cluster, counts_patience=not record.get("guard_check"),
    )  # fmt: skip
    stopping = next((d for d in decisions if d.stop), None)
    retry = stopping.retry if stopping is not None else None
    if retry is not None and state.retries_used < retry.limit and not cluster.enabled:
        record["guard_action"] = _roll_back_and_continue(loop, retry)
        out.print(f"[yellow]{stopping.stop.split(': stopped')[0]}; {record['guard_action']}")
    elif stopping is not None:
        state.stop_reason = state.stop_reason or stopping.stop
        record.setdefault("guard_action", stopping.stop.rsplit(": ", 1)[-1])
    record["best"] = improved
    loop.records.append(record)
    if cluster.is_main:
        with loop.history.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if loop.on_record is not None:
            loop.on_record(record)
    return improved


def _train(loop: _Loop) -> None:
    """Epochs of optimizer steps until the plan's last step or a stop; the next step's
    batches are made in a background thread while this one computes."""
    config, state, cluster = loop.config, loop.state, loop.cluster
    running = _RunningLoss()
    loop.model.train()
    prefetch = ThreadPoolExecutor(1, thread_name_prefix="tunesmith-batches")

    def prepare(micro: list[list[int]]) -> list[Batch | None]:
        mine = map(cluster.shard, micro)
        return [loop.task.batch("train", rows) if rows else None for rows in mine]

    with shown(_progress(loop.console)) as progress:
        bar = progress.add_task(
            "training", total=loop.plan.total_steps, completed=state.step, info="", unit="steps"
        )
        while state.step < loop.plan.total_steps and state.stop_reason is None:
            batches = length_grouped_batches(
                loop.lengths, config.batch_size, config.seed, state.epoch
            )
            accumulation = config.gradient_accumulation
            steps = [
                batches[start : start + accumulation]
                for start in range(state.batch_in_epoch, len(batches), accumulation)
            ]
            pending = prefetch.submit(prepare, steps[0]) if steps else None
            for k, micro in enumerate(steps):
                step_start = time.perf_counter()
                prepared = pending.result()
                pending = prefetch.submit(prepare, steps[k + 1]) if k + 1 < len(steps) else None
                loss, items, samples, tokens = _optimizer_step(
                    loop.step_module, loop.model, prepared, loop.optimizer, loop.config,
                    loop.device, loop.dtype, loop.anchors, cluster,
                )  # fmt: skip
                elapsed = time.perf_counter() - step_start
                state.train_seconds += elapsed
                if not math.isfinite(loss):
                    state.stop_reason = _diverged(loss, state.step + 1, loop)
                    break
                loop.scheduler.step()
                state.step += 1
                state.batch_in_epoch += len(micro)
                state.samples_seen += samples
                state.tokens_seen += tokens
                running.add(loss, items)
                progress.update(
                    bar,
                    advance=1,
                    info=f"loss {loss:.4f}  {samples / elapsed:.1f} samples/s"
                    + (f"  {tokens / elapsed:.0f} tokens/s" if tokens != samples else ""),
                )
                end_of_epoch = state.batch_in_epoch >= len(batches)
                if end_of_epoch:
                    state.epoch += 1
                    state.batch_in_epoch = 0
                due = state.step % loop.plan.eval_every == 0 or state.step == loop.plan.total_steps
                if due or (end_of_epoch and config.eval_every == "epoch"):
                    _evaluate_and_checkpoint(loop, running, progress.console)
                elif loop.guard_every and state.step % loop.guard_every == 0:
                    _evaluate_and_checkpoint(loop, running, progress.console, guard_check=True)
                if state.stop_reason or state.step >= loop.plan.total_steps:
                    break
    prefetch.shutdown(wait=True, cancel_futures=True)


@dataclass
class _RunningLoss:
    """The training loss since the last evaluation, weighted by items."""

    total: float = 0.0
    items: int = 0

    def add(self, loss: float, items: int) -> None:
        self.total += loss * items
        self.items += items

    def take(self) -> float:
        mean = self.total / max(self.items, 1)
        self.total, self.items = 0.0, 0
        return mean


def _evaluate_and_checkpoint(
    loop: _Loop, running: _RunningLoss, out: Console, guard_check: bool = False
) -> None:
    """An evaluation, then a checkpoint. `guard_check`: one of the guards' own checks
    between evaluations (guards.forgetting.every): its weights may become the best (then it
    saves a checkpoint), but it uses up no patience and is not reported to a search."""
    state = loop.state
    record = {
        "step": state.step,
        "epoch": round(state.step / loop.plan.steps_per_epoch, 4),
        "train_loss": running.take(),
        "lr": loop.scheduler.get_last_lr()[0],
        "samples_per_s": state.samples_seen / max(state.train_seconds, 1e-9),
        "tokens_per_s": state.tokens_seen / max(state.train_seconds, 1e-9),
    }
    if guard_check:
        record["guard_check"] = True
    improved = _evaluate(loop, record, out)
    out.print(_describe(record, loop.watched, improved))
    if guard_check and not improved:  # new best weights: a resume must know their step
        return
    save_checkpoint(
        loop.checkpoints, loop.model, loop.optimizer, loop.scheduler, state, loop.cluster
    )
    if loop.on_evaluation and loop.cluster.is_main and not guard_check:
        loop.on_evaluation(record)


def _roll_back_and_continue(loop: _Loop, retry: Retry) -> str:
    """Back to the best weights under the threshold (the starting ones when there are none),
    a fresh optimizer state, the retry's learning-rate factor and L2-SP; what was done."""
    state = loop.state
    best = loop.checkpoints / "best.safetensors"
    if state.best_step is not None and best.is_file():
        load_weights(loop.model, best)
        restored = f"rolled back to step {state.best_step}"
    else:
        loop.model.load_state_dict(retry.start, strict=False)
        restored = "rolled back to the starting weights"
    loop.optimizer.state.clear()  # the moments belong to the weights left behind
    scheduler = loop.scheduler
    scheduler.base_lrs = [rate * retry.lr_factor for rate in scheduler.base_lrs]
    for group, rate in zip(loop.optimizer.param_groups, scheduler.get_last_lr(), strict=True):
        group["lr"] = rate * retry.lr_factor
    scheduler._last_lr = [group["lr"] for group in loop.optimizer.param_groups]
    strength = loop.config.l2_sp or retry.l2_sp
    if strength:
        _pull_towards(loop, retry.start, strength)
        state.retry_l2_sp = strength
    state.retries_used += 1
    if retry.on_taken is not None:
        retry.on_taken()
    changes = [f"learning rate x{retry.lr_factor:g}"] if retry.lr_factor != 1 else []
    changes += [f"L2-SP {strength:g} towards the start"] if strength else []
    return (
        f"{restored}; training goes on with {', '.join(changes) or 'the same settings'} "
        f"(retry {state.retries_used} of {retry.limit})"
    )


def _pull_towards(loop: _Loop, start: dict[str, torch.Tensor], strength: float) -> None:
    """L2-SP from now on, anchored at `start` (trained weights by name; not the head)."""
    loop.config = loop.config.model_copy(update={"l2_sp": strength})
    loop.anchors = {
        p: start[n].to(p.device)
        for n, p in loop.model.named_parameters()
        if p.requires_grad and n in start and id(p) not in loop.head
    }


def _diverged(loss: float, step: int, loop: _Loop) -> str:
    """The stop reason when a step's loss is not a number; that step was not applied."""
    rate = loop.scheduler.get_last_lr()[0]
    kept = (
        "the best weights so far are kept"
        if loop.state.best_step is not None
        else "the weights before that step are kept"
    )
    return (
        f"stopped: the training loss was {loss} at step {step} (learning rate {rate:.2e}), "
        f"so that step was not applied and {kept}; lower train.learning_rate or set "
        "precision: fp32"
    )


def _finish(loop: _Loop) -> FitResult:
    """Restore the best weights, drop the checkpoints unless kept, sum up the run."""
    state, cluster, main = loop.state, loop.cluster, loop.cluster.is_main
    best = loop.checkpoints / "best.safetensors"
    restored = best.is_file() if main else state.best_step is not None
    if cluster.sharded:
        restored = cluster.broadcast(restored)
    if restored and (main or cluster.sharded):
        load_weights(loop.model, best)
    if not loop.config.keep_checkpoints and main:
        shutil.rmtree(loop.checkpoints, ignore_errors=True)
    kept_step = state.best_step if restored else state.step
    kept = next((r for r in reversed(loop.records) if r["step"] == kept_step), None)
    return FitResult(
        steps=state.step,
        best_step=state.best_step,
        best_value=state.best_value,
        stopped_early=state.stop_reason is not None,
        stop_reason=state.stop_reason or f"finished {state.step} steps",
        train_seconds=state.train_seconds,
        samples_per_second=state.samples_seen / max(state.train_seconds, 1e-9),
        tokens_per_second=state.tokens_seen / max(state.train_seconds, 1e-9),
        restored_best=restored,
        kept_record=kept,
        last_record=loop.records[-1] if loop.records else None,
        retries_used=state.retries_used,
    )


def _anchors(model: nn.Module, head: set[int] | None) -> dict[nn.Parameter, torch.Tensor]:
    """L2-SP's starting point: a copy of every trained pre-trained weight (not the head)."""
    return {
        p: p.detach().clone()
        for p in model.parameters()
        if p.requires_grad and id(p) not in (head or ())
    }


def train_step(
    model: nn.Module,
    task: TrainTask,
    micro_batches: list[list[int]],
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    device: torch.device,
    dtype: torch.dtype | None,
    anchors: dict[nn.Parameter, torch.Tensor] | None = None,
) -> tuple[float, int, int, int]:
    """One optimizer step of a single process over the training rows `micro_batches`
    (the dry run's measurement); see `_optimizer_step`."""
    batches: list[Batch | None] = [task.batch("train", ix) for ix in micro_batches]
    step = TrainStep(model, task.loss_sum)
    return _optimizer_step(step, model, batches, optimizer, config, device, dtype, anchors)


def _optimizer_step(
    step_module: nn.Module,
    model: nn.Module,
    batches: list[Batch | None],
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    device: torch.device,
    dtype: torch.dtype | None,
    anchors: dict[nn.Parameter, torch.Tensor] | None = None,
    cluster: Distributed | None = None,
) -> tuple[float, int, int, int]:
    """One optimizer step over accumulated micro-batches: (loss, items, samples, tokens),
    summed over the processes.

    The loss is summed per item and divided by the items of the whole step (all processes'),
    so accumulation of k batches equals one k-times-larger batch (uneven last batches
    included), and n processes equal one (DDP averages the gradients: times n undoes it).
    `None` stands for a micro-batch with no rows for this process.
    """
    cluster = cluster or Distributed()
    present = [b for b in batches if b is not None]
    items, samples, tokens = cluster.all_sum(
        [
            sum(b.items for b in present),
            sum(b.samples for b in present),
            sum(b.tokens for b in present),
        ]
    )
    scale = cluster.world_size / max(items, 1)
    total = 0.0
    for i, batch in enumerate(batches):
        with cluster.no_sync(step_module, last=i == len(batches) - 1):
            with autocast(device, dtype):
                loss = step_module(batch) * scale
            loss.backward()
        total += loss.item() / cluster.world_size
    for parameter, start in (anchors or {}).items():  # L2-SP: d/dp of l2_sp/2 * |p - p0|^2
        if parameter.grad is not None:
            parameter.grad.add_(parameter.detach() - start, alpha=config.l2_sp)
    (total,) = cluster.all_sum([total])
    if not math.isfinite(total):  # a diverged step is never applied: the weights stay finite
        optimizer.zero_grad(set_to_none=True)
        return total, int(items), int(samples), int(tokens)
    if config.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(
            [p for p in model.parameters() if p.grad is not None], config.max_grad_norm
        )
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total, int(items), int(samples), int(tokens)


def _track_best(
    record: dict,
    watched: str,
    stopping,
    state: LoopState,
    model: nn.Module,
    folder: Path,
    cluster: Distributed | None = None,
    counts_patience: bool = True,
) -> bool:
    """Keep the best weights by the watched metric; count patience while neither it nor the
    validation loss improves (on a small validation set a coarse metric like macro-F1 can
    stall for a while the model is still learning). `counts_patience`: False for a guard's
    check between evaluations."""
    value = record.get(f"val_{watched}")
    if value is None or not math.isfinite(value):
        return False
    min_delta = stopping.min_delta if stopping else 0.0
    relative = (stopping.relative_min_delta or 0.0) if stopping else 0.0
    loss = record.get("val_loss")
    loss_improved = loss is not None and is_improvement(
        "loss", loss, state.best_loss, min_delta, relative
    )
    if loss_improved:
        state.best_loss = loss
    if is_improvement(watched, value, state.best_value, min_delta, relative):
        state.best_value, state.best_step = value, state.step
        state.evals_without_improvement = 0
        save_weights(model, folder / "best.safetensors", cluster)
        return True
    if not counts_patience:
        return False
    state.evals_without_improvement = 0 if loss_improved else state.evals_without_improvement + 1
    if stopping and state.evals_without_improvement >= stopping.patience:
        state.stop_reason = (
            f"early stop: validation {watched} and loss did not improve for "
            f"{stopping.patience} evaluations; best {watched} {state.best_value:.4f} at step "
            f"{state.best_step} restored"
        )
    return False


def _describe(record: dict, watched: str, improved: bool) -> str:
    shown = [f"step {record['step']}", f"epoch {record['epoch']:.2f}"]
    if "train_loss" in record:
        shown.append(f"train_loss {record['train_loss']:.4f}")
    shown += [f"{k} {v:.4f}" for k, v in record.items() if k.startswith("val_")]
    return " | ".join(shown) + (f"  [best {watched}]" if improved else "")


def _truncate_history(path: Path, step: int) -> None:
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def _progress(console: Console) -> Progress:
    return Progress(*progress_columns(), console=console, transient=False)
