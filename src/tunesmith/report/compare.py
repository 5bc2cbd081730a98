"""Before/after comparison of the fine-tuned model with its cheaper alternatives, and the verdict.

Metric names are handled generically so the same table serves classifiers (accuracy, macro_f1)
and LLMs (loss, perplexity, rouge_l, exact_match).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunesmith.evaluate.metrics import lower_is_better
from tunesmith.report import fmt

# Cheapest first, so the fine-tuned column sits last where the eye ends.
MODELS = (("baseline", "Baseline"), ("base", "Base model"), ("fine_tuned", "Fine-tuned"))
PREFERRED_ORDER = (
    "accuracy",
    "macro_f1",
    "loss",
    "perplexity",
    "rouge_l",
    "exact_match",
    "token_f1",
)
HEADLINE_FALLBACKS = ("macro_f1", "accuracy", "rouge_l", "loss")
# Numbers that describe a result rather than score it: never a row of the table.
METADATA_KEYS = frozenset({"generated", "seconds_per_answer", "prompt_tokens"})
# Scores of generated answers against the reference answers (the rest score the test text).
GENERATION_METRICS = ("rouge_l", "exact_match", "token_f1", "bleu")
CLASSIFICATION_METRICS = ("accuracy", "macro_f1")
# What a causal-LM verdict speaks about: how well the model fits the test text (perplexity, or
# loss when perplexity is missing) and how close its answers come to the references.
LM_VERDICT_METRICS = (("perplexity", "loss"), ("rouge_l",))


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
    generation_note: str = ""


def scalar_metrics(result: Any) -> dict[str, float]:
    """The plain numeric scores of one model's results (per_class, matrices, text and metadata
    such as the number of generated answers are skipped)."""
    if not isinstance(result, dict):
        return {}
    return {
        key: val for key, val in result.items() if fmt.is_number(val) and key not in METADATA_KEYS
    }


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


def _generated_counts(metrics: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """How many answers each model generated for the generation scores, where recorded."""
    results = {key: metrics.get(key) for key in keys}
    return {
        key: result["generated"]
        for key, result in results.items()
        if isinstance(result, dict) and fmt.is_number(result.get("generated"))
    }


def _join(parts: list[str], conjunction: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'."""
    return f" {conjunction} ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 2 else parts)


def _generation_note(metrics: dict[str, Any], names: list[str], keys: list[str]) -> str:
    """Says how many generated answers the generation scores rest on (often fewer than the test
    split, since generating is slow), instead of showing that count as if it were a score."""
    counts = _generated_counts(metrics, keys)
    scored = [_in_sentence(fmt.label(name)) for name in names if name in GENERATION_METRICS]
    if not counts or not scored:
        return ""
    what = _join(scored)
    if len(set(counts.values())) == 1:
        count = fmt.number(next(iter(counts.values())))
        return f"{what} compare {count} generated answers per model with the reference answers."
    titles = dict(MODELS)
    per_model = ", ".join(f"{titles[key].lower()}: {fmt.number(n)}" for key, n in counts.items())
    return f"{what} compare generated answers with the reference answers ({per_model})."


def compare(metrics: dict[str, Any]) -> Comparison:
    """Rows = every scalar metric any model reports; columns = models present, cheapest first."""
    models = present_models(metrics)
    columns = [
        Column(key, title, _description(metrics, key)) for key, title in MODELS if key in models
    ]
    names = metric_order(set().union(*models.values()) if models else set())
    rows = [_row(name, models) for name in names]
    return Comparison(
        columns,
        rows,
        has_change="fine_tuned" in models and len(models) > 1,
        generation_note=_generation_note(metrics, names, list(models)),
    )


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


def is_generative(metrics: dict[str, Any], task: str | None = None) -> bool:
    """A run of a task kind that writes answers; without a known task kind, judged by its
    metrics."""
    from tunesmith.tasks.registry import task_kinds

    kind = task_kinds().get(task or metrics.get("task") or "")
    if kind is not None:
        return kind.generative
    fine = scalar_metrics(metrics.get("fine_tuned"))
    lm_metrics = ("perplexity", *GENERATION_METRICS)
    return any(name in fine for name in lm_metrics) and not any(
        name in fine for name in CLASSIFICATION_METRICS
    )


def _scope(metrics: dict[str, Any], name: str) -> str:
    """' on 101 test examples', or ' on 50 generated answers' for generation scores when only
    part of the test split was generated."""
    on_test = _examples_phrase(metrics)
    if name in GENERATION_METRICS:
        counts = _generated_counts(metrics, ["fine_tuned"])
        splits = metrics.get("splits")
        test = splits.get("test") if isinstance(splits, dict) else None
        if counts and counts["fine_tuned"] != test:
            return f" on {fmt.number(counts['fine_tuned'])} generated answers"
    return on_test


def _lm_clause(name: str, before: float, after: float) -> tuple[str, int]:
    """What fine-tuning did to one metric, and whether that was better (1), worse (-1) or same."""
    metric, old, new = _in_sentence(fmt.label(name)), fmt.number(before), fmt.number(after)
    if old == new:
        return f"left {metric} unchanged at {old}", 0
    if _is_improvement(after, before, name):
        direction = "lowered" if lower_is_better(name) else "raised"
        return f"{direction} {metric} from {old} to {new}", 1
    return f"made {metric} worse, from {old} to {new}", -1


def _lm_advice(outcomes: list[int]) -> str:
    if all(outcome <= 0 for outcome in outcomes) and -1 in outcomes:
        return (
            " The untuned base model did better: revisit the training data and settings "
            "before using this model."
        )
    if 1 in outcomes and -1 in outcomes:
        return " The two measures disagree: read the answers side by side before using it."
    return ""


def _lm_names(fine: dict[str, float]) -> list[str]:
    """Perplexity (or loss) and ROUGE-L, those of them the fine-tuned model reports."""
    found = (next((name for name in group if name in fine), None) for group in LM_VERDICT_METRICS)
    return [name for name in found if name is not None]


def _with_scopes(
    metrics: dict[str, Any], clauses: list[str], names: list[str], conjunction: str = "and"
) -> str:
    """One trailing 'on N test examples' when every clause rests on the same examples, else each
    clause names its own."""
    scopes = [_scope(metrics, name) for name in names]
    if len(set(scopes)) == 1:
        return _join(clauses, conjunction) + scopes[0]
    scoped = [clause + scope for clause, scope in zip(clauses, scopes, strict=True)]
    return _join(scoped, conjunction)


def _lm_verdict(metrics: dict[str, Any]) -> str | None:
    """Before/after for a causal LM: perplexity AND ROUGE-L against the untuned base model."""
    fine = scalar_metrics(metrics.get("fine_tuned"))
    base = scalar_metrics(metrics.get("base"))
    names = _lm_names(fine)
    if not names:
        return None
    compared = [name for name in names if name in base]
    if not compared:
        reached = [f"{_in_sentence(fmt.label(name))} {fmt.number(fine[name])}" for name in names]
        return (
            f"The fine-tuned model reached {_with_scopes(metrics, reached, names)}; "
            "the untuned base model was not measured for comparison."
        )
    clauses = [_lm_clause(name, base[name], fine[name]) for name in compared]
    outcomes = [outcome for _, outcome in clauses]
    conjunction = "and" if len(set(outcomes)) == 1 else "but"
    text = _with_scopes(metrics, [clause for clause, _ in clauses], compared, conjunction)
    return f"Fine-tuning {text}.{_lm_advice(outcomes)}"


def verdict(metrics: dict[str, Any]) -> str:
    """One sentence a manager can act on: did fine-tuning beat the cheaper options, by how much."""
    lm_sentence = _lm_verdict(metrics) if is_generative(metrics) else None
    if lm_sentence is not None:
        return lm_sentence
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
