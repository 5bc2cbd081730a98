"""Catastrophic forgetting, measured and guarded: full fine-tuning at a high learning rate vs
LoRA, with and without the forgetting guard and replay, on three model families.

- LLM: builtin:smollm2 adapted to licence texts (examples/licences-domain.yaml; a narrow
  legal domain). Domain score: held-out licence perplexity. Forgetting: perplexity of
  builtin:general-en (public-domain prose) before and after.
- Text classifier: builtin:minilm on the chatterbot topics (examples/topics-*.yaml).
  Forgetting: drift of MiniLM's sentence representations (1 - linear CKA) on reference
  sentences.
- Vision: builtin:efficientnet-lite0 on the Fashion-MNIST excerpt (examples/fashion-*.yaml).
  Forgetting: share of reference photos whose original ImageNet class changed.

    .venv/bin/python benchmarks/forgetting.py [--families llm,text,vision] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from runner import train_in_subprocess

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

RUNS = {
    "llm": (
        "licences-domain",
        "test perplexity",
        [
            ("full, lr 3e-4", ["method.name=full", "train.learning_rate=3e-4"]),
            ("full, lr 3e-4, guard rollback 10%",
             ["method.name=full", "train.learning_rate=3e-4", "guards.forgetting.action=rollback"]),
            ("full, lr 3e-4, replay 30%",
             ["method.name=full", "train.learning_rate=3e-4", "train.replay=0.3"]),
            ("lora r16", []),
        ],
    ),
    "text": (
        "topics-lora",
        "test macro-F1",
        [
            ("full, lr 2e-4", ["method.name=full", "train.learning_rate=2e-4"]),
            ("full, lr 2e-4, l2_sp 0.1",
             ["method.name=full", "train.learning_rate=2e-4", "train.l2_sp=0.1"]),
            ("full, lr 2e-4, guard rollback 0.3",
             ["method.name=full", "train.learning_rate=2e-4",
              "guards.forgetting.action=rollback", "guards.forgetting.max_increase=0.3"]),
            ("lora r8", []),
        ],
    ),
    "vision": (
        "fashion-lora",
        "test macro-F1",
        [
            ("full, lr 1e-3", ["method.name=full", "train.learning_rate=1e-3"]),
            ("full, lr 1e-3, layer_decay 0.7",
             ["method.name=full", "train.learning_rate=1e-3", "train.layer_decay=0.7"]),
            ("lora", []),
        ],
    ),
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="llm,text,vision")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    console = Console()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            example, score_name, runs = RUNS[family]
            recipe = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text())
            recipe["data"] = {
                k: str((EXAMPLES / v).resolve()) if k in ("train", "validation", "test") else v
                for k, v in recipe["data"].items()
            }
            for name, overrides in runs:
                console.print(f"{family}: {name} ...")
                output = Path(tmp) / family / name.replace(" ", "_").replace(",", "")
                run_recipe = dict(recipe)
                for override in overrides:  # another method: its own keys, not the recipe's
                    if override.startswith("method.name="):
                        run_recipe["method"] = {"name": override.split("=", 1)[1]}
                rest = [o for o in overrides if not o.startswith("method.name=")]
                metrics = train_in_subprocess(
                    run_recipe, Path(tmp) / f"{family}.yaml", output,
                    [*rest, "guards.data_quality=warn"],
                )  # fmt: skip
                results.append(_row(family, name, score_name, metrics))
                console.print(results[-1])
    table = Table(title="Forgetting: measured on reference data, before and after training")
    for column in ("family", "run", "domain score", "reference measure", "before", "after",
                   "increase", "threshold", "guard did"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("family", "run") else "right")
    for row in results:
        table.add_row(
            row["family"], row["run"], f"{row['score_name']} {row['score']:.3f}",
            row["measure"], f"{row['before']:.3f}", f"{row['after']:.3f}",
            f"{row['increase']:+.3f}", f"{row['threshold']:g}", row["action_taken"],
        )  # fmt: skip
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _row(family: str, name: str, score_name: str, metrics: dict) -> dict:
    tuned = metrics["fine_tuned"]
    score = tuned["perplexity"] if "perplexity" in score_name else tuned["macro_f1"]
    forgetting = metrics["forgetting"]
    return {
        "family": family,
        "run": name,
        "score_name": score_name,
        "score": score,
        "measure": forgetting["measure"],
        "before": forgetting["before"],
        "after": forgetting["after"],
        "increase": forgetting["increase"],
        "threshold": forgetting["threshold"],
        "action_taken": forgetting["action_taken"],
        "stop_reason": metrics["stop_reason"],
        "train_seconds": metrics["train_seconds"],
    }


if __name__ == "__main__":
    main()
