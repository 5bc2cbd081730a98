"""What a model can read, from its config.json alone (no weights loaded)."""

from __future__ import annotations

import json
from pathlib import Path

POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")
"""Where a model config states the longest input its position embeddings cover."""


def position_limit(config: dict) -> int | None:
    """The longest input (tokens) a model config allows, or None when it does not say."""
    for source in (config, config.get("text_config") or {}):
        if not isinstance(source, dict):
            continue
        for key in POSITION_KEYS:
            value = source.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def model_position_limit(folder: Path) -> int | None:
    """position_limit of the config.json in a model folder; None when there is none or it
    cannot be read (loading the model then reports a broken config with its own message)."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return position_limit(config) if isinstance(config, dict) else None
