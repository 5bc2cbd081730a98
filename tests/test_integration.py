"""Integration on the real built-in model (slow: about a minute on 2 cores)."""

import json

import pytest

from tunesmith.demo import demo_recipe
from tunesmith.recipe import load_recipe
from tunesmith.run import train

pytestmark = pytest.mark.slow


def test_minilm_lora_on_bundled_data_learns_the_topics(tmp_path):
    raw = demo_recipe(str(tmp_path / "run"))
    recipe = load_recipe(raw, ["train.max_steps=60", "train.eval_every=30", "train.precision=auto"])
    metrics = train(recipe)
    chance = 1 / len(metrics["labels"])
    assert metrics["fine_tuned"]["accuracy"] > 2 * chance
    assert metrics["base"]["accuracy"] > 2 * chance  # frozen MiniLM features are informative
    assert metrics["params"]["total"] > 22_000_000
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["fine_tuned"] == metrics["fine_tuned"]
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
