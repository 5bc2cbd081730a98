"""Collect a run folder into template-ready sections and render the HTML report.

All numbers are formatted here, so the template only lays out text and never computes.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from tunesmith import __version__
from tunesmith.report import fmt, load, plots
from tunesmith.report.compare import compare, verdict

Rows = list[tuple[str, str]]

_TRAIN_KEYS = ("epochs", "learning_rate", "batch_size")
_DATA_KEYS = ("train", "validation", "test")
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
_FIRST_ROWS = 10
_FIRST_LABELS = 20


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


def _data_rows(recipe: dict[str, Any], metrics: dict[str, Any]) -> Rows:
    data, splits = _mapping(recipe.get("data")), _mapping(metrics.get("splits"))
    rows = []
    for split in dict.fromkeys([*_DATA_KEYS, *splits]):
        if split in data or split in splits:
            parts = [str(data[split])] if data.get(split) else []
            parts += [f"{fmt.value(splits[split])} examples"] if split in splits else []
            rows.append((f"Data: {split}", " · ".join(parts)))
    columns = {key: val for key, val in data.items() if key not in _DATA_KEYS}
    if columns:
        rows.append(("Data: options", _settings(columns)))
    return rows


def setup_rows(recipe: dict[str, Any], metrics: dict[str, Any]) -> Rows:
    """What was trained on what; the recipe wins, metrics.json fills in when it is missing."""
    rows = [
        ("Task", fmt.value(recipe.get("task") or metrics.get("task"))),
        ("Model", fmt.value(recipe.get("model") or metrics.get("model"))),
        ("Method", _method_text(recipe, metrics)),
    ]
    train = _mapping(recipe.get("train"))
    if train:
        rows.append(("Training", _settings(train, _TRAIN_KEYS)))
    rows += _data_rows(recipe, metrics)
    labels = metrics.get("labels")
    if isinstance(labels, list) and labels:
        more = f", … (+{len(labels) - _FIRST_LABELS} more)" if len(labels) > _FIRST_LABELS else ""
        rows.append((f"Labels ({len(labels)})", fmt.value(labels[:_FIRST_LABELS]) + more))
    if recipe.get("output_dir"):
        rows.append(("Output folder", fmt.value(recipe["output_dir"])))
    return rows


def training_rows(metrics: dict[str, Any], history: list[dict[str, Any]]) -> Rows:
    """How training ended: which checkpoint was kept and why it stopped."""
    rows = []
    if "best_step" in metrics:
        rows.append(("Best step (kept)", fmt.value(metrics["best_step"])))
    if "early_stopping_metric" in metrics:
        rows.append(("Early-stopping metric", fmt.value(metrics["early_stopping_metric"])))
    if "stopped_early" in metrics:
        rows.append(("Stopped early", fmt.value(metrics["stopped_early"])))
    if metrics.get("stop_reason"):
        rows.append(("Stop reason", str(metrics["stop_reason"])))
    epochs = [row["epoch"] for row in history if fmt.is_number(row.get("epoch"))]
    if epochs:
        rows.append(("Epochs run", fmt.quantity(max(epochs))))
    return rows


def _median_of(history: list[dict[str, Any]], key: str) -> float | None:
    values = [row[key] for row in history if fmt.is_number(row.get(key))]
    return statistics.median(values) if values else None


def _params_text(params: dict[str, Any]) -> str | None:
    total, trainable = params.get("total"), params.get("trainable")
    if fmt.is_number(total) and fmt.is_number(trainable) and total > 0:
        return f"{fmt.count(trainable)} of {fmt.count(total)} ({100 * trainable / total:.2f}%)"
    if fmt.is_number(total):
        return f"{fmt.count(total)} in total"
    return None


def cost_rows(metrics: dict[str, Any], history: list[dict[str, Any]]) -> Rows:
    """What the run cost in time, memory and trained weights, on which hardware."""
    candidates = [
        ("Training time", metrics.get("train_seconds"), " s"),
        ("Peak memory", metrics.get("peak_memory_mb"), " MB"),
        ("Throughput (median)", _median_of(history, "samples_per_s"), " samples/s"),
        ("Tokens per second (median)", _median_of(history, "tokens_per_s"), " tokens/s"),
    ]
    rows = [
        (name, f"{fmt.quantity(val)}{unit}") for name, val, unit in candidates if fmt.is_number(val)
    ]
    params = _params_text(_mapping(metrics.get("params")))
    if params:
        rows.append(("Trainable parameters", params))
    rows += [
        (key.capitalize(), str(metrics[key])) for key in ("precision", "device") if metrics.get(key)
    ]
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


def _finding_row(finding: dict[str, Any]) -> dict[str, str]:
    rows = finding.get("rows") if isinstance(finding.get("rows"), list) else []
    shown = ", ".join(str(row) for row in rows[:_FIRST_ROWS])
    more = f", … (+{len(rows) - _FIRST_ROWS})" if len(rows) > _FIRST_ROWS else ""
    return {
        "severity": str(finding.get("severity") or "info").lower(),
        "check": fmt.value(finding.get("check")),
        "split": fmt.value(finding.get("split")),
        "message": fmt.value(finding.get("message")),
        "count": fmt.number(len(rows)),
        "rows": shown + more or fmt.MISSING,
    }


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


def estimate_rows(estimate: Any) -> list[list[str]]:
    """Predicted vs measured cost; the ratio shows how far to trust the next estimate."""
    predicted = _mapping(_mapping(estimate).get("predicted"))
    measured = _mapping(_mapping(estimate).get("measured"))
    rows = []
    for key in dict.fromkeys([*predicted, *measured]):
        guess, real = predicted.get(key), measured.get(key)
        ratio = (
            f"{real / guess:.2f}×"
            if fmt.is_number(guess) and fmt.is_number(real) and guess
            else fmt.MISSING
        )
        rows.append([fmt.label(key), fmt.value(guess), fmt.value(real), ratio])
    return rows


def forgetting_rows(metrics: dict[str, Any]) -> Rows:
    """How much the model got worse on its reference data, and what was done about it."""
    forgetting = _mapping(metrics.get("forgetting"))
    return [(fmt.label(key), fmt.value(val)) for key, val in forgetting.items()]


def _title(recipe: dict[str, Any], metrics: dict[str, Any]) -> str:
    method = _mapping(recipe.get("method")).get("name") or metrics.get("method")
    parts = (recipe.get("task") or metrics.get("task"), recipe.get("model") or metrics.get("model"))
    return " · ".join(str(part) for part in (*parts, method) if part)


def build_context(run_dir: Path) -> dict[str, Any]:
    """Everything the template shows, read from the run folder's files."""
    metrics = load.read_metrics(run_dir)
    recipe = load.read_yaml_mapping(run_dir / "recipe.yaml")
    history = load.read_history(run_dir / "history.jsonl")
    quality = load.read_json(run_dir / "quality.json")
    fine_tuned = _mapping(metrics.get("fine_tuned"))
    return {
        "title": _title(recipe, metrics),
        "run_name": run_dir.resolve().name,
        "generated": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "version": __version__,
        "verdict": verdict(metrics),
        "comparison": compare(metrics),
        "curves": plots.learning_curves(history, metrics.get("best_step")),
        "training": training_rows(metrics, history),
        "confusion": plots.confusion_matrix(
            fine_tuned.get("confusion_matrix"), metrics.get("labels")
        ),
        "per_class": per_class_rows(metrics),
        "findings": findings(quality),
        "findings_summary": _scalar_summary(quality),
        "forgetting": forgetting_rows(metrics),
        "cost": cost_rows(metrics, history),
        "estimate": estimate_rows(load.read_json(run_dir / "estimate.json")),
        "setup": setup_rows(recipe, metrics),
    }


def render_html(context: dict[str, Any]) -> str:
    """Render with autoescaping on: labels and messages come from user data."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tunesmith.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(context)
