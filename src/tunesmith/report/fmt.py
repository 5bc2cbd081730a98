"""Number and name formatting shared by the tables, so one value reads the same everywhere."""

from __future__ import annotations

import math
from typing import Any

MISSING = "—"

_LABELS = {
    "accuracy": "Accuracy",
    "macro_f1": "Macro-F1",
    "f1": "F1",
    "loss": "Loss",
    "perplexity": "Perplexity",
    "rouge_l": "ROUGE-L",
    "exact_match": "Exact match",
    "token_f1": "Token F1",
    "bleu": "BLEU",
}


def is_number(value: Any) -> bool:
    """True for finite ints and floats; bools, NaN and infinities are not plottable metrics."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any) -> str:
    """A metric score: three decimals so scores line up, thousands separators for big values."""
    if not is_number(value):
        return MISSING if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value != 0 and abs(value) < 0.01:
        return f"{value:g}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.3f}"


def quantity(value: Any) -> str:
    """A setting or measurement (seconds, MB, learning rate): about three significant digits."""
    if not is_number(value) or isinstance(value, int):
        return number(value)
    if value.is_integer() or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def signed(value: float) -> str:
    """A difference with an explicit sign, so '+0.100' cannot be misread as a level."""
    return ("+" if value >= 0 else "-") + number(abs(value))


def count(value: Any) -> str:
    """Parameter counts in K/M/B: 22,700,000 reads worse than 22.7 M in a summary."""
    if not is_number(value):
        return MISSING
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= size:
            return f"{value / size:.1f} {suffix}"
    return f"{value:,.0f}"


def value(item: Any) -> str:
    """Any recipe or JSON value as short text: lists joined, bools as yes/no."""
    if isinstance(item, bool):
        return "yes" if item else "no"
    if isinstance(item, (list, tuple)):
        return ", ".join(value(part) for part in item) or MISSING
    if isinstance(item, dict):
        return ", ".join(f"{key}={value(part)}" for key, part in item.items()) or MISSING
    if item is None or item == "":
        return MISSING
    return quantity(item)


def label(key: str) -> str:
    """A readable name for a metric or key: 'macro_f1' -> 'Macro-F1', 'x_mb' -> 'X (MB)'."""
    if key in _LABELS:
        return _LABELS[key]
    if key.endswith("_mb"):
        return label(key[:-3]) + " (MB)"
    return key.replace("_", " ").capitalize()
