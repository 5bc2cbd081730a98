"""The forgetting guard keeps the gain: its own cadence, weight interpolation between the
starting and the tuned weights (exact at 0 and 1, a scaling of a LoRA adapter, a bisection
that never keeps weights past the threshold), and rollback-then-continue, resumed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tunesmith.cli import main
from tunesmith.methods.lora import LORA_A
from tunesmith.recipe import ForgettingGuard
from tunesmith.train.guards import ForgettingMonitor
from tunesmith.train.interpolation import (
    Candidate,
    bisect_coefficient,
    interpolate,
    rescue_by_interpolation,
)


def write(tmp_path: Path, recipe: dict, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe))
    return path


def history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def tiny_llama(vocab: int = 40) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def moved(model: torch.nn.Module, seed: int = 1) -> None:
    """What training would do: every trainable weight moved at random."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.1)


TOKENS = torch.tensor([[1, 5, 9, 3, 7, 2, 11, 4]])


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=TOKENS).logits


# --- interpolation -----------------------------------------------------------------------


def test_interpolation_at_0_and_1_is_exactly_the_start_and_the_tuned_model():
    model = tiny_llama()
    start, start_logits = trainable(model), logits(model)
    moved(model)
    tuned, tuned_logits = trainable(model), logits(model)
    assert not torch.equal(start_logits, tuned_logits)
    interpolate(model, start, tuned, 0.0)
    assert torch.equal(logits(model), start_logits)
    interpolate(model, start, tuned, 1.0)
    assert torch.equal(logits(model), tuned_logits)
    interpolate(model, start, tuned, 0.5)
    halfway = logits(model)
    assert not torch.equal(halfway, start_logits) and not torch.equal(halfway, tuned_logits)


def test_interpolating_a_lora_adapter_scales_its_update():
    """B moves from zero, A is held at its tuned value: the adapter's output is a * B @ A x,
    so the layer's output is linear in the coefficient (exactly base at 0, tuned at 1)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(6, 4))
    model = get_peft_model(layer, LoraConfig(r=2, lora_alpha=4, target_modules=["0"]))
    x = torch.randn(3, 6)
    start = trainable(model)
    with torch.no_grad():
        base = model(x)
    moved(model)
    tuned = trainable(model)
    assert any("lora_A" in n for n in tuned) and any("lora_B" in n for n in tuned)
    with torch.no_grad():
        full = model(x)
    outputs = {}
    for alpha in (0.0, 0.25, 0.5, 1.0):
        interpolate(model, start, tuned, alpha, LORA_A)
        with torch.no_grad():
            outputs[alpha] = model(x)
    assert torch.equal(outputs[0.0], base) and torch.equal(outputs[1.0], full)
    for alpha in (0.25, 0.5):
        torch.testing.assert_close(outputs[alpha], base + alpha * (full - base))
    # without holding A, the update is not a scaling (A moves too): the test can fail
    interpolate(model, start, tuned, 0.5)
    with torch.no_grad():
        unheld = model(x)
    assert not torch.allclose(unheld, base + 0.5 * (full - base), atol=1e-6)


def test_bisection_keeps_the_largest_coefficient_under_the_threshold():
    measured = bisect_coefficient(lambda a: 0.3 * a, threshold=0.1, steps=6)
    assert len(measured) == 6
    under = [a for a, value in measured if value <= 0.1]
    assert max(under) == pytest.approx(1 / 3, abs=1 / 64)
    assert all(0.3 * a <= 0.1 for a in under)
    # not a number counts as over: the search goes down
    nowhere = bisect_coefficient(lambda a: math.nan, 0.1, 3)
    assert [a for a, _ in nowhere] == [0.5, 0.25, 0.125]


def test_rescue_never_keeps_weights_past_the_threshold():
    """Forgetting grows with the squared distance from the start, the validation loss falls
    with the distance: the rescue keeps the best validation score under the threshold."""
    model = tiny_llama()
    start = trainable(model)
    moved(model, seed=2)
    tuned = trainable(model)

    def distance(module) -> float:
        return sum(
            float((p.detach() - start[n]).pow(2).sum()) for n, p in module.named_parameters()
        ) / sum(float((tuned[n] - start[n]).pow(2).sum()) for n in tuned)

    def measure(module):
        value = 10 * (1 + 0.5 * distance(module))  # +50% at the tuned weights
        return value, value / 10 - 1

    def validate(module):
        return {"loss": 3.0 - math.sqrt(distance(module))}

    interpolate(model, start, tuned, 0.0)  # the loop kept the starting weights
    kept = Candidate(None, 10.0, 0.0, {"loss": 3.0}, "checkpoint")
    rescue = rescue_by_interpolation(
        model, start, tuned, measure, validate, "loss", 0.10, 5, kept,
        Candidate(1.0, 15.0, 0.5, {"loss": 2.0}),
    )  # fmt: skip
    chosen = rescue.chosen
    assert chosen is not None and chosen.source == "interpolation"
    assert chosen.increase <= 0.10
    # 0.5 * a^2 <= 0.1: a <= 0.447; five bisection steps get within 1/32 of it
    assert 0.447 - 1 / 32 <= chosen.coefficient <= 0.4473
    assert all(c.increase > 0.10 for c in rescue.candidates if c.coefficient > 0.4473)
    # the model holds the chosen weights
    assert measure(model)[1] == pytest.approx(chosen.increase)
    summary = rescue.summary("loss")
    assert summary["chosen"]["coefficient"] == chosen.coefficient
    assert len(summary["candidates"]) == 5


def test_the_monitor_measures_at_its_own_cadence_with_stop_or_rollback():
    class Constant:
        name, relative, reference = "perplexity", True, None

        def __call__(self, model):
            return 10.0

    warn = ForgettingMonitor(Constant(), ForgettingGuard(action="warn"))
    rollback = ForgettingMonitor(Constant(), ForgettingGuard(action="rollback"))
    assert warn.cadence(steps_per_epoch=20, eval_every=20) is None
    assert rollback.cadence(steps_per_epoch=20, eval_every=20) == 5
    assert rollback.cadence(steps_per_epoch=20, eval_every=4) is None  # evaluations suffice
    fixed = ForgettingMonitor(Constant(), ForgettingGuard(action="stop", every=3))
    assert fixed.cadence(steps_per_epoch=20, eval_every=20) == 3


# --- in training -------------------------------------------------------------------------


def test_rollback_rescues_a_model_under_the_threshold_better_than_the_start(overshooting, tmp_path):
    output = tmp_path / "run"
    assert main(["train", str(write(tmp_path, overshooting)), "--output", str(output)]) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    forgetting, lines = metrics["forgetting"], history(output)
    # measured at its own cadence: 6 steps per epoch, a check every 2 steps
    assert [line["step"] for line in lines[:3]] == [0, 2, 4]
    assert lines[1].get("guard_check") is True and "guard_check" not in lines[0]
    crossed = [line for line in lines if line.get("forgetting_increase", 0) > 0.05]
    assert crossed and "guard_action" in crossed[-1]
    rescue = forgetting["rescue"]
    assert rescue["chosen"] is not None
    assert forgetting["increase"] <= 0.05 + 1e-6
    assert rescue["chosen"]["source"] == "interpolation"
    assert 0 < rescue["chosen"]["coefficient"] < 1
    # the kept model is better on validation than the starting weights, and is the one scored
    assert metrics["validation"]["loss"] < lines[0]["val_loss"]
    assert metrics["validation"]["loss"] == pytest.approx(rescue["chosen"]["validation"]["loss"])


def test_rollback_then_continue_resumes_to_the_same_weights(overshooting, tmp_path):
    """A rollback with a retry goes on at a lower learning rate with L2-SP; a run stopped
    after it and resumed ends where the run that never stopped ends."""
    recipe = overshooting
    recipe["guards"]["forgetting"] |= {"retries": 1, "rescue": "none"}
    recipe["train"] |= {"keep_checkpoints": True, "eval_every": 2}
    straight = tmp_path / "straight"
    assert main(["train", str(write(tmp_path, recipe)), "--output", str(straight)]) == 0
    lines = history(straight)
    actions = [line["guard_action"] for line in lines if "guard_action" in line]
    assert actions and "retry 1 of 1" in actions[0] and "learning rate x0.3" in actions[0]
    retried_at = next(
        line["step"] for line in lines if "retry 1 of 1" in line.get("guard_action", "")
    )
    after = [line for line in lines if line["step"] > retried_at and "lr" in line]
    assert after and all(line["lr"] == pytest.approx(5e-2 * 0.3) for line in after)
    metrics = json.loads((straight / "metrics.json").read_text())
    assert metrics["forgetting"]["retries_used"] == 1

    stopped = tmp_path / "stopped"
    part = {**recipe, "train": {**recipe["train"], "max_steps": retried_at + 2}}
    assert main(["train", str(write(tmp_path, part, "part.yaml")), "--output", str(stopped)]) == 0
    assert main(["train", str(write(tmp_path, recipe)), "--output", str(stopped), "--resume"]) == 0
    ours = load_file(str(stopped / "model" / "model.safetensors"))
    theirs = load_file(str(straight / "model" / "model.safetensors"))
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], atol=1e-6, rtol=0)
    resumed_lines = history(stopped)
    assert [line["step"] for line in resumed_lines] == [line["step"] for line in lines]
