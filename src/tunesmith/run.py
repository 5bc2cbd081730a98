"""`tunesmith train`: recipe -> data -> model + method -> loop -> evaluation -> run folder.

Every input is read and validated before the run folder is created, so a bad file or a bad
setting leaves nothing behind.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from tunesmith.data.text import SPLITS, TextSplits, load_text_classification
from tunesmith.errors import UserError
from tunesmith.evaluate.baselines import frozen_features_base, tfidf_baseline
from tunesmith.methods import count_parameters, get_method
from tunesmith.models.resolve import resolve_model
from tunesmith.models.text import head_modules, load_text_classifier, load_tokenizer
from tunesmith.recipe import Recipe
from tunesmith.tasks.text_classification import TextClassificationTask
from tunesmith.train.checkpoint import has_checkpoint
from tunesmith.train.device import peak_memory_mb, resolve_device, resolve_precision
from tunesmith.train.loop import fit

BASE_MAX_TRAIN = 10_000
"""The frozen-feature `base` fits on at most this many training rows (embedding is costly)."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_output(output: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to mix a new run into an old one; check before any work is done."""
    if resume:
        if not has_checkpoint(output / "checkpoints"):
            raise UserError(
                f"--resume: {output} has no checkpoint to resume from "
                "(checkpoints are removed after a finished run unless train.keep_checkpoints)"
            )
        return
    if output.exists() and any(output.iterdir()):
        if not overwrite:
            raise UserError(
                f"output folder {output} already holds files; choose another with --output, "
                "add --overwrite to replace it, or --resume to continue an interrupted run"
            )
        shutil.rmtree(output)


def train(
    recipe: Recipe,
    output_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    console: Console | None = None,
) -> dict:
    """Fine-tune as the recipe says and write the run folder; returns metrics.json's content."""
    console = console or Console()
    output = Path(output_dir or recipe.output_dir or "runs/run")
    recipe.output_dir = str(output)
    prepare_output(output, resume, overwrite)
    seed_everything(recipe.train.seed)

    splits = load_text_classification(recipe.data, recipe.train.seed)
    folder = resolve_model(recipe.model)
    tokenizer = load_tokenizer(folder)
    device = resolve_device(recipe.train.device)
    dtype = resolve_precision(recipe.train.precision, device)
    model = load_text_classifier(folder, splits.label_names).to(device)
    task = TextClassificationTask(
        splits,
        tokenizer,
        recipe.preprocess.max_length,
        device,
        dtype,
        eval_batch_size=recipe.train.eval_batch_size or max(32, recipe.train.batch_size * 2),
        label_smoothing=recipe.train.label_smoothing,
    )
    _print_data(console, splits, task, recipe)
    precision = "bf16" if dtype is not None else "fp32"
    console.print(f"Model {recipe.model} on {device.type}, {precision}")

    output.mkdir(parents=True, exist_ok=True)
    (output / "recipe.yaml").write_text(recipe.to_yaml())

    console.print("Scoring the cheaper options on the test split (TF-IDF, frozen encoder) ...")
    baseline = tfidf_baseline(_texts(splits), _labels(splits), splits.label_names)
    base = _frozen_base(task, model, splits)

    # the fresh head learns faster; found before the method runs (peft copies the head)
    head = {id(p) for module in head_modules(model).values() for p in module.parameters()}
    method = get_method(recipe.method.name)
    model = method.apply(model, recipe.method)
    trainable, total = count_parameters(model)
    console.print(
        f"Method {recipe.method.name}: {trainable:,} trainable of {total:,} parameters "
        f"({100 * trainable / total:.2f}%)"
    )
    result = fit(
        model,
        task,
        recipe.train,
        recipe.learning_rate,
        device,
        dtype,
        output,
        resume=resume,
        console=console,
        head=head,
        head_learning_rate=recipe.head_learning_rate,
    )
    console.print(result.stop_reason)

    fine_tuned = task.evaluate(model, "test", detailed=True)
    _save_model(model, tokenizer, output, method.saves_adapter)
    metrics = {
        "task": recipe.task,
        "method": recipe.method.name,
        "model": recipe.model,
        "labels": splits.label_names,
        "splits": {name: len(splits.split(name)) for name in SPLITS},
        "truncated": task.truncated,
        "params": {"total": total, "trainable": trainable},
        "precision": precision,
        "device": device.type,
        "learning_rate": recipe.learning_rate,
        "fine_tuned": fine_tuned,
        "base": base,
        "baseline": baseline,
        "train_seconds": round(result.train_seconds, 3),
        "samples_per_second": round(result.samples_per_second, 2),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "steps": result.steps,
        "best_step": result.best_step,
        "stopped_early": result.stopped_early,
        "stop_reason": result.stop_reason,
        "early_stopping_metric": recipe.train.early_stopping.metric
        if recipe.train.early_stopping
        else "loss",
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    report = _write_report(output)
    print_comparison(console, metrics)
    console.print(f"Run folder: {output}" + (f"\nReport: {report}" if report else ""))
    return metrics


def _frozen_base(task: TextClassificationTask, model: torch.nn.Module, splits: TextSplits) -> dict:
    train_rows = np.arange(len(splits.train))
    if len(train_rows) > BASE_MAX_TRAIN:
        train_rows = np.random.default_rng(0).choice(train_rows, BASE_MAX_TRAIN, replace=False)
    features = {
        "train": task.embed(model, "train", train_rows),
        "validation": task.embed(model, "validation"),
        "test": task.embed(model, "test"),
    }
    labels = _labels(splits)
    labels["train"] = [labels["train"][i] for i in train_rows]
    return frozen_features_base(
        features,
        labels,
        splits.label_names,
        "frozen pre-trained encoder (mean-pooled) + logistic regression",
    )


def _texts(splits: TextSplits) -> dict[str, list[str]]:
    return {name: splits.split(name).texts for name in SPLITS}


def _labels(splits: TextSplits) -> dict[str, list[int]]:
    return {name: list(splits.split(name).labels) for name in SPLITS}


def _save_model(model: torch.nn.Module, tokenizer, output: Path, adapter: bool) -> None:
    """adapter/ (PEFT format) or model/ (transformers format), each with tokenizer and labels."""
    target = output / ("adapter" if adapter else "model")
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    if adapter:
        # the base config with this run's label names, so the head loads with the right size
        model.get_base_model().config.save_pretrained(target)


def _write_report(output: Path) -> Path | None:
    from tunesmith.report import write_report

    return write_report(output)


def _print_data(console: Console, splits: TextSplits, task, recipe: Recipe) -> None:
    sizes = ", ".join(f"{n} {len(splits.split(n))}" for n in SPLITS)
    console.print(f"Data: {sizes}; {len(splits.label_names)} labels")
    cut = task.truncated["train"]
    if cut:
        console.print(
            f"[yellow]{cut} of {len(splits.train)} training texts are longer than "
            f"preprocess.max_length={recipe.preprocess.max_length} tokens and were truncated"
        )


def print_comparison(console: Console, metrics: dict) -> None:
    table = Table(title="Test split: fine-tuned vs cheaper options")
    table.add_column("model")
    for name in ("accuracy", "macro_f1"):
        table.add_column(name, justify="right")
    for key, label in (("baseline", "baseline"), ("base", "base"), ("fine_tuned", "fine-tuned")):
        scores = metrics.get(key)
        if scores:
            description = scores.get("description", f"{metrics['method']} fine-tuning")
            table.add_row(
                f"{label}: {description}",
                f"{scores['accuracy']:.4f}",
                f"{scores['macro_f1']:.4f}",
            )
    console.print(table)
