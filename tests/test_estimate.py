"""The pre-flight estimate: profiling, the memory model, budgets, verdicts and the dry run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from tunesmith.cli import main
from tunesmith.errors import UserError
from tunesmith.estimate import estimate
from tunesmith.estimate.command import show
from tunesmith.estimate.memory import RUN_GROWTH
from tunesmith.estimate.profile import profile_example
from tunesmith.estimate.recommend import (
    judge,
    nothing_fits_message,
    options,
    parse_duration,
    parse_memory,
)
from tunesmith.recipe import load_recipe
from tunesmith.run import print_comparison, print_contenders

QUIET = Console(quiet=True)


@pytest.fixture
def analytic(tiny_recipe):
    return estimate(load_recipe(tiny_recipe), QUIET, dry_run=False)


def test_budgets_parse():
    assert parse_memory("16GB") == 16 * 1024
    assert parse_memory("800 MB") == 800
    assert parse_memory("1.5g") == 1536
    assert parse_memory("2GiB") == 2048
    assert parse_duration("2h") == 7200
    assert parse_duration("1h30m") == 5400
    assert parse_duration("45s") == 45
    with pytest.raises(UserError, match="--memory-budget 'lots'"):
        parse_memory("lots")
    with pytest.raises(UserError, match="--time-budget"):
        parse_duration("2 fortnights")


def test_profile_counts_only_what_backward_needs(tiny_model_dir, tiny_recipe):
    """Full fine-tuning keeps activations and costs about 3x the forward multiply-adds; a
    linear probe (frozen encoder) keeps almost nothing and costs about one forward."""
    import copy

    import torch

    from tunesmith.methods import get_method
    from tunesmith.tasks.family import prepare

    recipe = load_recipe(tiny_recipe)
    family = prepare(recipe, torch.device("cpu"), None, QUIET)
    batch = family.task.batch("train", [0])
    profiles = {}
    for name in ("full", "linear-probe", "lora"):
        config = load_recipe({**tiny_recipe, "method": {"name": name}}).method
        model = get_method(name).apply(copy.deepcopy(family.model), config)
        profiles[name] = profile_example(model, family.task, batch)
    full, probe, lora = profiles["full"], profiles["linear-probe"], profiles["lora"]
    assert full.forward_flops == pytest.approx(probe.forward_flops, rel=0.01)
    assert 2.5 < full.train_flops / full.forward_flops <= 3.0
    assert probe.train_flops / probe.forward_flops < 1.1
    assert probe.activation_bytes < 0.05 * full.activation_bytes
    assert lora.activation_bytes > 0
    assert full.largest_bytes <= full.activation_bytes


def test_analytic_estimate_covers_every_method(analytic):
    names = [m.method for m in analytic.methods]
    assert names[0] == "lora" and set(names) >= {"full", "ia3", "selective", "linear-probe"}
    full, lora = analytic.method("full"), analytic.method("lora")
    assert full.trainable_params == full.total_params
    assert 0 < lora.trainable_params < lora.total_params
    memory = full.memory
    parts = (
        memory.runtime_mb
        + memory.weights_mb
        + memory.gradients_mb
        + memory.optimizer_mb
        + memory.activations_mb
        + memory.backward_mb
        + memory.overhead_mb
    )
    assert memory.peak_mb == pytest.approx(parts)
    assert memory.optimizer_mb == pytest.approx(2 * memory.gradients_mb)
    assert full.memory.peak_mb > lora.memory.peak_mb
    assert lora.seconds_per_epoch and lora.total_seconds > lora.seconds_per_epoch
    # the time by what bounds it: every part measured or counted, none negative
    time = vars(lora.time)
    assert set(time) == {"matmul_seconds", "memory_seconds", "input_seconds",
                         "overhead_seconds", "step_seconds"}  # fmt: skip
    assert all(value > 0 for value in time.values()), time
    assert lora.seconds_per_epoch == pytest.approx(lora.time.total)
    # full fine-tuning computes weight gradients too: more products than LoRA
    assert full.time.matmul_seconds > lora.time.matmul_seconds
    prefix = analytic.method("prefix")  # peft's prefix tuning needs a decoder's cache
    assert prefix.not_applicable and prefix.memory is None


def test_verdicts_and_recommendation(analytic):
    own = analytic.method("lora")
    chosen = judge(analytic, memory_mb=1e9, time_s=None)
    assert chosen.method == "lora" and chosen.batch_size == analytic.recipe.train.batch_size
    assert own.verdict == "fits"

    smallest_lora = min(o.peak_mb for o in options(analytic, own))
    budget = (smallest_lora + own.memory.peak_mb) / 2  # the recipe's batch does not fit
    chosen = judge(analytic, memory_mb=budget, time_s=None)
    assert chosen is not None and chosen.peak_mb <= budget
    assert own.verdict != "fits"
    if chosen.method == "lora":  # a smaller batch keeps the effective batch
        assert chosen.batch_size * chosen.gradient_accumulation == 8

    assert judge(analytic, memory_mb=1.0, time_s=None) is None
    message = nothing_fits_message(analytic, 1.0, None)
    assert "no method fits the budget of 1 MB" in message and "preprocess.max_length" in message
    assert judge(analytic, memory_mb=1e9, time_s=1e-6) is None  # too slow for any method


def test_cuda_estimate_without_a_gpu_is_analytic(tiny_recipe, analytic):
    cuda = estimate(load_recipe(tiny_recipe), QUIET, device="cuda", dry_run=True)
    assert cuda.measured is None and cuda.costs.device == "cuda"
    own = cuda.method("lora")
    assert own.memory.runtime_mb == 0 and own.seconds_per_epoch is None
    assert own.memory.peak_mb < analytic.method("lora").memory.peak_mb


def test_dry_run_calibrates(tiny_recipe):
    result = estimate(load_recipe(tiny_recipe), QUIET, dry_run=True, methods=["lora", "full"])
    measured = result.measured
    assert measured["peak_memory_mb"] > 100 and measured["seconds_per_epoch"] > 0
    own = result.method("lora")
    # a whole run's peak is the dry run's plus the measured long-run growth
    assert own.memory.peak_mb == pytest.approx(measured["peak_memory_mb"] * RUN_GROWTH)
    warmup = measured["warmup_seconds"] / result.costs.epochs
    assert own.seconds_per_epoch == pytest.approx(measured["seconds_per_epoch"] + warmup)
    # the analytic model was not off by orders of magnitude (a unit mistake would be); its
    # runtime part is this process's resident memory, which grows with the tests run before
    # (the dry run is a fresh process), so the bounds are wide
    assert 0.25 < result.calibration["memory"] < 2.0
    predicted = result.predicted()
    assert predicted["calibrated_by_dry_run"] and predicted["analytic"]["peak_memory_mb"] > 0


def write(tmp_path: Path, recipe: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_estimate_command(tiny_recipe, tmp_path, capsys):
    path = write(tmp_path, tiny_recipe)
    args = ["estimate", str(path), "--no-dry-run"]
    assert main([*args, "--memory-budget", "100GB", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["recommendation"]["method"] == "lora"
    assert report["predicted"]["peak_memory_mb"] > 0
    assert {m["method"] for m in report["methods"]} >= {"lora", "full", "linear-probe"}

    assert main([*args, "--memory-budget", "1MB"]) == 1
    err = capsys.readouterr().err
    assert "no method fits the budget of 1 MB" in err and "the smallest option is" in err

    assert main([*args, "--memory-budget", "plenty"]) == 2
    assert main([*args, "--device", "tpu"]) == 2
    assert main([*args, "--models", f"{tiny_recipe['model']},/no/such/model"]) == 0
    out = capsys.readouterr().out
    assert "Candidate models" in out and "/no/such/model" in out


def test_train_writes_predicted_and_measured(tiny_recipe, tmp_path):
    output = tmp_path / "run"
    assert main(["train", str(write(tmp_path, tiny_recipe)), "--output", str(output)]) == 0
    cost = json.loads((output / "estimate.json").read_text())
    assert cost["predicted"]["peak_memory_mb"] > 0
    assert cost["measured"]["peak_memory_mb"] > 0 and cost["measured"]["seconds_per_epoch"] > 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert cost["measured"]["peak_memory_mb"] == metrics["peak_memory_mb"]
    assert (
        "Predicted" in (output / "report.html").read_text()
        or "predicted" in (output / "report.html").read_text()
    )


# --- the terminal tables fit 80 columns ---------------------------------------------------


def _lines(console: Console) -> list[str]:
    return console.export_text(clear=False).splitlines()


def test_the_estimate_table_fits_80_columns_and_says_why_in_words(analytic, tiny_recipe):
    console = Console(width=80, record=True)
    chosen = judge(analytic, memory_mb=1e9, time_s=None)

    show(analytic, console, 1e9, True, None, chosen, [])

    lines = _lines(console)
    assert max(len(line) for line in lines) <= 80
    text = console.export_text(clear=False)
    assert "Error" not in text and "Traceback" not in text and "past key values" not in text
    assert analytic.method("prefix").not_applicable == "needs a key-value cache (decoders only)"
    assert "key-value cache" in " ".join(line.strip("│ ") for line in lines)
    # the model is named by its folder, not by its whole temporary path
    assert Path(tiny_recipe["model"]).name in text and tiny_recipe["model"] not in text
    # numbers never wrap: each method's row holds its whole peak ("848 MB" or "1.4 GB" in a
    # grown test process, never "848\nMB")
    assert all(re.search(r"\d+(\.\d+)? [MG]B", line) for line in lines if line.startswith("│ lora"))


def test_the_train_summary_fits_80_columns():
    metrics = {
        "method": "lora",
        "model": "/tmp/pytest-of-someone/pytest-123/a-rather-long-folder-name/tiny-bert0",
        "baseline": {
            "accuracy": 0.75,
            "macro_f1": 0.7,
            "description": "TF-IDF (word 1-2 + char 2-5 grams) + logistic regression",
        },
        "base": {
            "accuracy": 0.8,
            "macro_f1": 0.78,
            "description": "frozen pre-trained encoder (mean-pooled) + logistic regression",
        },
        "fine_tuned": {"accuracy": 0.9, "macro_f1": 0.88},
        "contenders": {
            name: {
                "rouge_l": 0.3,
                "token_f1": 0.4,
                "prompt_tokens": 812.0,
                "seconds_per_answer": 3.2,
            }
            for name in ("base", "few-shot", "rag", "fine-tuned", "fine-tuned+rag")
        },
    }
    console = Console(width=80, record=True)

    print_comparison(console, metrics, ("accuracy", "macro_f1"))
    lm = ("perplexity", "rouge_l", "exact_match", "token_f1")
    print_comparison(console, {**metrics, "fine_tuned": dict.fromkeys(lm, 12.3456)}, lm)
    print_contenders(console, metrics)

    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "lora fine-tuning of tiny-bert0" in text and "pytest-of-someone" not in text
    assert "0.9000" in text and "12.3456" in text and "fine-tuned+rag" in text
    assert "regression" in text  # descriptions wrap at words, not one letter a line
