"""Before/after comparison of the fine-tuned model with its cheaper alternatives, and the verdict.

Metric names are handled generically so the same table serves classifiers (accuracy, macro_f1)
and LLMs (loss, perplexity, rouge_l, exact_match).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunesmith.report import fmt

# Cheapest first, so the fine-tuned column sits last where the eye ends.
MODELS = (("baseline", "Baseline"), ("base", "Base model"), ("fine_tuned", "Fine-tuned"))
PREFERRED_ORDER = ("accuracy", "macro_f1", "loss", "perplexity", "rouge_l", "exact_match")
HEADLINE_FALLBACKS = ("macro_f1", "accuracy", "rouge_l", "loss")


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    description: str


@dataclass(frozen=True)
class Cell:
    text: str
    best: bool


@dataclass(frozen=True)
class Row:
    label: str
    lower_is_better: bool
    cells: list[Cell]
    change: str
    change_class: str


@dataclass(frozen=True)
class Comparison:
    columns: list[Column]
    rows: list[Row]
    has_change: bool


def lower_is_better(name: str) -> bool:
    """Losses and perplexities improve downwards; every other metric improves upwards."""
    return name.endswith("loss") or name.endswith("perplexity")


def scalar_metrics(result: Any) -> dict[str, float]:
    """The plain numeric entries of one model's results (per_class, matrices, text are skipped)."""
    if not isinstance(result, dict):
        return {}
    return {key: val for key, val in result.items() if fmt.is_number(val)}


def metric_order(names: set[str]) -> list[str]:
    """Well-known metrics first in a fixed order, the rest alphabetically."""
    known = [name for name in PREFERRED_ORDER if name in names]
    return known + sorted(names - set(known))


def _best(values: list[float], name: str) -> float:
    return min(values) if lower_is_better(name) else max(values)


def _is_improvement(new: float, old: float, name: str) -> bool:
    return new < old if lower_is_better(name) else new > old


def present_models(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Scalar metrics of each model that has any, keyed like MODELS."""
    found = {key: scalar_metrics(metrics.get(key)) for key, _ in MODELS}
    return {key: values for key, values in found.items() if values}


def _description(metrics: dict[str, Any], key: str) -> str:
    result = metrics.get(key)
    text = result.get("description") if isinstance(result, dict) else None
    if isinstance(text, str) and text:
        return text
    if key == "fine_tuned" and metrics.get("method"):
        return f"{metrics['method']} fine-tuning"
    return ""


def _change(fine: float | None, others: list[float], name: str) -> tuple[str, str]:
    if fine is None or not others:
        return fmt.MISSING, ""
    best_other = _best(others, name)
    delta = fine - best_other
    if delta == 0:
        return f"{fmt.signed(delta)} (same)", ""
    if _is_improvement(fine, best_other, name):
        return f"{fmt.signed(delta)} (better)", "good"
    return f"{fmt.signed(delta)} (worse)", "bad"


def _row(name: str, models: dict[str, dict[str, float]]) -> Row:
    values = {key: result.get(name) for key, result in models.items()}
    present = [val for val in values.values() if val is not None]
    best = _best(present, name) if len(present) > 1 else None
    cells = [Cell(fmt.number(val), val is not None and val == best) for val in values.values()]
    others = [val for key, val in values.items() if key != "fine_tuned" and val is not None]
    change, change_class = _change(values.get("fine_tuned"), others, name)
    return Row(fmt.label(name), lower_is_better(name), cells, change, change_class)


def compare(metrics: dict[str, Any]) -> Comparison:
    """Rows = every scalar metric any model reports; columns = models present, cheapest first."""
    models = present_models(metrics)
    columns = [
        Column(key, title, _description(metrics, key)) for key, title in MODELS if key in models
    ]
    names = set().union(*models.values()) if models else set()
    rows = [_row(name, models) for name in metric_order(names)]
    return Comparison(columns, rows, has_change="fine_tuned" in models and len(models) > 1)


def headline_metric(metrics: dict[str, Any]) -> str | None:
    """The metric the verdict speaks about: the early-stopping one if reported, else a fallback."""
    fine = scalar_metrics(metrics.get("fine_tuned"))
    chosen = metrics.get("early_stopping_metric")
    if isinstance(chosen, str):
        for name in (chosen, chosen.removeprefix("val_")):
            if name in fine:
                return name
    return next((name for name in HEADLINE_FALLBACKS if name in fine), None)


def _option_name(metrics: dict[str, Any], key: str) -> str:
    if key == "base":
        return "untuned base model"
    description = _description(metrics, key)
    return f"{description} baseline" if description else "baseline"


def _in_sentence(label: str) -> str:
    """'Macro-F1' -> 'macro-F1' mid-sentence, but acronyms such as 'ROUGE-L' keep their case."""
    return label if label[1:2].isupper() else label[:1].lower() + label[1:]


def _examples_phrase(metrics: dict[str, Any]) -> str:
    splits = metrics.get("splits")
    test = splits.get("test") if isinstance(splits, dict) else None
    return f" on {fmt.number(test)} test examples" if fmt.is_number(test) else ""


def verdict(metrics: dict[str, Any]) -> str:
    """One sentence a manager can act on: did fine-tuning beat the cheaper options, by how much."""
    name = headline_metric(metrics)
    if name is None:
        return "No fine-tuned test metrics were recorded, so the run cannot be judged."
    fine = scalar_metrics(metrics.get("fine_tuned"))[name]
    metric, on_n = _in_sentence(fmt.label(name)), _examples_phrase(metrics)
    others = {
        key: values[name]
        for key, values in present_models(metrics).items()
        if key != "fine_tuned" and name in values
    }
    if not others:
        return (
            f"The fine-tuned model reached {metric} {fmt.number(fine)}{on_n}; "
            "no cheaper option was measured for comparison."
        )
    best_key = min(others, key=others.get) if lower_is_better(name) else max(others, key=others.get)
    best, option = others[best_key], _option_name(metrics, best_key)
    if _is_improvement(fine, best, name):
        direction = "lowered" if lower_is_better(name) else "raised"
        return (
            f"Fine-tuning {direction} {metric} from {fmt.number(best)} (best cheaper option: "
            f"{option}) to {fmt.number(fine)} ({fmt.signed(fine - best)}){on_n}."
        )
    return (
        f"Fine-tuning did not beat the {option}: {metric} {fmt.number(fine)} vs "
        f"{fmt.number(best)}{on_n}; consider using that cheaper option instead, "
        "or revisiting the training data and settings."
    )
