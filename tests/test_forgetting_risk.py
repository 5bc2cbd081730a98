"""The forgetting-risk warning before training and in `tunesmith estimate`."""

from __future__ import annotations

from pathlib import Path

import yaml

from tunesmith.cli import main
from tunesmith.methods.full import FullMethod
from tunesmith.tasks.registry import get_task, task_kinds
from tunesmith.train.forgetting_risk import MEASURED, forgetting_risk

CAUSAL_LM = get_task("causal-lm")
CLASSIFIER = get_task("text-classification")
HIGH = 6 * FullMethod.default_learning_rate


def test_full_fine_tuning_at_a_high_rate_on_little_data_is_flagged_with_alternatives():
    risk = forgetting_risk("full", HIGH, 400, 3, CAUSAL_LM, "warn")
    assert risk is not None
    assert "Forgetting risk" in risk and "3e-4 (6x its default)" in risk
    assert "400 training examples" in risk
    effect = {key: f"{m.increase:+.0%} reference perplexity" for key, m in MEASURED.items()}
    assert "method.name: lora" in risk and effect["lora"] in risk
    assert "train.learning_rate: 5e-5" in risk
    assert "train.replay: 0.3" in risk and effect["replay"] in risk
    assert effect["full"] in risk  # what the warned-about setting cost
    assert "benchmarks/forgetting.py" in risk
    assert "guards.forgetting.action: rollback" in risk and "weight interpolation" in risk


def test_the_figures_come_from_the_measured_table():
    risk = forgetting_risk("full", HIGH, 400, 3, CAUSAL_LM, "warn")
    assert risk is not None
    for measured in MEASURED.values():
        assert measured.run in risk and f"{measured.increase:+.0%}" in risk


def test_lora_at_its_default_is_not_flagged():
    assert forgetting_risk("lora", 2e-4, 400, 3, CAUSAL_LM, "warn") is None
    assert forgetting_risk("lora", 2e-4, 50_000, 1, CLASSIFIER, None) is None


def test_full_fine_tuning_at_its_default_on_large_data_is_not_flagged():
    default = FullMethod.default_learning_rate
    assert forgetting_risk("full", default, 50_000, 2, CAUSAL_LM, "warn") is None
    assert forgetting_risk("full", 2 * default, 50_000, 2, CLASSIFIER, "warn") is None
    # either cause alone is enough
    assert forgetting_risk("full", default, 400, 2, CLASSIFIER, "warn") is not None
    assert forgetting_risk("full", HIGH, 50_000, 2, CLASSIFIER, "warn") is not None
    # a method that updates only its last layers is flagged as well, a linear probe not
    assert forgetting_risk("selective", 1e-3, 50_000, 2, CLASSIFIER, "warn") is not None
    assert forgetting_risk("linear-probe", 1e-1, 40, 20, CLASSIFIER, "warn") is None


def test_replay_is_named_only_for_generative_kinds():
    for kind in task_kinds().values():
        if "full" not in kind.methods:
            continue
        risk = forgetting_risk("full", HIGH, 400, 3, kind, "warn")
        assert risk is not None
        assert ("train.replay" in risk) == kind.generative, kind.name
    # nor when the recipe replays already
    replaying = forgetting_risk("full", HIGH, 400, 3, CAUSAL_LM, "warn", replay=0.3)
    assert replaying is not None and "train.replay" not in replaying


def test_the_guard_sentence_follows_the_action():
    off = forgetting_risk("full", HIGH, 400, 3, CLASSIFIER, None)
    rollback = forgetting_risk("full", HIGH, 400, 3, CLASSIFIER, "rollback")
    assert off is not None and "guards.forgetting is off" in off
    assert rollback is not None and "action is rollback" in rollback
    assert "only warns" not in rollback and "is off" not in rollback


def test_estimate_prints_the_warning(tiny_recipe, tmp_path: Path, capsys):
    def estimate_output(method: dict, learning_rate: float) -> str:
        recipe = {
            **tiny_recipe,
            "method": method,
            "train": {**tiny_recipe["train"], "learning_rate": learning_rate},
        }
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe))
        code = main(["estimate", str(path), "--no-dry-run", "--memory-budget", "100GB"])
        assert code == 0
        return " ".join(capsys.readouterr().out.split())  # the console wraps long lines

    full = estimate_output({"name": "full"}, 1e-3)
    assert "Forgetting risk: full fine-tuning" in full
    assert "1e-3 (20x its default)" in full and "method.name: lora" in full
    assert "train.replay" not in full  # a classifier
    assert "Forgetting risk" not in estimate_output({"name": "lora", "r": 4}, 2e-4)
