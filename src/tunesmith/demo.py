"""`tunesmith demo`: the embedded default, end to end and offline, in a few minutes on 2 cores.

builtin:minilm fine-tuned with LoRA to tell the topic of a question (ai, coding, trivia,
psychology, ...), on an excerpt of chatterbot-corpus 1.3.3 (BSD-3-Clause, Gunther Cox) that
ships inside tunesmith (demo_data/).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from rich.console import Console

from tunesmith.recipe import load_recipe

DEMO_DATA = "chatterbot_topics.csv"


def demo_data_path() -> Path:
    return Path(str(resources.files("tunesmith") / "demo_data" / DEMO_DATA))


def demo_recipe(output_dir: str = "runs/demo") -> dict:
    return {
        "task": "text-classification",
        "model": "builtin:minilm",
        "data": {"train": str(demo_data_path()), "text_column": "text", "label_column": "label"},
        "method": {"name": "lora", "r": 8, "alpha": 16},
        "train": {"batch_size": 16, "early_stopping": {"patience": 3}},
        "output_dir": output_dir,
    }


def run_demo(
    output_dir: str | None = None, console: Console | None = None, overwrite: bool = False
) -> dict:
    """Train the demo into `output_dir`, or into a fresh folder (runs/demo, runs/demo-2, ...)
    so that running it twice never replaces anything; `overwrite` replaces an earlier demo
    run named by `output_dir` (a tunesmith run folder only)."""
    from tunesmith.run import train
    from tunesmith.run_folder import fresh_folder

    console = console or Console()
    output_dir = str(output_dir or fresh_folder(Path("runs/demo")))
    console.print(
        "[bold]tunesmith demo[/]: LoRA on builtin:minilm, classifying the topic of "
        f"questions from chatterbot-corpus (BSD-3-Clause), {demo_data_path().name}"
    )
    recipe = load_recipe(demo_recipe(output_dir))
    return train(recipe, overwrite=overwrite, console=console)
