"""Forgetting and overfitting guards, and the mitigations (replay, L2-SP, layer-wise decay)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from rich.console import Console

from tunesmith.cli import main
from tunesmith.errors import UserError
from tunesmith.evaluate.forgetting import (
    linear_cka,
    measured_half,
    reference_paragraphs,
    reference_sentences,
    replay_half,
)
from tunesmith.recipe import ForgettingGuard, OverfittingGuard, load_recipe
from tunesmith.train.guards import ForgettingMonitor, OverfittingMonitor, overfitting_risk

QUIET = Console(quiet=True)


def write(tmp_path: Path, recipe: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


# --- measures --------------------------------------------------------------------------------


def test_linear_cka():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16))
    rotation, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ rotation) == pytest.approx(1.0)  # rotation and scale
    assert linear_cka(x, rng.normal(size=(200, 16))) < 0.2


def test_reference_data(tmp_path):
    paragraphs = reference_paragraphs("builtin:general-en")
    assert len(paragraphs) >= 80 and paragraphs[0].startswith("Call me Ishmael.")
    measured, replayed = measured_half(paragraphs), replay_half(paragraphs)
    assert not set(measured) & set(replayed)  # replay never trains on what is measured
    sentences = reference_sentences(measured)
    assert len(sentences) == 128 and all(len(s.split()) >= 5 for s in sentences)
    own = tmp_path / "ref.txt"
    own.write_text("First paragraph of text.\n\nSecond one here.\n")
    assert reference_paragraphs(str(own)) == ["First paragraph of text.", "Second one here."]
    with pytest.raises(UserError, match="neither a file nor a built-in"):
        reference_paragraphs("builtin:nope")


class Counting:
    """A measure that returns the values it is given, in turn."""

    name = "perplexity"
    relative = True

    def __init__(self, values):
        self.values = iter(values)

    def __call__(self, model):
        return next(self.values)


@pytest.mark.parametrize(
    ("action", "stops", "eligible", "taken"),
    [("warn", False, True, "warned"), ("stop", True, True, "stopped"),
     ("rollback", True, False, "rolled_back")],
)  # fmt: skip
def test_forgetting_monitor_actions(action, stops, eligible, taken):
    monitor = ForgettingMonitor(Counting([10.0, 10.5, 12.0, 12.0]), ForgettingGuard(action=action))
    model = torch.nn.Linear(2, 2)
    assert monitor.start(model) == 10.0 and monitor.threshold == 0.10
    record = {"step": 5}
    first = monitor.observe(model, record, QUIET)  # +5%: under the threshold
    assert first.stop is None and first.eligible
    assert record["forgetting_increase"] == pytest.approx(0.05)
    record = {"step": 10}
    second = monitor.observe(model, record, QUIET)  # +20%
    assert (second.stop is not None) == stops and second.eligible == eligible
    assert monitor.action_taken == taken
    summary = monitor.summary(model, "builtin:general-en")
    assert summary["before"] == 10.0 and summary["after"] == 12.0
    assert summary["increase"] == pytest.approx(0.2) and summary["action_taken"] == taken


def test_overfitting_monitor():
    monitor = OverfittingMonitor(OverfittingGuard(patience=2))
    losses = [(1.0, 1.0), (0.8, 0.9), (0.6, 0.95), (0.4, 1.1)]  # (train, validation)
    decisions = [
        monitor.observe(None, {"step": i, "train_loss": t, "val_loss": v}, QUIET)
        for i, (t, v) in enumerate(losses, start=1)
    ]
    assert [d.stop is not None for d in decisions] == [False, False, False, True]
    assert "overfitting" in decisions[-1].stop and monitor.detected_at == 4
    assert overfitting_risk(100, 30, 22_000_000) is not None
    assert overfitting_risk(5000, 30, 1000) is None


def test_replay_only_for_causal_lm(tiny_recipe):
    with pytest.raises(UserError, match=r"train\.replay"):
        load_recipe({**tiny_recipe, "train": {"replay": 0.2}})


# --- in training -------------------------------------------------------------------------------


def test_overfitting_guard_restores_the_best_validation_model(tiny_recipe, tmp_path):
    """Random labels: the model can only memorise them. Trained for far too long, the guard
    stops the run, and the weights kept are those of the lowest validation loss."""
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]
    rows = [
        {"text": " ".join(rng.choice(words, 5)), "label": str(rng.choice(["a", "b"]))}
        for _ in range(60)
    ]
    data = tmp_path / "random.csv"
    pd.DataFrame(rows).drop_duplicates("text").to_csv(data, index=False)
    recipe = {
        **tiny_recipe,
        "data": {"train": str(data)},
        "method": {"name": "full"},
        "train": {"epochs": 200, "batch_size": 8, "learning_rate": 3e-3, "precision": "fp32",
                  "early_stopping": None},
        "guards": {"data_quality": "off", "forgetting": None},
    }  # fmt: skip
    output = tmp_path / "run"
    assert main(["train", str(write(tmp_path, recipe)), "--output", str(output)]) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert "overfitting" in metrics["stop_reason"]
    assert metrics["steps"] < 200 * 5  # stopped long before the 200 epochs
    lines = history(output)
    best = min(lines, key=lambda line: line["val_loss"])
    assert metrics["best_step"] == best["step"]
    # the weights kept score the best validation loss again
    assert metrics["validation"]["loss"] == pytest.approx(best["val_loss"], rel=1e-4)


def test_forgetting_rollback_keeps_the_model_under_the_threshold(tiny_llm_recipe, tmp_path):
    reference = tmp_path / "reference.txt"
    # tokens the training data never uses: learning the QA pairs pushes their odds down
    reference.write_text("\n\n".join("- : ' - : ! ' : - ' ! :" for _ in range(8)))
    recipe = {
        **tiny_llm_recipe,
        "method": {"name": "full"},
        "train": {"epochs": 3, "batch_size": 8, "learning_rate": 5e-2, "precision": "fp32"},
        "guards": {
            "forgetting": {"reference": str(reference), "max_increase": 0.01, "action": "rollback"}
        },
    }
    output = tmp_path / "run"
    assert main(["train", str(write(tmp_path, recipe)), "--output", str(output)]) == 0
    forgetting = json.loads((output / "metrics.json").read_text())["forgetting"]
    assert forgetting["measure"] == "perplexity" and forgetting["action_taken"] == "rolled_back"
    assert forgetting["increase"] <= 0.01 + 1e-6
    assert "forgetting_perplexity" in history(output)[0]


def test_forgetting_measured_for_classifiers(tiny_recipe, tiny_image_recipe, tmp_path):
    text_run, image_run = tmp_path / "text", tmp_path / "image"
    assert main(["train", str(write(tmp_path, tiny_recipe)), "--output", str(text_run)]) == 0
    text = json.loads((text_run / "metrics.json").read_text())["forgetting"]
    assert text["measure"] == "representation_drift" and text["before"] == 0.0
    assert (
        0.0 <= text["after"] <= 1.0 and "forgetting_representation_drift" in history(text_run)[-1]
    )
    (tmp_path / "img").mkdir()
    path = write(tmp_path / "img", tiny_image_recipe)
    assert main(["train", str(path), "--output", str(image_run)]) == 0
    image = json.loads((image_run / "metrics.json").read_text())["forgetting"]
    assert image["measure"] == "representation_drift"  # a tiny ResNet has no ImageNet head


def test_l2_sp_keeps_weights_near_the_start(tiny_model_dir, tiny_recipe):
    from tunesmith.methods import get_method
    from tunesmith.tasks.family import prepare
    from tunesmith.train.loop import _anchors, make_optimizer, train_step

    distances = {}
    for strength in (0.0, 1000.0):
        recipe = load_recipe({**tiny_recipe, "method": {"name": "full"},
                              "train": {"l2_sp": strength, "precision": "fp32"}})  # fmt: skip
        torch.manual_seed(0)
        family = prepare(recipe, torch.device("cpu"), None, QUIET)
        model = get_method("full").apply(family.model, recipe.method)
        head = family.head_parameters()
        start = {n: p.detach().clone() for n, p in model.named_parameters()}
        optimizer = make_optimizer(model, recipe.train, 1e-2, head)
        anchors = _anchors(model, head) if strength else {}
        model.train()
        for _ in range(20):
            train_step(model, family.task, [[0, 1, 2, 3]], optimizer, recipe.train,
                            torch.device("cpu"), None, anchors)  # fmt: skip
        distances[strength] = sum(
            (p.detach() - start[n]).norm().item()
            for n, p in model.named_parameters()
            if "classifier" not in n
        )
    assert distances[1000.0] < 0.5 * distances[0.0]


def test_layer_decay_scales_learning_rates(tiny_model_dir, tiny_recipe):
    from tunesmith.tasks.family import prepare
    from tunesmith.train.loop import layer_scales, make_optimizer

    recipe = load_recipe({**tiny_recipe, "method": {"name": "full"},
                          "train": {"layer_decay": 0.5}})  # fmt: skip
    family = prepare(recipe, torch.device("cpu"), None, QUIET)
    model = family.model
    head = family.head_parameters()
    scales = layer_scales(model, 0.5, head)
    layers = model.bert.encoder.layer
    top, below = layers[-1], layers[-2]
    assert scales[id(next(top.parameters()))] == 1.0
    assert scales[id(next(below.parameters()))] == 0.5
    assert scales[id(model.bert.embeddings.word_embeddings.weight)] == 0.5 ** len(layers)
    optimizer = make_optimizer(model, recipe.train, 1e-3, head, 1e-2)
    rates = sorted({group["lr"] for group in optimizer.param_groups})
    assert rates[0] == pytest.approx(1e-3 * 0.5 ** len(layers)) and rates[-1] == 1e-2
