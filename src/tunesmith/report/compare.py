"""Before/after comparison of the fine-tuned model with its cheaper alternatives, and the verdict.

Metric names are handled generically so the same table serves classifiers (accuracy, macro_f1)
and LLMs (loss, perplexity, rouge_l, exact_match).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunesmith.evaluate.contenders import LABELS as CONTENDER_LABELS
from tunesmith.evaluate.contenders import TUNED, Difference, paired_bootstrap
from tunesmith.evaluate.metrics import lower_is_better
from tunesmith.i18n import N_, _
from tunesmith.report import fmt

# Cheapest first, so the fine-tuned column sits last where the eye ends.
MODELS = (
    ("baseline", N_("Baseline")),
    ("base", N_("Base model")),
    ("fine_tuned", N_("Fine-tuned")),
)
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
PROPORTIONS = frozenset({"accuracy", "exact_match", "subset_accuracy"})
"""Metrics that are a share of examples scored right: the ones whose noise the number of
test examples tells (a binomial interval) when there are no per-example scores."""
Z_95 = 1.96
SERVING = {
    "baseline": N_("costs almost nothing to train or serve"),
    "base": N_("needs no fine-tuning"),
}
"""Why a cheaper option within noise of the fine-tune is the one to use."""


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
        return _("{method} fine-tuning").format(method=metrics["method"])
    return ""


def _settings_note(result: Any) -> str:
    """A cheaper option's chosen settings (the logistic regression's C), as a note on its
    name: a setting, never a metric row."""
    settings = result.get("settings") if isinstance(result, dict) else None
    if not isinstance(settings, dict) or not settings:
        return ""
    text = _("{settings}, chosen on the validation split").format(settings=fmt.value(settings))
    return f" ({text})"


def _change(fine: float | None, others: list[float], name: str) -> tuple[str, str]:
    if fine is None or not others:
        return fmt.MISSING, ""
    best_other = _best(others, name)
    delta = fine - best_other
    if delta == 0:
        return _("{delta} (same)").format(delta=fmt.signed(delta)), ""
    if _is_improvement(fine, best_other, name):
        return _("{delta} (better)").format(delta=fmt.signed(delta)), "good"
    return _("{delta} (worse)").format(delta=fmt.signed(delta)), "bad"


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
    joint = _(" and ") if conjunction == "and" else _(" but ")
    return joint.join([_(", ").join(parts[:-1]), parts[-1]] if len(parts) > 2 else parts)


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
        return _(
            "{what} compare {count} generated answers per model with the reference answers."
        ).format(what=what, count=count)
    titles = dict(MODELS)
    per_model = _(", ").join(
        f"{_(titles[key]).lower()}: {fmt.number(n)}" for key, n in counts.items()
    )
    return _("{what} compare generated answers with the reference answers ({counts}).").format(
        what=what, counts=per_model
    )


def compare(metrics: dict[str, Any]) -> Comparison:
    """Rows = every scalar metric any model reports; columns = models present, cheapest first."""
    models = present_models(metrics)
    columns = [
        Column(
            key, _(title), (_description(metrics, key) + _settings_note(metrics.get(key))).strip()
        )
        for key, title in MODELS
        if key in models
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
        return _("untuned base model")
    description = _description(metrics, key)
    return (
        _("{description} baseline").format(description=description)
        if description
        else _("baseline")
    )


def _in_sentence(label: str) -> str:
    """'Macro-F1' -> 'macro-F1' mid-sentence, but acronyms such as 'ROUGE-L' keep their case."""
    return label if label[1:2].isupper() else label[:1].lower() + label[1:]


def _examples_phrase(metrics: dict[str, Any]) -> str:
    splits = metrics.get("splits")
    test = splits.get("test") if isinstance(splits, dict) else None
    if not fmt.is_number(test):
        return ""
    return " " + _("on {count} test examples").format(count=fmt.number(test))


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
            count = fmt.number(counts["fine_tuned"])
            return " " + _("on {count} generated answers").format(count=count)
    return on_test


def _lm_clause(name: str, before: float, after: float) -> tuple[str, int]:
    """What fine-tuning did to one metric, and whether that was better (1), worse (-1) or same."""
    metric, old, new = _in_sentence(fmt.label(name)), fmt.number(before), fmt.number(after)
    if old == new:
        return _("left {metric} unchanged at {old}").format(metric=metric, old=old), 0
    if _is_improvement(after, before, name):
        text = (
            _("lowered {metric} from {old} to {new}")
            if lower_is_better(name)
            else _("raised {metric} from {old} to {new}")
        )
        return text.format(metric=metric, old=old, new=new), 1
    return _("made {metric} worse, from {old} to {new}").format(metric=metric, old=old, new=new), -1


def _lm_advice(outcomes: list[int]) -> str:
    if all(outcome <= 0 for outcome in outcomes) and -1 in outcomes:
        return " " + _(
            "The untuned base model did better: revisit the training data and settings "
            "before using this model."
        )
    if 1 in outcomes and -1 in outcomes:
        return " " + _("The two measures disagree: read the answers side by side before using it.")
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


def _answer_scores(rows: Sequence[dict[str, Any]], key: str) -> list[float] | None:
    """One model's ROUGE-L per prompt from generations.jsonl (its stored score, else scored
    here against the reference); None unless every row has that model's answer."""
    from tunesmith.evaluate.generation import rouge_l

    scores = []
    for row in rows:
        stored = ((row.get("scores") or {}).get(key.replace("_", "-")) or {}).get("rouge_l")
        if fmt.is_number(stored):
            scores.append(float(stored))
        elif isinstance(row.get(key), str) and isinstance(row.get("reference"), str):
            scores.append(rouge_l(row[key], row["reference"]))
        else:
            return None
    return scores or None


def _contenders_advice(metrics: dict[str, Any]) -> str:
    """From the contenders' paired bootstrap (metrics.json `verdict`): the untrained option
    to use when it is the cheapest within noise of the best; '' when training pays."""
    judged = metrics.get("verdict")
    if not isinstance(judged, dict):
        return ""
    cheapest, best = judged.get("cheapest_within_noise"), judged.get("best")
    prompts = judged.get("prompts")
    if not isinstance(cheapest, str) or cheapest in TUNED or not fmt.is_number(prompts):
        return ""
    label = _(CONTENDER_LABELS[cheapest]) if cheapest in CONTENDER_LABELS else cheapest
    metric = fmt.label(str(judged.get("metric") or "rouge_l"))
    if cheapest == best:
        text = _(
            "On the answers, {option} scored best ({metric}, paired bootstrap over {count} "
            "prompts) and needs no training: use it."
        )
        return " " + text.format(option=label, metric=metric, count=fmt.number(prompts))
    best_label = _(CONTENDER_LABELS[best]) if best in CONTENDER_LABELS else str(best)
    text = _(
        "On the answers, {option} is within noise of the best, {best} ({metric}, paired "
        "bootstrap over {count} prompts), and needs no training: use it."
    )
    return " " + text.format(
        option=label, best=best_label, metric=metric, count=fmt.number(prompts)
    )


def _bootstrap_advice(generations: Sequence[dict[str, Any]]) -> str:
    """The paired bootstrap of the fine-tuned against the base model's ROUGE-L per prompt:
    the base model named when the gain is within noise."""
    tuned, base = _answer_scores(generations, "fine_tuned"), _answer_scores(generations, "base")
    if tuned is None or base is None or len(tuned) != len(base):
        return ""
    gap: Difference = paired_bootstrap(tuned, base)
    interval = _(
        "ROUGE-L {mean}, 95% interval {low} to {high}, paired bootstrap over {count} prompts"
    ).format(
        mean=fmt.signed(gap.mean),
        low=fmt.signed(gap.low),
        high=fmt.signed(gap.high),
        count=fmt.number(len(tuned)),
    )
    if gap.within_noise:
        text = _(
            "On the answers, the untuned base model is within noise of the fine-tuned one "
            "({interval}) and needs no training: use it, unless the better fit of the test "
            "text matters."
        )
        return " " + text.format(interval=interval)
    if gap.low > 0:
        return " " + _("The ROUGE-L gain is beyond noise ({interval}).").format(interval=interval)
    return ""


def _lm_verdict(metrics: dict[str, Any], generations: Sequence[dict[str, Any]] = ()) -> str | None:
    """Before/after for a causal LM: perplexity AND ROUGE-L against the untuned base model;
    where the answers say a cheaper option is as good (paired bootstrap), it is named."""
    fine = scalar_metrics(metrics.get("fine_tuned"))
    base = scalar_metrics(metrics.get("base"))
    names = _lm_names(fine)
    if not names:
        return None
    compared = [name for name in names if name in base]
    if not compared:
        reached = [f"{_in_sentence(fmt.label(name))} {fmt.number(fine[name])}" for name in names]
        return _(
            "The fine-tuned model reached {reached}; the untuned base model was not measured "
            "for comparison."
        ).format(reached=_with_scopes(metrics, reached, names))
    clauses = [_lm_clause(name, base[name], fine[name]) for name in compared]
    outcomes = [outcome for _, outcome in clauses]
    conjunction = "and" if len(set(outcomes)) == 1 else "but"
    text = _with_scopes(metrics, [clause for clause, _ in clauses], compared, conjunction)
    advice = _lm_advice(outcomes)
    raised = dict(zip(compared, outcomes, strict=True)).get("rouge_l") == 1
    if raised:
        advice += _contenders_advice(metrics) or _bootstrap_advice(generations)
    return _("Fine-tuning {outcome}.").format(outcome=text) + advice


def proportion_noise(first: float, second: float, examples: int) -> float:
    """Half the width of the 95% interval of the difference of two shares of `examples`
    scored right (normal approximation, unpaired: wider than a paired test would be, so a
    difference beyond it is not noise)."""
    variance = (first * (1 - first) + second * (1 - second)) / examples
    return Z_95 * math.sqrt(max(variance, 0.0))


@dataclass(frozen=True)
class Noise:
    """Whether two models' scores differ by more than a different draw of test examples
    could give, judged on `metric` (the headline, or accuracy standing in for it)."""

    metric: str
    first: float
    second: float
    margin: float
    examples: int

    @property
    def within(self) -> bool:
        return abs(self.first - self.second) <= self.margin

    def clause(self) -> str:
        """'accuracy 0.880 vs 0.900, ±0.069 at 95% on 200 test examples' (second vs first)."""
        return _("{metric} {second} vs {first}, ±{margin} at 95% on {count} test examples").format(
            metric=_in_sentence(fmt.label(self.metric)),
            second=fmt.number(self.second),
            first=fmt.number(self.first),
            margin=fmt.number(self.margin),
            count=fmt.number(self.examples),
        )


def binomial_noise(metrics: dict[str, Any], first: str, second: str, name: str) -> Noise | None:
    """The binomial noise between two models' test scores: on `name` when it is a share of
    examples, else on accuracy when both report it; None when the test size is unknown."""
    test = (metrics.get("splits") or {}).get("test") if isinstance(metrics, dict) else None
    if not fmt.is_number(test) or test <= 0:
        return None
    a, b = scalar_metrics(metrics.get(first)), scalar_metrics(metrics.get(second))
    for metric in (name, "accuracy"):
        if metric in PROPORTIONS and metric in a and metric in b:
            x, y = a[metric], b[metric]
            if 0 <= x <= 1 and 0 <= y <= 1:
                return Noise(metric, x, y, proportion_noise(x, y, int(test)), int(test))
    return None


def _cheapest_within_noise(
    metrics: dict[str, Any], best: str, scores: dict[str, float], name: str
) -> tuple[str, Noise | None]:
    """The cheapest model (MODELS order) whose score is within noise of the best one's, and
    that noise judgement (the best itself and None when none is, or noise cannot be told)."""
    for key, _title in MODELS:
        if key == best:  # only the options before it in MODELS are cheaper
            break
        noise = binomial_noise(metrics, best, key, name) if key in scores else None
        if noise is not None and noise.within:
            return key, noise
    return best, None


def verdict(metrics: dict[str, Any], generations: Sequence[dict[str, Any]] = ()) -> str:
    """One sentence a manager can act on: did fine-tuning beat the cheaper options, by how
    much, beyond noise; where a cheaper option is within noise of the best, it is named as
    the one to use. `generations`: generations.jsonl's rows (per-prompt answers), for the
    paired bootstrap of a generative run."""
    lm_sentence = _lm_verdict(metrics, generations) if is_generative(metrics) else None
    if lm_sentence is not None:
        return lm_sentence
    name = headline_metric(metrics)
    if name is None:
        return _("No fine-tuned test metrics were recorded, so the run cannot be judged.")
    fine = scalar_metrics(metrics.get("fine_tuned"))[name]
    metric, on_n = _in_sentence(fmt.label(name)), _examples_phrase(metrics)
    others = {
        key: values[name]
        for key, values in present_models(metrics).items()
        if key != "fine_tuned" and name in values
    }
    if not others:
        return _(
            "The fine-tuned model reached {metric} {score}{scope}; no cheaper option was "
            "measured for comparison."
        ).format(metric=metric, score=fmt.number(fine), scope=on_n)
    best_key = min(others, key=others.get) if lower_is_better(name) else max(others, key=others.get)
    best, option = others[best_key], _option_name(metrics, best_key)
    if _is_improvement(fine, best, name):
        sentence = (
            _(
                "Fine-tuning lowered {metric} from {best} (best cheaper option: {option}) to "
                "{score} ({change}){scope}."
            )
            if lower_is_better(name)
            else _(
                "Fine-tuning raised {metric} from {best} (best cheaper option: {option}) to "
                "{score} ({change}){scope}."
            )
        ).format(
            metric=metric,
            best=fmt.number(best),
            option=option,
            score=fmt.number(fine),
            change=fmt.signed(fine - best),
            scope=on_n,
        )
        cheapest, noise = _cheapest_within_noise(metrics, "fine_tuned", others, name)
        if noise is not None:
            text = _(
                "But the {option} is within noise of the fine-tuned model ({noise}) and "
                "{why}: use it."
            )
            return f"{sentence} " + text.format(
                option=_option_name(metrics, cheapest), noise=noise.clause(), why=_serving(cheapest)
            )
        beyond = binomial_noise(metrics, best_key, "fine_tuned", name)
        if beyond is not None:
            text = _("The gain is beyond the noise ({noise}).")
            sentence += " " + text.format(noise=beyond.clause())
        return sentence
    sentence = _(
        "Fine-tuning did not beat the {option}: {metric} {score} vs {best}{scope}; consider "
        "using that cheaper option instead, or revisiting the training data and settings."
    ).format(
        option=option, metric=metric, score=fmt.number(fine), best=fmt.number(best), scope=on_n
    )
    cheapest, noise = _cheapest_within_noise(metrics, best_key, others, name)
    if noise is not None:
        text = _("The {option} is within noise of the {best} ({noise}) and {why}: use it.")
        sentence += " " + text.format(
            option=_option_name(metrics, cheapest),
            best=option,
            noise=noise.clause(),
            why=_serving(cheapest),
        )
    return sentence


def _serving(key: str) -> str:
    """Why a cheaper option within noise is the one to use."""
    return _(SERVING[key]) if key in SERVING else _("costs less")
