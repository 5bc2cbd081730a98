"""The dry run: a few real optimizer steps of the recipe, in a fresh process, measured.

The process loads the data and model as `train` does, takes one optimizer step on the
longest batch (the activation peak; its time beyond the steady rate is the run's one-off
warm-up), then a few steps on ordinary batches of the first epoch (timed, the first one
excluded), one evaluation of the validation split and one checkpoint write, and reports its
peak memory (RSS, or CUDA peak) and timings as JSON.

    python -m tunesmith.estimate.dry_run < recipe.yaml
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tunesmith.errors import UserError
from tunesmith.recipe import Recipe

TIMED_STEPS = 3


def run_dry_run(recipe: Recipe, timeout: float = 1800) -> dict[str, Any]:
    """Run the dry run of `recipe` in a subprocess and return its measurements."""
    process = subprocess.run(
        [sys.executable, "-m", "tunesmith.estimate.dry_run"],
        input=recipe.to_yaml(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = process.stdout.strip().splitlines()
    if process.returncode != 0 or not lines:
        detail = (process.stderr.strip().splitlines() or ["no output"])[-1]
        if process.returncode == 2:
            raise UserError(detail.removeprefix("error: "))
        raise RuntimeError(f"the dry run failed (exit {process.returncode}): {detail}")
    return json.loads(lines[-1])


def measure(recipe: Recipe) -> dict[str, Any]:
    """The measurements, in this process (which should do nothing else)."""
    import numpy as np
    import torch
    from rich.console import Console

    from tunesmith.estimate import batch_cost
    from tunesmith.methods import get_method
    from tunesmith.tasks.family import prepare
    from tunesmith.train.allocator import keep_freed_memory
    from tunesmith.train.batching import length_grouped_batches, sorted_batches
    from tunesmith.train.checkpoint import LoopState, save_checkpoint
    from tunesmith.train.device import peak_memory_mb, resolve_device, resolve_precision
    from tunesmith.train.loop import make_optimizer, train_step
    from tunesmith.train.setup import seed_everything, wrap_model

    keep_freed_memory()  # as train does
    start = time.perf_counter()
    seed_everything(recipe.train.seed)
    device = resolve_device(recipe.train.device)
    dtype = resolve_precision(recipe.train.precision, device)
    family = prepare(recipe, device, dtype, Console(quiet=True))
    method = get_method(recipe.method.name)
    family.adapt_to(method)
    wrapped = wrap_model(recipe, family, method, dtype=dtype)
    model, head = wrapped.model, wrapped.head
    loaded_mb = peak_memory_mb(device)
    load_seconds = time.perf_counter() - start

    config = recipe.train
    task = family.task
    lengths = np.asarray(task.lengths("train"))
    optimizer = make_optimizer(model, config, recipe.learning_rate, head, recipe.head_learning_rate)
    accumulation = config.gradient_accumulation
    longest = sorted_batches(lengths.tolist(), config.batch_size)[0]
    model.train()
    began = time.perf_counter()
    train_step(model, task, [longest] * accumulation, optimizer, config, device, dtype)
    first_seconds = time.perf_counter() - began  # cold: allocates the optimizer state too
    first_cost = batch_cost(lengths, longest) * accumulation

    batches = length_grouped_batches(lengths.tolist(), config.batch_size, config.seed, 0)
    timed_seconds, timed_cost = 0.0, 0.0
    steps = 0
    for first in range(0, len(batches), accumulation):
        if steps > TIMED_STEPS:
            break
        micro = batches[first : first + accumulation]
        began = time.perf_counter()
        train_step(model, task, micro, optimizer, config, device, dtype)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if steps > 0:  # the first ordinary step still warms up
            timed_seconds += time.perf_counter() - began
            timed_cost += sum(batch_cost(lengths, indices) for indices in micro)
        steps += 1
    if timed_cost == 0:  # one batch per epoch: time the only step there is
        began = time.perf_counter()
        train_step(model, task, batches[:accumulation], optimizer, config, device, dtype)
        timed_seconds = time.perf_counter() - began
        timed_cost = sum(batch_cost(lengths, indices) for indices in batches[:accumulation])

    began = time.perf_counter()
    task.evaluate(model, "validation")
    eval_seconds = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as folder:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
        save_checkpoint(Path(folder), model, optimizer, scheduler, LoopState())
    epoch_cost = sum(batch_cost(lengths, indices) for indices in batches)
    per_cost = timed_seconds / timed_cost
    return {
        "warmup_seconds": round(max(first_seconds - per_cost * first_cost, 0.0), 3),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "loaded_memory_mb": round(loaded_mb, 1),
        "seconds_per_epoch": round(per_cost * epoch_cost, 3),
        "seconds_per_cost": per_cost,
        "epoch_cost": epoch_cost,
        "eval_seconds": round(eval_seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "timed_steps": max(steps - 1, 1),
        "device": device.type,
        "precision": "bf16" if dtype is not None else "fp32",
    }


def main() -> int:
    from tunesmith.libraries import quiet_libraries
    from tunesmith.recipe import load_recipe

    quiet_libraries()
    import yaml

    try:
        recipe = load_recipe(yaml.safe_load(sys.stdin.read()))
        recipe.guards.data_quality = "off"
        print(json.dumps(measure(recipe)))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
