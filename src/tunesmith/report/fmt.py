"""Number and name formatting shared by the tables, so one value reads the same everywhere
(in the language being written: tunesmith.i18n)."""

from __future__ import annotations

import math
from typing import Any

from tunesmith.i18n import N_, _
from tunesmith.i18n import number as localized

MISSING = "—"

# Standard metric names (F1, ROUGE-L, BLEU, Macro-F1) keep their form in every language.
_LABELS = {
    "accuracy": N_("Accuracy"),
    "macro_f1": "Macro-F1",
    "f1": "F1",
    "loss": N_("Loss"),
    "perplexity": N_("Perplexity"),
    "rouge_l": "ROUGE-L",
    "exact_match": N_("Exact match"),
    "token_f1": N_("Token F1"),
    "bleu": "BLEU",
}
# Keys the report's tables show by their generic label ('seconds_per_epoch' -> 'Seconds per
# epoch'): listed so the catalogue translates them.
_KEY_LABELS = (
    N_("Reference"), N_("Measure"), N_("Before"), N_("After"), N_("Increase"),
    N_("Threshold"), N_("Action"), N_("Action taken"), N_("Method"), N_("Device"),
    N_("Precision"), N_("Peak memory"), N_("Seconds per epoch"), N_("Total seconds"),
    N_("Total params"), N_("Trainable params"), N_("Checkpointing peak"), N_("Cpu peak"),
    N_("Cuda peak"), N_("Warmup seconds"), N_("Errors"), N_("Warnings"), N_("Infos"),
    N_("Rows"), N_("Format"), N_("Labels"), N_("Imbalance ratio"), N_("Max length auto"),
    N_("Duplicates"), N_("Label issues"), N_("Steps"), N_("Epochs"), N_("Batch size"),
    N_("Tokens per second"),
)  # fmt: skip
UNITS = {
    "s": N_("{value} s"),
    "MB": N_("{value} MB"),
    "tokens/s": N_("{value} tokens/s"),
    "samples/s": N_("{value} samples/s"),
    "images/s": N_("{value} images/s"),
    "examples/s": N_("{value} examples/s"),
}
"""A measurement with its unit, as the language writes it (ja: 秒, トークン/秒)."""


def is_number(value: Any) -> bool:
    """True for finite ints and floats; bools, NaN and infinities are not plottable metrics."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any) -> str:
    """A metric score: three decimals so scores line up, thousands separators for big values."""
    if not is_number(value):
        return MISSING if value is None else str(value)
    if isinstance(value, int):
        return localized(f"{value:,}")
    if value != 0 and abs(value) < 0.01:
        return localized(f"{value:g}")
    if abs(value) >= 100:
        return localized(f"{value:,.1f}")
    return localized(f"{value:.3f}")


def quantity(value: Any) -> str:
    """A setting or measurement (seconds, MB, learning rate): about three significant digits."""
    if not is_number(value) or isinstance(value, int):
        return number(value)
    if value.is_integer() or abs(value) >= 100:
        return localized(f"{value:,.0f}")
    if abs(value) >= 10:
        return localized(f"{value:.1f}")
    return localized(f"{value:.3g}")


def unit(value: Any, name: str) -> str:
    """A measurement with its unit ('12.5 s', '12.5 秒'): `name` one of UNITS."""
    return _(UNITS[name]).format(value=quantity(value))


def signed(value: float) -> str:
    """A difference with an explicit sign, so '+0.100' cannot be misread as a level."""
    return ("+" if value >= 0 else "-") + number(abs(value))


def count(value: Any) -> str:
    """Parameter counts in K/M/B: 22,700,000 reads worse than 22.7 M in a summary."""
    if not is_number(value):
        return MISSING
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= size:
            return localized(f"{value / size:.1f} {suffix}")
    return localized(f"{value:,.0f}")


def value(item: Any) -> str:
    """Any recipe or JSON value as short text: lists joined, bools as yes/no."""
    if isinstance(item, bool):
        return _("yes") if item else _("no")
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
        return _(_LABELS[key])
    if key.endswith("_mb"):
        return label(key[:-3]) + " (MB)"
    return _(key.replace("_", " ").capitalize())
