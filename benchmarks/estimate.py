"""Predicted vs measured cost of every shipped example recipe.

For each recipe in examples/: `tunesmith estimate` (analytic, then calibrated by its dry run;
in a fresh process) predicts peak memory and seconds per epoch; then the recipe is trained
for one epoch in a fresh process and its measured peak memory (process RSS over the whole
run) and training seconds per epoch are compared. LLM recipes score generation on a few
examples only (it does not change the training cost).

    .venv/bin/python benchmarks/estimate.py [--recipes faq-lora,topics-full] [--json out.json]
    .venv/bin/python benchmarks/estimate.py --recipes faq-lora --set train.precision=fp32
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ONE_EPOCH = ["train.epochs=1", "generation.max_examples=4", "generation.samples=2"]


def estimate_in_subprocess(recipe_path: Path, overrides: list[str]) -> dict:
    """`tunesmith estimate --json` in a fresh process (its runtime memory is measured as a
    user's would be), with the dry run; returns its `predicted`."""
    command = [sys.executable, "-m", "tunesmith", "estimate", str(recipe_path), "--json",
               "--memory-budget", "1000GB"]  # fmt: skip
    for override in [*ONE_EPOCH, *overrides]:
        command += ["--set", override]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)["predicted"]


def train_one_epoch(recipe_path: Path, folder: Path, overrides: list[str]) -> dict:
    output = folder / recipe_path.stem
    command = [sys.executable, "-m", "tunesmith", "train", str(recipe_path), "--output",
               str(output), "--set", "guards.data_quality=warn"]  # fmt: skip
    for override in [*ONE_EPOCH, *overrides]:
        command += ["--set", override]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads((output / "estimate.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", help="comma-separated example names (default: all)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--set", action="append", default=[], dest="overrides",
                        help="KEY=VALUE for every recipe (repeatable)")  # fmt: skip
    args = parser.parse_args()
    names = args.recipes.split(",") if args.recipes else None
    paths = [p for p in sorted(EXAMPLES.glob("*.yaml")) if not names or p.stem in names]
    console = Console()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            console.print(f"{path.stem}: estimating ...")
            predicted = estimate_in_subprocess(path, args.overrides)
            console.print(f"{path.stem}: training one epoch ...")
            run = train_one_epoch(path, Path(tmp), args.overrides)
            measured = run["measured"]
            rows.append(
                {
                    "recipe": path.stem,
                    "analytic_mb": predicted["analytic"]["peak_memory_mb"],
                    "predicted_mb": predicted["peak_memory_mb"],
                    "train_predicted_mb": run["predicted"]["peak_memory_mb"],
                    "measured_mb": measured["peak_memory_mb"],
                    "analytic_s": predicted["analytic"]["seconds_per_epoch"],
                    "predicted_s": predicted["seconds_per_epoch"],
                    "measured_s": measured["seconds_per_epoch"],
                    "train_predicted_s": run["predicted"]["seconds_per_epoch"],
                    # the analytic parts (what bounds the time; where the memory goes)
                    "time": run["predicted"].get("time"),
                    "memory": run["predicted"].get("memory"),
                }
            )
            console.print(rows[-1])
    table = Table(title="Predicted vs measured: peak memory (MB) and seconds per epoch")
    columns = ("recipe", "analytic MB", "dry-run MB", "measured MB", "error dry / analytic",
               "analytic s", "dry-run s", "measured s", "error dry / analytic")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "recipe" else "right")
    for row in rows:
        table.add_row(
            row["recipe"],
            f"{row['analytic_mb']:,.0f}",
            f"{row['predicted_mb']:,.0f}",
            f"{row['measured_mb']:,.0f}",
            f"{_error(row['predicted_mb'], row['measured_mb'])} / "
            f"{_error(row['analytic_mb'], row['measured_mb'])}",
            f"{row['analytic_s']:.1f}",
            f"{row['predicted_s']:.1f}",
            f"{row['measured_s']:.1f}",
            f"{_error(row['predicted_s'], row['measured_s'])} / "
            f"{_error(row['analytic_s'], row['measured_s'])}",
        )
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def _error(predicted: float, measured: float) -> str:
    return f"{(predicted - measured) / measured:+.0%}"


if __name__ == "__main__":
    main()
