"""Run one `tunesmith train` in its own process (so peak memory is that run's own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml


def train_in_subprocess(
    recipe: dict,
    recipe_path: Path,
    output: Path,
    overrides: list[str],
    env: dict[str, str] | None = None,
) -> dict:
    """Write `recipe` to `recipe_path`, train into `output` (with `env` added to this
    process's environment); metrics.json plus wall_seconds."""
    recipe_path.parent.mkdir(parents=True, exist_ok=True)
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    command = [sys.executable, "-m", "tunesmith", "train", str(recipe_path)]
    command += ["--output", str(output), "--overwrite"]
    command += [arg for override in overrides for arg in ("--set", override)]
    started = time.perf_counter()
    environment = {**os.environ, **(env or {})}
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{recipe_path.stem} failed with exit code {done.returncode}")
    metrics = json.loads((output / "metrics.json").read_text())
    metrics["wall_seconds"] = time.perf_counter() - started
    return metrics
