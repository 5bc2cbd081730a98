"""Collect a run folder into template-ready sections and render the HTML report.

All numbers are formatted here, so the template only lays out text and never computes.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from tunesmith.evaluate.generation import rouge_l
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
    ("reference", "Reference answer", "reference"),
    ("base", "Base model", "base"),
    ("few_shot", "Few-shot prompt", "base"),
    ("rag", "RAG (base model)", "base"),
    ("fine_tuned", "Fine-tuned", "fine-tuned"),
    ("fine_tuned_rag", "Fine-tuned + RAG", "fine-tuned"),
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
    limit = f" to {fmt.value(max_length)} tokens" if fmt.is_number(max_length) else ""
    return f"{fmt.value(count)} truncated{limit}"


def _data_rows(recipe: dict[str, Any], metrics: dict[str, Any]) -> Rows:
    data, splits = _mapping(recipe.get("data")), _mapping(metrics.get("splits"))
    truncated = _mapping(metrics.get("truncated"))
    max_length = _mapping(recipe.get("preprocess")).get("max_length")
    rows = []
    for split in dict.fromkeys([*_DATA_KEYS, *splits, *truncated]):
        cut = _truncated_text(truncated.get(split), max_length)
        if split in data or split in splits or cut:
            parts = [str(data[split])] if data.get(split) else []
            parts += [f"{fmt.value(splits[split])} examples"] if split in splits else []
            parts += [cut] if cut else []
            rows.append((f"Data: {split}", " · ".join(parts)))
    columns = {key: val for key, val in data.items() if key not in _DATA_KEYS}
    if columns:
        rows.append(("Data: options", _settings(columns)))
    elif metrics.get("format"):
        rows.append(("Data: format", fmt.value(metrics["format"])))
    return rows


def _recipe_section_rows(recipe: dict[str, Any], metrics: dict[str, Any]) -> Rows:
    """Preprocessing for every task; generation settings only where answers are generated."""
    rows = []
    preprocess = _mapping(recipe.get("preprocess"))
    if preprocess:
        rows.append(("Preprocessing", _settings(preprocess, ("max_length",))))
    generation = _mapping(recipe.get("generation"))
    task = recipe.get("task") or metrics.get("task")
    if generation and is_generative(metrics, task):
        rows.append(("Generation", _settings(generation, ("max_new_tokens", "do_sample"))))
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
    rows += _recipe_section_rows(recipe, metrics)
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


def _tokens_per_second(metrics: dict[str, Any], history: list[dict[str, Any]]) -> Rows:
    """The run's own training throughput when it recorded one, else the median per evaluation."""
    overall = metrics.get("tokens_per_second")
    if fmt.is_number(overall):
        return [("Tokens per second", overall, " tokens/s")]
    return [("Tokens per second (median)", _median_of(history, "tokens_per_s"), " tokens/s")]


def cost_rows(metrics: dict[str, Any], history: list[dict[str, Any]]) -> Rows:
    """What the run cost in time, memory and trained weights, on which hardware."""
    candidates = [
        ("Training time", metrics.get("train_seconds"), " s"),
        ("Peak memory", metrics.get("peak_memory_mb"), " MB"),
        ("Throughput (median)", _median_of(history, "samples_per_s"), " samples/s"),
        *_tokens_per_second(metrics, history),
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
    return rows + phase_rows(metrics)


PHASE_NAMES = {
    "setup": "Checks and setup",
    "data_check": "Data check",
    "load": "Loading data and model",
    "score_before": "Scoring the cheaper options",
    "training": "Training (with its evaluations)",
    "score_after": "Scoring the fine-tuned model",
    "save": "Saving the model",
    "report": "Report",
}


def phase_rows(metrics: dict[str, Any]) -> Rows:
    """The whole command's wall time, and each phase's (what the user waited for)."""
    wall = metrics.get("wall_seconds")
    if not fmt.is_number(wall):
        return []
    rows = [("Wall time, end to end", f"{fmt.quantity(wall)} s")]
    for key, seconds in _mapping(metrics.get("phase_seconds")).items():
        if fmt.is_number(seconds):
            name = PHASE_NAMES.get(key, key.replace("_", " ").capitalize())
            rows.append((f"  {name}", f"{fmt.quantity(seconds)} s"))
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
    return {"title": title, "text": text, "css": css, "score": score}


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
    note = f"The first {len(shown)} of {len(samples)} are shown." if more else ""
    return {"shown": shown, "note": note}


def _finding_row(finding: dict[str, Any]) -> dict[str, str]:
    rows = finding.get("rows") if isinstance(finding.get("rows"), list) else []
    shown = ", ".join(str(row) for row in rows[:_FIRST_ROWS])
    more = f", … (+{len(rows) - _FIRST_ROWS})" if len(rows) > _FIRST_ROWS else ""
    return {
        "severity": str(finding.get("severity") or "info").lower(),
        "check": fmt.value(finding.get("check")),
        "split": fmt.value(finding.get("split")),
        "message": fmt.value(finding.get("message")),
        "fix": str(finding.get("fix") or ""),
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
        if isinstance(guess, (dict, list)) or isinstance(real, (dict, list)):
            continue
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
    recipe = load.read_yaml_mapping(run_dir / RunFolder.RECIPE)
    history = load.read_history(run_dir / RunFolder.HISTORY)
    quality = load.read_json(run_dir / RunFolder.QUALITY)
    fine_tuned = _mapping(metrics.get("fine_tuned"))
    return {
        "title": _title(recipe, metrics),
        "run_name": run_dir.resolve().name,
        "generated": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "version": __version__,
        "verdict": verdict(metrics),
        "comparison": compare(metrics),
        "rag": rag_section(metrics),
        "samples": answer_samples(metrics),
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
    )
    return env.get_template(template).render(context)
