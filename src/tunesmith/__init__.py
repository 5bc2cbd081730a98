"""tunesmith: fine-tune pre-trained models on your own data, guarded against classic failures.

The Python API mirrors the CLI:

    import tunesmith
    metrics = tunesmith.train("examples/topics-lora.yaml", overrides=["train.epochs=5"])
    tunesmith.evaluate("runs/topics-lora")
    tunesmith.predict("runs/topics-lora", ["is my printer broken?"])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.version import __version__

__all__ = ["__version__", "demo", "evaluate", "predict", "train"]


def train(
    recipe: str | Path | dict[str, Any],
    overrides: list[str] | tuple[str, ...] = (),
    output_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> dict:
    """`tunesmith train`: returns the content of the run's metrics.json."""
    from tunesmith.recipe import load_recipe
    from tunesmith.run import train as run_train

    return run_train(load_recipe(recipe, overrides), output_dir, resume, overwrite)


def evaluate(run_dir: str | Path, data: str | None = None) -> dict:
    """`tunesmith eval`: metrics of a trained run on its test split or on `data`."""
    from tunesmith.inference import evaluate_run

    return evaluate_run(run_dir, data)


def predict(run_dir: str | Path, texts: list[str]) -> list[dict]:
    """`tunesmith predict`: label, score and probabilities per text (or file of texts)."""
    from tunesmith.inference import predict_run

    return predict_run(run_dir, texts)


def demo(output_dir: str | None = None, overwrite: bool = False) -> dict:
    """`tunesmith demo`: the built-in default, end to end, offline (into a new folder unless
    `output_dir` is given)."""
    from tunesmith.demo import run_demo

    return run_demo(output_dir, overwrite=overwrite)
