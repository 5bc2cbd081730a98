"""Integration on the real built-in models (slow: a minute or two each on 2 cores)."""

import json
from pathlib import Path

import pytest

from tunesmith.demo import demo_recipe
from tunesmith.inference import predict_run
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


FAQ = Path(__file__).parent.parent / "examples" / "data" / "zaragoza-faq-en-alpaca.jsonl"


def test_smollm2_lora_on_real_faq_lowers_perplexity_and_answers(tmp_path):
    """builtin:smollm2 from its GGUF (converted once into the cache), LoRA on 60 real Q&A
    pairs for a few steps: perplexity on held-out answers drops, predict answers in English."""
    rows = FAQ.read_text(encoding="utf-8").splitlines()[:60]
    data = tmp_path / "faq.jsonl"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    recipe = load_recipe(
        {
            "task": "causal-lm",
            "model": "builtin:smollm2",
            "data": {"train": str(data), "test_size": 0.2},
            "method": {"name": "lora", "r": 8},
            "train": {"max_steps": 8, "batch_size": 8, "eval_every": 4},
            "generation": {"max_new_tokens": 24, "max_examples": 4, "samples": 2},
            "output_dir": str(tmp_path / "run"),
        }
    )
    metrics = train(recipe)
    assert metrics["params"]["total"] > 130_000_000
    assert metrics["fine_tuned"]["perplexity"] < metrics["base"]["perplexity"]
    assert len(metrics["samples"]) == 2 and all(s["fine_tuned"] for s in metrics["samples"])
    # the default contenders, with the real MiniLM embedder in the hybrid ranking
    contenders = metrics["contenders"]
    assert list(contenders) == ["base", "few-shot", "rag", "fine-tuned", "fine-tuned+rag"]
    assert contenders["rag"]["prompt_tokens"] > contenders["base"]["prompt_tokens"]
    assert metrics["retrieval"]["passages"] == metrics["splits"]["train"]
    assert metrics["verdict"]["best"] in contenders
    answers = predict_run(tmp_path / "run", ["What is a building permit?"])
    assert len(answers[0]["response"].split()) >= 3


def test_efficientnet_lite0_on_real_photos_beats_pixels(tmp_path):
    """builtin:efficientnet-lite0 on the bundled Fashion-MNIST excerpt (200 photos)."""
    excerpt = Path(__file__).parent.parent / "examples" / "data" / "fashion-mnist-excerpt"
    recipe = load_recipe(
        {
            "task": "image-classification",
            "data": {"train": str(excerpt)},
            "preprocess": {"image_size": 64},
            "method": {"name": "lora"},
            "train": {"epochs": 2, "batch_size": 16},
            "output_dir": str(tmp_path / "run"),
        }
    )
    metrics = train(recipe)
    assert metrics["params"]["total"] > 3_000_000
    assert metrics["fine_tuned"]["accuracy"] > 0.3  # 10 classes: chance is 0.1
    assert metrics["base"]["accuracy"] > 0.3  # ImageNet features carry over
    predictions = predict_run(tmp_path / "run", [str(excerpt / "trouser")])
    assert len(predictions) == 20 and all(p["label"] in metrics["labels"] for p in predictions)
