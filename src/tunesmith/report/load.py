"""Read a run folder leniently: a report must render whatever the run managed to write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tunesmith.errors import UserError
from tunesmith.run_folder import RunFolder


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """metrics.json is the one file a report cannot do without, so its absence is a user error."""
    path = run_dir / RunFolder.METRICS
    if not path.is_file():
        raise UserError(f"{path} not found: run training first, or pass the right run folder.")
    metrics = read_json(path)
    if not isinstance(metrics, dict):
        raise UserError(f"{path} is not a JSON object: the run may have been interrupted.")
    return metrics


def read_json(path: Path) -> Any | None:
    """Optional JSON file; None when missing or unreadable so its section is simply skipped."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Optional YAML mapping (the resolved recipe); empty when missing or malformed."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def read_history(path: Path) -> list[dict[str, Any]]:
    """One dict per evaluation; bad lines are skipped since a crash mid-write truncates the file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
