"""Collect a run folder into template-ready sections and render the HTML report.

All numbers are formatted here, so the template only lays out text and never computes.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from tunesmith import i18n
from tunesmith.evaluate.generation import rouge_l
from tunesmith.evaluate.metrics import lower_is_better
from tunesmith.i18n import N_, _
from tunesmith.report import fmt, load, plots
from tunesmith.report.compare import compare, is_generative, verdict
from tunesmith.report.rag import rag_section
from tunesmith.run_folder import RunFolder
from tunesmith.version import __version__

Rows = list[tuple[str, str]]

_TRAIN_KEYS = ("epochs", "learning_rate", "batch_size")
_DATA_KEYS = ("train", "validation", "test")
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
_FIRST_ROWS = 10
_FIRST_LABELS = 20
_MAX_SAMPLES = 100
# The answers shown for each sample, in reading order: what was wanted, then before and after.
_SAMPLE_ANSWERS = (
    ("reference", N_("Reference answer"), "reference"),
    ("base", N_("Base model"), "base"),
    ("few_shot", N_("Few-shot prompt"), "base"),
    ("rag", N_("RAG (base model)"), "base"),
    ("fine_tuned", N_("Fine-tuned"), "fine-tuned"),
    ("fine_tuned_rag", N_("Fine-tuned + RAG"), "fine-tuned"),
)
_MAX_PASSAGE_CHARS = 600


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _settings(values: dict[str, Any], first: tuple[str, ...] = ()) -> str:
    """'key=value' pairs, the important keys first, nested mappings left out to stay compact."""
    keys = [key for key in first if key in values]
    keys += [key for key in values if key not in keys]
    pairs = [
        f"{key}=[{fmt.value(val)}]" if isinstance(val, list) else f"{key}={fmt.value(val)}"
        for key in keys
        if not isinstance(val := values[key], dict)
    ]
    return ", ".join(pairs) or fmt.MISSING


def _method_text(recipe: dict[str, Any], metrics: dict[str, Any]) -> str:
    method = _mapping(recipe.get("method"))
    name = method.get("name") or metrics.get("method")
    options = {key: val for key, val in method.items() if key != "name"}
    if not options:
        return fmt.value(name)
    return f"{fmt.value(name)} ({_settings(options)})"


def _truncated_text(count: Any, max_length: Any) -> str | None:
    """'3 truncated to 512 tokens' when any example of the split was cut short."""
    if not fmt.is_number(count) or count <= 0:
        return None
    if fmt.is_number(max_length):
        return _("{count} truncated to {limit} tokens").format(
            count=fmt.value(count), limit=fmt.value(max_length)
        )
    return _("{count} truncated").format(count=fmt.value(count))


def _data_rows(recipe: dict[str, Any], metrics: dict[str, Any]) -> Rows:
    data, splits = _mapping(recipe.get("data")), _mapping(metrics.get("splits"))
    truncated = _mapping(metrics.get("truncated"))
    max_length = _mapping(recipe.get("preprocess")).get("max_length")
    rows = []
    for split in dict.fromkeys([*_DATA_KEYS, *splits, *truncated]):
        cut = _truncated_text(truncated.get(split), max_length)
        if split in data or split in splits or cut:
            parts = [str(data[split])] if data.get(split) else []
            examples = _("{count} examples").format(count=fmt.value(splits.get(split)))
            parts += [examples] if split in splits else []
            parts += [cut] if cut else []
            rows.append((_("Data: {split}").format(split=_split(split)), " · ".join(parts)))
    columns = {key: val for key, val in data.items() if key not in _DATA_KEYS}
    if columns:
        rows.append((_("Data: options"), _settings(columns)))
    elif metrics.get("format"):
        rows.append((_("Data: format"), fmt.value(metrics["format"])))
    return rows


SPLITS = {"train": N_("train"), "validation": N_("validation"), "test": N_("test")}


def _split(name: str) -> str:
    """A split's name in the language written ('test' -> 'テスト'); others as they are."""
    return _(SPLITS[name]) if name in SPLITS else name


def _recipe_section_rows(recipe: dict[str, Any], metrics: dict[str, Any]) -> Rows:
    """Preprocessing for every task; generation settings only where answers are generated."""
    rows = []
    preprocess = _mapping(recipe.get("preprocess"))
    if preprocess:
        rows.append((_("Preprocessing"), _settings(preprocess, ("max_length",))))
    generation = _mapping(recipe.get("generation"))
    task = recipe.get("task") or metrics.get("task")
    if generation and is_generative(metrics, task):
        rows.append((_("Generation"), _settings(generation, ("max_new_tokens", "do_sample"))))
    return rows


def _training_used(train: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """The training settings as used: defaults the recipe left open resolved from what the
    run recorded (the method's learning rate, the planned epochs of `auto`, the precision
    and device chosen); keys left unset (null) are left out."""
    used = {key: val for key, val in train.items() if val is not None}
    if not train:
        return used
    if "learning_rate" not in used and fmt.is_number(metrics.get("learning_rate")):
        used["learning_rate"] = metrics["learning_rate"]
    if used.get("epochs") == "auto" and fmt.is_number(metrics.get("planned_epochs")):
        epochs = fmt.quantity(metrics["planned_epochs"])
        used["epochs"] = _("{epochs} (auto)").format(epochs=epochs)
    for key in ("precision", "device"):
        if used.get(key) == "auto" and metrics.get(key):
            used[key] = _("{value} (auto)").format(value=metrics[key])
    return used


def setup_rows(recipe: dict[str, Any], metrics: dict[str, Any]) -> Rows:
    """What was trained on what; the recipe wins, metrics.json fills in when it is missing."""
    rows = [
        (_("Task"), fmt.value(recipe.get("task") or metrics.get("task"))),
        (_("Model"), fmt.value(recipe.get("model") or metrics.get("model"))),
        (_("Method"), _method_text(recipe, metrics)),
    ]
    train = _training_used(_mapping(recipe.get("train")), metrics)
    if train:
        rows.append((_("Training"), _settings(train, _TRAIN_KEYS)))
    rows += _recipe_section_rows(recipe, metrics)
    rows += _data_rows(recipe, metrics)
    labels = metrics.get("labels")
    if isinstance(labels, list) and labels:
        extra = len(labels) - _FIRST_LABELS
        more = _(", … (+{count} more)").format(count=extra) if extra > 0 else ""
        title = _("Labels ({count})").format(count=len(labels))
        rows.append((title, fmt.value(labels[:_FIRST_LABELS]) + more))
    if recipe.get("output_dir"):
        rows.append((_("Output folder"), fmt.value(recipe["output_dir"])))
    return rows


def training_rows(metrics: dict[str, Any], history: list[dict[str, Any]]) -> Rows:
    """How training ended: which checkpoint was kept and why it stopped."""
    rows = []
    if "best_step" in metrics:
        rows.append((_("Best step (kept)"), fmt.value(metrics["best_step"])))
    if "early_stopping_metric" in metrics:
        rows.append((_("Early-stopping metric"), fmt.value(metrics["early_stopping_metric"])))
    if "stopped_early" in metrics:
        rows.append((_("Stopped early"), fmt.value(metrics["stopped_early"])))
    if metrics.get("stop_reason"):
        rows.append((_("Stop reason"), str(metrics["stop_reason"])))
    epochs = [row["epoch"] for row in history if fmt.is_number(row.get("epoch"))]
    if epochs:
        rows.append((_("Epochs run"), fmt.quantity(max(epochs))))
    return rows


def _median_of(history: list[dict[str, Any]], key: str) -> float | None:
    values = [row[key] for row in history if fmt.is_number(row.get(key))]
    return statistics.median(values) if values else None


def _params_text(params: dict[str, Any]) -> str | None:
    total, trainable = params.get("total"), params.get("trainable")
    if fmt.is_number(total) and fmt.is_number(trainable) and total > 0:
        return _("{trainable} of {total} ({share}%)").format(
            trainable=fmt.count(trainable),
            total=fmt.count(total),
            share=i18n.number(f"{100 * trainable / total:.2f}"),
        )
    if fmt.is_number(total):
        return _("{count} in total").format(count=fmt.count(total))
    return None


def _kind(metrics: dict[str, Any]) -> Any:
    """The run's task kind (its inputs: text or image), None for an unknown one."""
    from tunesmith.tasks.registry import task_kinds

    return task_kinds().get(str(metrics.get("task") or ""))


def _throughput(metrics: dict[str, Any], history: list[dict[str, Any]], key: str) -> tuple:
    """(value, median?) of a throughput: the run's own over its training steps (metrics.json
    `<key>_second`), else the median of its evaluations (history's `<key>_s`)."""
    overall = metrics.get(f"{key}_second")
    if fmt.is_number(overall):
        return overall, False
    return _median_of(history, f"{key}_s"), True


def throughput_rows(metrics: dict[str, Any], history: list[dict[str, Any]]) -> Rows:
    """Training throughput in the task's own unit: images/s for images; examples/s and
    tokens/s for text (both measured); never tokens for a model that reads no tokens."""
    kind = _kind(metrics)
    samples, samples_median = _throughput(metrics, history, "samples_per")
    tokens, tokens_median = _throughput(metrics, history, "tokens_per")
    if kind is not None and kind.inputs == "image":
        wanted = [(_("Images per second"), samples, samples_median, "images/s")]
    elif kind is not None:
        wanted = [
            (_("Examples per second"), samples, samples_median, "examples/s"),
            (_("Tokens per second"), tokens, tokens_median, "tokens/s"),
        ]
    else:  # an unknown kind: tokens only where they differ from the samples
        wanted = [(_("Samples per second"), samples, samples_median, "samples/s")]
        if fmt.is_number(tokens) and tokens != samples:
            wanted.append((_("Tokens per second"), tokens, tokens_median, "tokens/s"))
    return [
        (_("{name} (median)").format(name=name) if median else name, fmt.unit(value, unit))
        for name, value, median, unit in wanted
        if fmt.is_number(value)
    ]


def _peak_memory_name(metrics: dict[str, Any]) -> str:
    """metrics.json's peak_memory_mb is the process's RSS on a CPU, the CUDA peak on a GPU."""
    if metrics.get("device") == "cuda":
        return _("Peak memory (CUDA)")
    if metrics.get("device") == "cpu":
        return _("Peak memory (process RSS)")
    return _("Peak memory")


def cost_rows(
    metrics: dict[str, Any], history: list[dict[str, Any]], recipe: dict[str, Any] | None = None
) -> Rows:
    """What the run cost: wall time end to end and by phase, its price when the recipe's
    report.price_per_hour is set, the training steps alone, memory, throughput, trained
    weights and hardware."""
    rows = phase_rows(metrics) + price_rows(metrics, _mapping(_mapping(recipe).get("report")))
    train = metrics.get("train_seconds")
    if fmt.is_number(train):
        rows.append((_("Training steps alone (no evaluations)"), fmt.unit(train, "s")))
    if fmt.is_number(metrics.get("peak_memory_mb")):
        rows.append((_peak_memory_name(metrics), fmt.unit(metrics["peak_memory_mb"], "MB")))
    rows += throughput_rows(metrics, history)
    params = _params_text(_mapping(metrics.get("params")))
    if params:
        rows.append((_("Trainable parameters"), params))
    rows += [
        (fmt.label(key), str(metrics[key])) for key in ("precision", "device") if metrics.get(key)
    ]
    return rows


def _money(amount: float) -> str:
    """An amount of money: two decimals, or two significant digits below a cent."""
    return i18n.number(f"{amount:.2g}" if 0 < amount < 0.01 else f"{amount:,.2f}")


def price_rows(metrics: dict[str, Any], report: dict[str, Any]) -> Rows:
    """Wall time as money, at the recipe's report.price_per_hour (in report.currency)."""
    price, wall = report.get("price_per_hour"), metrics.get("wall_seconds")
    if not fmt.is_number(price) or not fmt.is_number(wall):
        return []
    currency = str(report.get("currency") or "USD")
    text = _("{amount} {currency} ({hours} h of wall time at {price} {currency} per hour)")
    return [
        (
            _("Compute cost"),
            text.format(
                amount=_money(price * wall / 3600),
                currency=currency,
                hours=fmt.quantity(wall / 3600),
                price=fmt.quantity(price),
            ),
        )
    ]


PHASE_NAMES = {
    "setup": N_("Checks and setup"),
    "data_check": N_("Data check"),
    "load": N_("Loading data and model"),
    "score_before": N_("Scoring the cheaper options"),
    "training": N_("Training (with its evaluations)"),
    "score_after": N_("Scoring the fine-tuned model"),
    "save": N_("Saving the model"),
    "report": N_("Report"),
}


def phase_rows(metrics: dict[str, Any]) -> Rows:
    """The whole command's wall time, and each phase's (what the user waited for)."""
    wall = metrics.get("wall_seconds")
    if not fmt.is_number(wall):
        return []
    phases = _mapping(metrics.get("phase_seconds"))
    shown = fmt.unit(wall, "s")
    if phases and "report" not in phases:  # metrics.json as written just before this report
        shown = _("{time}, up to this report (writing it and the terminal summary came after)")
        shown = shown.format(time=fmt.unit(wall, "s"))
    rows = [(_("Wall time, end to end"), shown)]
    for key, seconds in phases.items():
        if fmt.is_number(seconds):
            name = _(PHASE_NAMES[key]) if key in PHASE_NAMES else fmt.label(key)
            rows.append((f"  {name}", fmt.unit(seconds, "s")))
    return rows


def per_class_rows(metrics: dict[str, Any]) -> list[list[str]]:
    """Precision/recall/F1/support per class, in label order, so weak classes stand out."""
    per_class = _mapping(_mapping(metrics.get("fine_tuned")).get("per_class"))
    labels = metrics.get("labels") if isinstance(metrics.get("labels"), list) else []
    ordered = [str(name) for name in labels if str(name) in per_class]
    ordered += [name for name in per_class if name not in ordered]
    keys = ("precision", "recall", "f1", "support")
    return [
        [name, *(fmt.number(_mapping(per_class[name]).get(key)) for key in keys)]
        for name in ordered
    ]


def slice_sections(metrics: dict[str, Any]) -> dict[str, Any]:
    """The Slices section (data.slice_columns): per column, each slice value's test rows and
    metrics (the headline first), the worst marked, and the warnings of slices far below
    the rest."""
    slices = _mapping(metrics.get("slices"))
    worst = _mapping(metrics.get("slices_worst"))
    warned = {
        (str(w.get("column")), str(w.get("value"))): w
        for w in metrics.get("slices_warnings") or []
        if isinstance(w, dict)
    }
    tables = []
    for column, values in slices.items():
        values = _mapping(values)
        headline = _mapping(worst.get(column)).get("metric")
        names = [headline] if headline else []
        for entry in values.values():
            names += [k for k in _mapping(entry) if k != "rows" and k not in names]
        names.sort(key=lambda name: (name != headline, lower_is_better(name)))  # loss last
        rows = []
        for value, entry in values.items():
            entry = _mapping(entry)
            rows.append(
                {
                    "value": str(value),
                    "rows": fmt.number(entry.get("rows")),
                    "cells": [fmt.number(entry.get(name)) for name in names],
                    "worst": _mapping(worst.get(column)).get("value") == value,
                    "warned": (str(column), str(value)) in warned,
                }
            )
        warnings = [_slice_warning(w) for (c, _v), w in warned.items() if c == str(column)]
        tables.append(
            {
                "column": str(column),
                "metrics": [fmt.label(name) for name in names],
                "rows": rows,
                "warnings": warnings,
            }
        )
    skipped = (
        _(
            "Metrics per slice are not available for this task kind: it gives no per-example "
            "test results."
        )
        if metrics.get("slices_skipped")
        else ""
    )
    return {"tables": tables, "skipped": skipped}


def _slice_warning(warning: dict[str, Any]) -> str:
    low, high = [*(warning.get("interval") or []), None, None][:2]
    return _(
        "{column} = {value} ({rows} test rows): {metric} {score} ({level} interval {low} to "
        "{high}) against {rest} on the other test rows; the whole interval is worse, so the "
        "gap is more than chance on this many rows."
    ).format(
        level="95%",
        column=warning.get("column"),
        value=warning.get("value"),
        rows=fmt.number(warning.get("rows")),
        metric=fmt.label(str(warning.get("metric"))),
        score=fmt.number(warning.get("score")),
        low=fmt.number(low),
        high=fmt.number(high),
        rest=fmt.number(warning.get("rest")),
    )


def _text(value: Any) -> str | None:
    """User text as written, less the blank lines around it; None for a missing value."""
    if value is None:
        return None
    return (value if isinstance(value, str) else str(value)).strip()


def _answer(item: dict[str, Any], key: str, title: str, css: str) -> dict[str, str] | None:
    """One answer of a sample, scored against the sample's reference when there is one."""
    text, reference = _text(item.get(key)), _text(item.get("reference"))
    if text is None:
        return None
    score = ""
    if key != "reference" and reference is not None:
        score = f"ROUGE-L {fmt.number(rouge_l(text, reference))}"
    return {"title": _(title), "text": text, "css": css, "score": score}


def _sample(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    answers = [_answer(item, *spec) for spec in _SAMPLE_ANSWERS]
    sample = {
        "prompt": _text(item.get("prompt")),
        "answers": [a for a in answers if a],
        "passages": _passages(item.get("passages")),
    }
    return sample if sample["prompt"] is not None or sample["answers"] else None


def _passages(items: Any) -> list[dict[str, str]]:
    """The passages a RAG prompt held: their document and text (long ones shortened)."""
    shown = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            text = _text(item.get("text")) or ""
            if len(text) > _MAX_PASSAGE_CHARS:
                text = text[:_MAX_PASSAGE_CHARS].rstrip() + " …"
            shown.append({"source": fmt.value(item.get("source")), "text": text})
    return shown


def answer_samples(metrics: dict[str, Any]) -> dict[str, Any]:
    """Prompts with the reference, base and fine-tuned answers; user text is kept verbatim (the
    template escapes it and keeps its line breaks)."""
    items = metrics.get("samples") if isinstance(metrics.get("samples"), list) else []
    samples = [sample for item in items if (sample := _sample(item))]
    shown = samples[:_MAX_SAMPLES]
    more = len(samples) - len(shown)
    note = (
        _("The first {shown} of {count} are shown.").format(shown=len(shown), count=len(samples))
        if more
        else ""
    )
    return {"shown": shown, "note": note}


def _finding_row(finding: dict[str, Any]) -> dict[str, str]:
    rows = finding.get("rows") if isinstance(finding.get("rows"), list) else []
    shown = ", ".join(str(row) for row in rows[:_FIRST_ROWS])
    more = f", … (+{len(rows) - _FIRST_ROWS})" if len(rows) > _FIRST_ROWS else ""
    severity = str(finding.get("severity") or "info").lower()
    return {
        "severity": severity,
        "severity_text": _(SEVERITIES[severity]) if severity in SEVERITIES else severity,
        "check": fmt.value(finding.get("check")),
        "split": _split(str(finding["split"])) if finding.get("split") else fmt.MISSING,
        "message": fmt.value(finding.get("message")),
        "fix": str(finding.get("fix") or ""),
        "count": fmt.number(len(rows)),
        "rows": shown + more or fmt.MISSING,
    }


SEVERITIES = {"error": N_("error"), "warning": N_("warning"), "info": N_("info")}


def findings(quality: Any) -> list[dict[str, str]]:
    """Data-quality findings, most severe first."""
    items = _mapping(quality).get("findings")
    rows = [_finding_row(item) for item in items or [] if isinstance(item, dict)]
    return sorted(rows, key=lambda row: _SEVERITY_ORDER.get(row["severity"], 3))


def _scalar_summary(quality: Any) -> Rows:
    summary = _mapping(_mapping(quality).get("summary"))
    return [
        (fmt.label(key), fmt.value(val))
        for key, val in summary.items()
        if not isinstance(val, (dict, list))
    ]


# The analytic peak on the other kind of device, and settings rather than quantities: the
# run measured none of them, so "predicted vs measured" leaves them out.
_ESTIMATE_SKIPPED = frozenset(
    {"cpu_peak_mb", "cuda_peak_mb", "method", "device", "precision", "calibrated_by_dry_run"}
)


def _estimate_label(key: str, device: Any) -> str:
    """The peak memory named by what it is on this run's device (RSS on a CPU)."""
    if key == "peak_memory_mb" and device == "cpu":
        return _("Peak memory, process RSS (MB)")
    if key == "peak_memory_mb" and device == "cuda":
        return _("Peak memory, CUDA (MB)")
    return fmt.label(key)


def estimate_rows(estimate: Any) -> list[list[str]]:
    """Predicted vs measured cost on the run's own device; the ratio shows how far to trust
    the next estimate."""
    predicted = _mapping(_mapping(estimate).get("predicted"))
    measured = _mapping(_mapping(estimate).get("measured"))
    device = predicted.get("device")
    rows = []
    for key in dict.fromkeys([*predicted, *measured]):
        guess, real = predicted.get(key), measured.get(key)
        if isinstance(guess, (dict, list)) or isinstance(real, (dict, list)):
            continue
        if key in _ESTIMATE_SKIPPED:
            continue
        ratio = (
            i18n.number(f"{real / guess:.2f}") + "×"
            if fmt.is_number(guess) and fmt.is_number(real) and guess
            else fmt.MISSING
        )
        rows.append([_estimate_label(key, device), fmt.value(guess), fmt.value(real), ratio])
    return rows


MEASURES = {
    "perplexity": N_("perplexity of the model on {reference}"),
    "representation_drift": N_(
        "representation drift (1 - linear CKA of the model's features) on {reference}"
    ),
    "imagenet_disagreement": N_(
        "share of {reference} whose class by the original ImageNet head changed"
    ),
}
"""What each forgetting measure is, in words (evaluate/forgetting.py)."""
REFERENCES = {
    "builtin:general-en": N_("public-domain English prose (builtin:general-en)"),
    "builtin:sample-photos": N_(
        "64 reference photos (crops of scikit-learn's two sample photographs)"
    ),
}
IMAGE_MEASURES = frozenset({"imagenet_disagreement", "representation_drift"})


def _forgetting_reference(metrics: dict[str, Any], forgetting: dict[str, Any]) -> str:
    """What the measure ran on, in words; an image run always measured the reference photos
    (runs written before metrics.json said so named the recipe's text reference)."""
    reference = str(forgetting.get("reference") or "")
    kind = _kind(metrics)
    if kind is not None and kind.inputs == "image" and forgetting.get("measure") in IMAGE_MEASURES:
        reference = "builtin:sample-photos"
    return _(REFERENCES[reference]) if reference in REFERENCES else reference or fmt.MISSING


def forgetting_rows(metrics: dict[str, Any]) -> Rows:
    """What was measured (in words, on what), how much the model got worse there, and what
    was done about it; a run without the guard says it was not measured."""
    forgetting = _mapping(metrics.get("forgetting"))
    if not forgetting:
        text = _("Not measured for this run (guards.forgetting.reference was off).")
        return [(_("What was measured"), text)]
    reference = _forgetting_reference(metrics, forgetting)
    measure = str(forgetting.get("measure") or "")
    what = _(MEASURES[measure]).format(reference=reference) if measure in MEASURES else measure
    rows = [(_("What was measured"), what or fmt.MISSING)]
    rows += [
        (fmt.label(key), fmt.value(val))
        for key, val in forgetting.items()
        if key not in ("reference", "measure", "retries_used", "rescue")
    ]
    retries = forgetting.get("retries_used")
    if fmt.is_number(retries) and retries > 0:
        rows.append((_("Retries used (rolled back, then training went on)"), fmt.value(retries)))
    return rows


RELATIVE_MEASURES = frozenset({"perplexity"})
"""Measures whose increase is relative (after / before - 1), shown as a percentage; the
others' increase is the measure itself (evaluate/forgetting.py)."""


def _forgetting_change(value: Any, measure: str, threshold: bool = False) -> str:
    """A forgetting increase (or the threshold) as its measure reads: '+4.8%' ('+5%') for a
    relative measure, the number itself for the others."""
    if not fmt.is_number(value):
        return fmt.MISSING
    if measure not in RELATIVE_MEASURES:
        return fmt.quantity(value) if threshold else fmt.number(value)
    return i18n.number(f"{100 * value:+.3g}%" if threshold else f"{value:+.1%}")


def _rescue_row(
    point: dict[str, Any], forgetting: dict[str, Any], metric: str, note: str = ""
) -> dict[str, Any]:
    """One line of the rescue's table: a coefficient, its forgetting (marked past the
    threshold) and its validation score."""
    coefficient, change = point.get("coefficient"), point.get("increase")
    threshold = forgetting.get("threshold")
    return {
        "coefficient": fmt.quantity(coefficient) if fmt.is_number(coefficient) else fmt.MISSING,
        "increase": _forgetting_change(change, str(forgetting.get("measure") or "")),
        "over": fmt.is_number(change) and fmt.is_number(threshold) and change > threshold,
        "score": fmt.number(_mapping(point.get("validation")).get(metric)),
        "note": note,
        "kept": False,
    }


def forgetting_rescue(
    metrics: dict[str, Any], history: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The forgetting guard's rescue (metrics.json forgetting.rescue) in words: which
    interpolation coefficient was kept and what it cost on validation against the tuned
    weights past the threshold and the starting ones, and every point the bisection tried."""
    forgetting = _mapping(metrics.get("forgetting"))
    rescue = _mapping(forgetting.get("rescue"))
    if not rescue:
        return None
    measure = str(forgetting.get("measure") or "")
    metric = str(rescue.get("metric") or "loss")
    threshold = forgetting.get("threshold")
    chosen, tuned = _mapping(rescue.get("chosen")), _mapping(rescue.get("tuned"))
    start = next((row.get(f"val_{metric}") for row in history if row.get("step") == 0), None)
    points = [_mapping(point) for point in rescue.get("candidates") or []]
    values = {
        "coefficient": fmt.quantity(chosen.get("coefficient")),
        "increase": _forgetting_change(chosen.get("increase"), measure),
        "threshold": _forgetting_change(threshold, measure, threshold=True),
        "metric": fmt.label(metric),
        "value": fmt.number(_mapping(chosen.get("validation")).get(metric)),
        "tuned": fmt.number(_mapping(tuned.get("validation")).get(metric)),
        "start": fmt.number(start),
        "count": fmt.value(len(points)),
    }
    if not chosen:
        sentence = _(
            "Weight interpolation found no weights under the threshold ({threshold}) in "
            "{count} tries: the weights the guard kept stay."
        )
    elif chosen.get("source") == "checkpoint":
        sentence = _(
            "Weight interpolation found nothing better under the threshold: the best "
            "checkpoint stays (forgetting {increase}, threshold {threshold}; validation "
            "{metric} {value}, against {tuned} for the tuned weights past the threshold)."
        )
    elif fmt.is_number(start):
        sentence = _(
            "Weight interpolation kept {coefficient} of the tuned change: forgetting "
            "{increase} (threshold {threshold}), validation {metric} {value} against {tuned} "
            "for the tuned weights past the threshold and {start} before training."
        )
    else:
        sentence = _(
            "Weight interpolation kept {coefficient} of the tuned change: forgetting "
            "{increase} (threshold {threshold}), validation {metric} {value} against {tuned} "
            "for the tuned weights past the threshold."
        )
    rows = []
    if fmt.is_number(start):  # coefficient 0: the weights before training, from history
        origin = {"coefficient": 0.0, "increase": 0.0, "validation": {metric: start}}
        rows.append(_rescue_row(origin, forgetting, metric, _("the starting weights")))
    for point in sorted(points, key=lambda p: p.get("coefficient") or 0.0):
        row = _rescue_row(point, forgetting, metric)
        row["kept"] = chosen.get("source") == "interpolation" and point == chosen
        rows.append(row)
    if tuned:
        rows.append(_rescue_row(tuned, forgetting, metric, _("the tuned weights")))
    if chosen.get("source") == "checkpoint":
        kept = _rescue_row(chosen, forgetting, metric, _("the best checkpoint"))
        rows.append(kept | {"kept": True})
    return {
        "sentence": sentence.format(**values),
        "metric": fmt.label(metric),
        "rows": rows,
        "seconds": fmt.unit(rescue.get("seconds"), "s"),
    }


def _title(recipe: dict[str, Any], metrics: dict[str, Any]) -> str:
    method = _mapping(recipe.get("method")).get("name") or metrics.get("method")
    parts = (recipe.get("task") or metrics.get("task"), recipe.get("model") or metrics.get("model"))
    return " · ".join(str(part) for part in (*parts, method) if part)


def build_context(run_dir: Path) -> dict[str, Any]:
    """Everything the template shows, read from the run folder's files."""
    metrics = load.read_metrics(run_dir)
    recipe = load.read_yaml_mapping(run_dir / RunFolder.RECIPE)
    history = load.read_history(run_dir / RunFolder.HISTORY)
    quality = load.read_json(run_dir / RunFolder.QUALITY)
    fine_tuned = _mapping(metrics.get("fine_tuned"))
    return {
        "title": _title(recipe, metrics),
        "run_name": run_dir.resolve().name,
        "generated": i18n.date_time(datetime.now()),
        "version": __version__,
        # generations.jsonl's per-prompt answers let the verdict judge noise (paired bootstrap)
        "verdict": verdict(metrics, load.read_history(run_dir / RunFolder.GENERATIONS)),
        "comparison": compare(metrics),
        "rag": rag_section(metrics),
        "samples": answer_samples(metrics),
        "curves": plots.learning_curves(
            history, metrics.get("best_step"), _mapping(metrics.get("forgetting"))
        ),
        "training": training_rows(metrics, history),
        "confusion": plots.confusion_matrix(
            fine_tuned.get("confusion_matrix"), metrics.get("labels")
        ),
        "per_class": per_class_rows(metrics),
        "slices": slice_sections(metrics),
        "findings": findings(quality),
        "findings_summary": _scalar_summary(quality),
        "forgetting": forgetting_rows(metrics),
        "forgetting_rescue": forgetting_rescue(metrics, history),
        "cost": cost_rows(metrics, history, recipe),
        "estimate": estimate_rows(load.read_json(run_dir / RunFolder.ESTIMATE)),
        "setup": setup_rows(recipe, metrics),
    }


def render_html(context: dict[str, Any], template: str = "report.html.j2") -> str:
    """Render with autoescaping on: labels and messages come from user data. `template`:
    another page of the same look (tune.html.j2 for `tunesmith tune`); every page includes
    style.css."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tunesmith.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(i18n._, i18n.ngettext, newstyle=True)
    return env.get_template(template).render({"lang": i18n.current(), **context})
