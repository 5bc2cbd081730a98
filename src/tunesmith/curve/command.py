"""`tunesmith data curve RECIPE`: would more labelled data help? The recipe trained on
nested shares of its training rows (data.train_fraction: 25/50/100% by default) by
`tunesmith train`'s own phases, each into DIR/fraction-F/ (a full run folder), with the
validation and test splits the same for every point; then the headline metric against
log2(rows) (fit.py), DIR/curve.json, DIR/curve.html and a terminal table."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tunesmith.curve.fit import CurveFit, fit_curve, sentence
from tunesmith.data.quality.items import read_check_data
from tunesmith.data.split import subset_size
from tunesmith.errors import UserError
from tunesmith.i18n import language
from tunesmith.method_registry import method_names
from tunesmith.recipe import Recipe, load_recipe
from tunesmith.run import train
from tunesmith.run_folder import RunFolder, has_marker, inputs_of, write_marker
from tunesmith.safe_files import check_output_folder, write_text_atomically
from tunesmith.tasks.registry import TaskKind, get_task

DEFAULT_FRACTIONS = (0.25, 0.5, 1.0)
CHEAPEST = "linear-probe"
"""The method a curve trains with when the kind takes it and --method does not say: a
frozen encoder and a head, minutes where fine-tuning takes hours; the curve's shape, not
its height, is what it measures."""
MARKER = ".tunesmith-curve"
CURVE_JSON = "curve.json"
CURVE_HTML = "curve.html"
MIN_ROWS_PER_CLASS = 2


def parse_fractions(text: str | None) -> list[float]:
    """'0.25,0.5,1' -> [0.25, 0.5, 1.0]: at least two, each in (0, 1], ascending."""
    if text is None:
        return list(DEFAULT_FRACTIONS)
    try:
        fractions = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(
            f"--fractions {text!r}: write shares of the training rows, e.g. 0.25,0.5,1"
        ) from None
    if len(fractions) < 2:
        raise UserError(f"--fractions {text!r}: a curve needs at least two points, e.g. 0.25,0.5,1")
    bad = [f for f in fractions if not (0 < f <= 1) or not math.isfinite(f)]
    if bad:
        raise UserError(
            f"--fractions {text!r}: {bad[0]:g} is not a share of the rows; each must be "
            "above 0 and at most 1, e.g. 0.25,0.5,1"
        )
    if any(b <= a for a, b in itertools.pairwise(fractions)):
        raise UserError(
            f"--fractions {text!r}: give them in ascending order without repeats, e.g. 0.25,0.5,1"
        )
    return fractions


def curve_method(recipe: Recipe, kind: TaskKind, requested: str | None) -> str:
    """--method, else the cheapest method that fits the kind (linear-probe), else the
    recipe's own."""
    if requested is not None:
        if requested not in kind.methods:
            raise UserError(
                f"--method {requested!r} does not fit task {recipe.task}; use one of "
                f"{', '.join(kind.methods)}"
            )
        return requested
    if CHEAPEST in kind.methods and CHEAPEST in method_names():
        return CHEAPEST
    return recipe.method.name


def point_recipe(recipe: Recipe, fraction: float, method: str) -> Recipe:
    """The recipe of one point: its method (the recipe's own keys where it is the same
    method; the method's default learning rate where it is another) and its fraction."""
    mapping = yaml.safe_load(recipe.to_yaml())
    mapping["data"]["train_fraction"] = fraction
    if method != recipe.method.name:
        mapping["method"] = {"name": method}
        mapping.setdefault("train", {})["learning_rate"] = None
    mapping["output_dir"] = None
    return load_recipe(mapping)


def point_dir(output: Path, fraction: float) -> Path:
    return output / f"fraction-{fraction:g}"


def check_output(output: Path, recipe: Recipe, overwrite: bool) -> None:
    """DIR is new, empty, or (with --overwrite) a curve folder; never an input."""
    check_output_folder(output, inputs_of(recipe), "--output", "curves/NAME")
    if output.is_dir() and any(output.iterdir()):
        if not overwrite:
            raise UserError(
                f"--output {output} already holds files; choose another folder, or add "
                "--overwrite to replace the curve in it"
            )
        if not has_marker(output / MARKER, "tunesmith data curve"):
            raise UserError(
                f"--overwrite: {output} is not a curve folder (no {MARKER}), so nothing in "
                "it is replaced; choose another --output"
            )


def check_classes(recipe: Recipe, kind: TaskKind, fractions: list[float]) -> dict[str, int]:
    """Single-label classifiers (headline macro-F1): every class keeps at least 2 training
    rows at the smallest fraction; returns the training rows per class (empty for other
    kinds, whose data is read when the first point trains)."""
    if kind.generative or kind.metrics[0] != "macro_f1":
        return {}
    shape = "images" if kind.inputs == "image" else "text"
    whole = recipe.model_copy(update={"data": recipe.data.model_copy(update={"train_fraction": 1})})
    data = read_check_data(whole, shape)
    counts = Counter(data.splits["train"].labels or [])
    smallest = fractions[0]
    short = {c: n for c, n in counts.items() if subset_size(n, smallest) < MIN_ROWS_PER_CLASS}
    if short:
        name, rows = min(short.items(), key=lambda item: item[1])
        if rows < MIN_ROWS_PER_CLASS:
            raise UserError(
                f"data.train: class {name!r} has {rows} training row(s) after the split; a "
                f"curve needs at least {MIN_ROWS_PER_CLASS} per class at its smallest "
                "fraction: add rows of that class"
            )
        least = math.ceil(100 * MIN_ROWS_PER_CLASS / rows) / 100
        raise UserError(
            f"--fractions: at {smallest:g} class {name!r} keeps {subset_size(rows, smallest)} "
            f"of its {rows} training rows; a curve needs at least {MIN_ROWS_PER_CLASS} per "
            f"class at its smallest fraction: start at {least:g} or more "
            f"(e.g. --fractions {least:g},{(least + 1) / 2:.2g},1)"
        )
    return dict(counts)


def run_curve(
    recipe_path: Path,
    overrides: list[str],
    console: Console,
    fractions_text: str | None = None,
    method: str | None = None,
    output: Path | None = None,
    overwrite: bool = False,
    as_json: bool = False,
) -> dict[str, Any]:
    """Every check first (recipe, fractions, method, output, rows per class), then one
    training run per fraction, the fit, curve.json, curve.html and the table."""
    recipe = load_recipe(recipe_path, overrides)
    fractions = parse_fractions(fractions_text)
    kind = get_task(recipe.task)
    chosen = curve_method(recipe, kind, method)
    output = Path(output) if output is not None else Path("curves") / Path(recipe_path).stem
    check_output(output, recipe, overwrite)
    recipes = [point_recipe(recipe, fraction, chosen) for fraction in fractions]
    counts = check_classes(recipes[0], kind, fractions)
    metric = kind.metrics[0]

    work = Console(stderr=True, soft_wrap=True) if as_json else console
    write_marker(output / MARKER, "tunesmith data curve")
    points = []
    for number, (fraction, point) in enumerate(zip(fractions, recipes, strict=True), 1):
        folder = point_dir(output, fraction)
        planned = sum(subset_size(n, fraction) for n in counts.values()) if counts else None
        rows_text = f", {planned} rows" if planned else ""
        work.rule(
            f"Point {number}/{len(fractions)}: {fraction:.0%} of the training rows{rows_text}"
        )
        started = time.perf_counter()
        metrics = train(point, folder, overwrite=True, console=work)
        points.append(point_entry(fraction, folder, metrics, metric, time.perf_counter() - started))

    curve = build_curve(recipe, chosen, metric, points)
    write_curve(output, curve, recipe.report.language)
    remove_stale_points(output, [point_dir(output, f) for f in fractions])
    if as_json:
        print(json.dumps(curve, indent=2, ensure_ascii=False))
    else:
        print_curve(curve, console, output)
    return curve


def _scalars(scores: Any) -> dict[str, float]:
    if not isinstance(scores, dict):
        return {}
    return {k: v for k, v in scores.items() if isinstance(v, int | float) and math.isfinite(v)}


def point_entry(fraction: float, folder: Path, metrics: dict, metric: str, seconds: float) -> dict:
    """One point of curve.json: what it trained on and scored (test where scored, else
    validation)."""
    test, validation = _scalars(metrics.get("fine_tuned")), _scalars(metrics.get("validation"))
    scope = "test" if metric in test else "validation"
    splits = metrics.get("splits") or {}
    baseline = _scalars(metrics.get("baseline")).get(metric)
    return {
        "fraction": fraction,
        "rows": splits.get("train"),
        "run": str(folder),
        "scope": scope,
        "value": (test if scope == "test" else validation).get(metric),
        "examples": splits.get(scope),
        "metrics": test,
        "validation": validation,
        "baseline": baseline,
        "seconds": round(seconds, 1),
        "train_seconds": metrics.get("train_seconds"),
    }


def build_curve(recipe: Recipe, method: str, metric: str, points: list[dict]) -> dict[str, Any]:
    scored = [p for p in points if isinstance(p["value"], int | float) and p["rows"]]
    fit: CurveFit | None = None
    if len({p["rows"] for p in scored}) >= 2:
        fit = fit_curve(
            [p["rows"] for p in scored], [p["value"] for p in scored], metric,
            scored[-1]["examples"],
        )  # fmt: skip
    with language("en"):
        said = sentence(fit) if fit else "No curve: fewer than two points were scored."
    return {
        "recipe": str(recipe.source) if recipe.source else None,
        "task": recipe.task,
        "model": str(recipe.model),
        "method": method,
        "metric": metric,
        "scope": scored[-1]["scope"] if scored else None,
        "points": points,
        "fit": fit.as_dict() if fit else None,
        "sentence": said,
    }


def print_curve(curve: dict, console: Console, output: Path) -> None:
    metric = curve["metric"]
    table = Table(title=f"Would more data help? {curve['scope']} {metric} ({curve['method']})")
    for name in ("fraction", "rows", metric, "baseline", "seconds", "run folder"):
        table.add_column(name, justify="left" if name == "run folder" else "right")
    for point in curve["points"]:
        value, baseline = point["value"], point["baseline"]
        table.add_row(
            f"{point['fraction']:g}",
            str(point["rows"]),
            f"{value:.4f}" if value is not None else "—",
            f"{baseline:.4f}" if baseline is not None else "—",
            f"{point['seconds']:.0f}",
            escape(Path(point["run"]).name),
        )
    console.print(table)
    console.print(curve["sentence"], markup=False, highlight=False)
    console.print(
        f"Curve: {escape(str(output / CURVE_JSON))}, page: {escape(str(output / CURVE_HTML))}; "
        f"the run folders are in {escape(str(output))}",
        highlight=False,
    )


def remove_stale_points(output: Path, kept: list[Path]) -> None:
    """After --overwrite with other fractions: the old points' run folders go (only ours)."""
    for folder in output.glob("fraction-*"):
        if folder not in kept and folder.is_dir() and RunFolder(folder).is_run():
            shutil.rmtree(folder)


def write_curve(output: Path, curve: dict, lang: str) -> None:
    from tunesmith.curve.page import render_curve

    write_text_atomically(output / CURVE_JSON, json.dumps(curve, indent=2) + "\n")
    with language(lang):
        write_text_atomically(output / CURVE_HTML, render_curve(curve))
