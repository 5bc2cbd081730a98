"""`tunesmith compare`: finished runs side by side, as data (RunComparison) that the terminal
table and the HTML page (runs_view.py) both lay out.

A comparison answers "which of these runs should I keep, and why": the recipe keys that
differ (the same ones are only counted: they explain nothing), the test metrics with the
best run marked per metric, the cost, and what every guard did. Runs of different task
kinds may be compared; a value a run does not have reads as a dash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunesmith.errors import UserError
from tunesmith.evaluate.metrics import lower_is_better
from tunesmith.i18n import _, ngettext
from tunesmith.report import fmt, load
from tunesmith.report.compare import (
    GENERATION_METRICS,
    HEADLINE_FALLBACKS,
    PROPORTIONS,
    headline_metric,
    metric_order,
    present_models,
    proportion_noise,
    scalar_metrics,
)
from tunesmith.run_folder import RunFolder
from tunesmith.safe_files import is_inside, same_path

IGNORED_KEYS = frozenset({"output_dir"})
"""Recipe keys that differ between any two runs by construction (where each run went)."""


@dataclass(frozen=True)
class Run:
    """One run folder as read: its files, leniently where they are optional."""

    path: Path
    name: str
    """Short and unique among the compared runs (the folder name, with parents if needed)."""
    recipe: dict[str, Any]
    metrics: dict[str, Any]
    estimate: dict[str, Any]
    quality: dict[str, Any] | None

    @property
    def task(self) -> str:
        return str(self.recipe.get("task") or self.metrics.get("task") or "")


@dataclass(frozen=True)
class Cell:
    text: str
    best: bool = False
    bad: bool = False
    """A guard that fired or a value past its limit (shown in the report's red)."""


@dataclass(frozen=True)
class Row:
    label: str
    cells: list[Cell]
    note: str = ""
    """A short qualifier under the label, e.g. 'lower is better'."""


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    rows: list[Row]
    note: str = ""


@dataclass(frozen=True)
class RunComparison:
    runs: list[Run]
    sections: list[Section]
    summary: str
    """Which run is best by the headline metric, by how much, and whether that is noise."""
    headline: str | None
    scope: str
    """'test', or 'validation' when no run was scored on test (tune trials)."""
    same_keys: int
    """Recipe keys with the same value in every run (not shown)."""
    notes: list[str] = field(default_factory=list)
    """What makes the runs hard to compare: other task kinds, other test rows."""
    verdicts: list[tuple[str, str]] = field(default_factory=list)
    """(run name, its fine-tune-or-RAG verdict sentence), for the runs that have one."""

    @property
    def names(self) -> list[str]:
        return [run.name for run in self.runs]


# --- reading and refusing -------------------------------------------------------------


def read_runs(paths: list[Path]) -> list[Run]:
    """Every folder a finished run, none named twice, two at least: checked for all of them
    before anything is read in earnest, so one message names the problem folder."""
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise UserError(
            "compare needs two or more run folders (RUN_DIR RUN_DIR ...); for one run, open "
            "its report.html"
        )
    for index, path in enumerate(paths):
        for other in paths[:index]:
            if same_path(path, other):
                raise UserError(f"{path} is named twice ({other}); give each run folder once")
        RunFolder(path).require_finished()
    names = unique_names(paths)
    return [_read_run(path, name) for path, name in zip(paths, names, strict=True)]


def _read_run(path: Path, name: str) -> Run:
    folder = RunFolder(path)
    metrics = folder.read_json(RunFolder.METRICS)
    if not isinstance(metrics, dict):
        raise UserError(
            f"{folder / RunFolder.METRICS} is not a JSON object: {folder.damaged_advice()}"
        )
    recipe_path = folder / RunFolder.RECIPE
    try:
        recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise UserError(
            f"{recipe_path} cannot be read ({error}): {folder.damaged_advice()}"
        ) from None
    if not isinstance(recipe, dict):
        raise UserError(f"{recipe_path} is not a recipe mapping: {folder.damaged_advice()}")
    estimate = load.read_json(folder / RunFolder.ESTIMATE)
    quality = load.read_json(folder / RunFolder.QUALITY)
    return Run(
        path=path,
        name=name,
        recipe=recipe,
        metrics=metrics,
        estimate=estimate if isinstance(estimate, dict) else {},
        quality=quality if isinstance(quality, dict) else None,
    )


def unique_names(paths: list[Path]) -> list[str]:
    """Each folder's name, with as many parent folders as it takes to tell the runs apart
    (two tunes' `best/` become `tune-a/best` and `tune-b/best`)."""
    parts = [Path(p).resolve().parts for p in paths]
    depth = 1
    while True:
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names) or depth >= max(len(p) for p in parts):
            return names
        depth += 1


# --- the comparison ---------------------------------------------------------------------


def compare_runs(paths: list[Path]) -> RunComparison:
    """Read the run folders (refusing a missing, unfinished or repeated one) and compare."""
    return build_comparison(read_runs(paths))


def build_comparison(runs: list[Run]) -> RunComparison:
    """The sections, the summary and the notes; a run lacking a value shows a dash."""
    recipe_rows, same = recipe_section(runs)
    tested = [run.name for run in runs if _scores(run, "test")]
    # tune trials are scored on validation only: the best run is then named by validation
    scope = "test" if len(tested) >= 2 else "validation"
    # scores of different task kinds (a classifier's loss, an LLM's) are not one scale
    comparable = len({run.task for run in runs}) == 1
    headline = choose_headline(runs, scope) if comparable else None
    on_test = headline if scope == "test" else None
    sections = [
        Section("recipe", _("Recipe: the keys that differ"), recipe_rows, _same_note(same)),
        Section(
            "test",
            _("Test metrics (fine-tuned model)"),
            metric_rows(runs, "test", on_test, comparable) + cheaper_rows(runs, on_test),
            _test_note(tested, scope),
        ),
        Section(
            "validation",
            _("Validation metrics (the weights kept)"),
            metric_rows(
                runs, "validation", headline if scope == "validation" else None, comparable
            ),
            _("What early stopping (and a tune's search) chose by; test is the fair comparison.")
            if scope == "test"
            else _("What early stopping and a tune's search chose by."),
        ),
        Section("cost", _("Cost"), cost_rows(runs)),
        Section("guards", _("Guards"), guard_rows(runs)),
    ]
    verdicts = [
        (run.name, str(run.metrics["verdict"]["sentence"]))
        for run in runs
        if isinstance(run.metrics.get("verdict"), dict) and run.metrics["verdict"].get("sentence")
    ]
    return RunComparison(
        runs=runs,
        sections=[s for s in sections if s.rows or s.key in ("recipe", "test")],
        summary=summary(runs, headline, scope),
        headline=headline,
        scope=scope,
        same_keys=same,
        notes=comparability_notes(runs, scope),
        verdicts=verdicts,
    )


def _same_note(same: int) -> str:
    if not same:
        return ""
    return ngettext(
        "{count} key is the same in every run and not shown.",
        "{count} keys are the same in every run and not shown.",
        same,
    ).format(count=same)


def _test_note(tested: list[str], scope: str) -> str:
    if scope == "test":
        return _("Scores are on each run's held-out test split.")
    if tested:
        return _(
            "Only {runs} was scored on test (tune trials are scored on validation only), so the "
            "best run is named by validation."
        ).format(runs=_listed(tested))
    return _("No run was scored on test (tune trials are scored on validation only).")


# --- recipe -----------------------------------------------------------------------------


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys (method.r, train.early_stopping.metric) to leaf values; lists are values."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat |= flatten(value, name + ".")
        else:
            flat[name] = value
    return flat


def _in_run(value: Any, run: Run) -> Any:
    """A path inside the run's own folder, as a path relative to it: two runs that both
    point into themselves do not differ."""
    if isinstance(value, str) and ("/" in value or "\\" in value):
        try:
            if is_inside(value, run.path):
                relative = Path(value).expanduser().resolve().relative_to(run.path.resolve())
                return f"<run folder>/{relative.as_posix()}"
        except (OSError, ValueError):
            return value
    return value


def recipe_section(runs: list[Run]) -> tuple[list[Row], int]:
    """The rows of the keys whose values differ, in recipe order, and how many are the same."""
    flats = [{key: _in_run(val, run) for key, val in flatten(run.recipe).items()} for run in runs]
    keys = [
        key for key in dict.fromkeys(k for flat in flats for k in flat) if key not in IGNORED_KEYS
    ]
    rows, same = [], 0
    for key in keys:
        values = [flat.get(key) for flat in flats]  # a key a run lacks reads as unset
        if all(_same(val, values[0]) for val in values[1:]):
            same += 1
            continue
        rows.append(Row(key, [Cell(_setting(val)) for val in values]))
    return rows, same


def _same(a: Any, b: Any) -> bool:
    """Equal values (2 and 2.0 alike), but true is not 1."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _setting(value: Any) -> str:
    """A recipe value as written: floats with their significant digits (learning rates)."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_setting(item) for item in value) + "]"
    if isinstance(value, dict):
        return fmt.value(value)
    if isinstance(value, bool) or value is None or value == "":
        return fmt.value(value)
    return str(value)


# --- metrics ----------------------------------------------------------------------------


def _scores(run: Run, scope: str) -> dict[str, float]:
    """The fine-tuned model's scalar metrics on test, or those of the kept weights on
    validation."""
    key = "fine_tuned" if scope == "test" else "validation"
    return scalar_metrics(run.metrics.get(key))


def _kind_headlines(runs: list[Run]) -> list[str]:
    """The metrics the runs' task kinds show first (train's table), in kind order."""
    from tunesmith.tasks.registry import task_kinds

    kinds = task_kinds()
    names: list[str] = []
    for run in runs:
        kind = kinds.get(run.task)
        names += [name for name in (kind.headline if kind else ()) if name not in names]
    return names


def ordered_metrics(runs: list[Run], scope: str) -> list[str]:
    present = set().union(*(_scores(run, scope) for run in runs))
    first = [name for name in _kind_headlines(runs) if name in present]
    return first + [name for name in metric_order(present) if name not in first]


def choose_headline(runs: list[Run], scope: str) -> str | None:
    """The metric the comparison names a best run by: the one the first run stopped early
    on (what its user optimised), else the kind's headline metrics, else the report's
    fallbacks; the first that every run reports, else one that two runs report."""
    candidates: list[str] = []
    for run in runs:
        named = headline_metric({"fine_tuned": _scores(run, scope), **_stopping(run)})
        candidates += [named] if named else []
    candidates += _kind_headlines(runs) + list(HEADLINE_FALLBACKS)
    candidates = list(dict.fromkeys(candidates))
    counts = {name: sum(name in _scores(run, scope) for run in runs) for name in candidates}
    for needed in (len(runs), 2):
        found = next((name for name in candidates if counts[name] >= needed), None)
        if found:
            return found
    return None


def _stopping(run: Run) -> dict[str, Any]:
    chosen = run.metrics.get("early_stopping_metric")
    return {"early_stopping_metric": chosen} if isinstance(chosen, str) else {}


def best_flags(values: list[float | None], lower: bool) -> list[bool]:
    """Which values are the best of the row; none when fewer than two runs have a value or
    all are equal (a tie of everyone is nobody's win)."""
    present = [val for val in values if val is not None]
    if len(present) < 2 or len(set(present)) == 1:
        return [False] * len(values)
    best = min(present) if lower else max(present)
    return [val is not None and val == best for val in values]


def metric_rows(
    runs: list[Run], scope: str, headline: str | None, comparable: bool = True
) -> list[Row]:
    """One row per metric any run reports, the best run marked (only among runs of one task
    kind: `comparable`)."""
    scores = [_scores(run, scope) for run in runs]
    rows = []
    for name in ordered_metrics(runs, scope):
        values = [result.get(name) for result in scores]
        lower = lower_is_better(name)
        flags = best_flags(values, lower) if comparable else [False] * len(values)
        notes = [_("headline")] if name == headline else []
        notes += [_("lower is better")] if lower else []
        cells = [Cell(fmt.number(val), flag) for val, flag in zip(values, flags, strict=True)]
        rows.append(Row(fmt.label(name), cells, ", ".join(notes)))
    return rows


def cheaper_rows(runs: list[Run], headline: str | None) -> list[Row]:
    """The cheaper options' headline score in each run, and the fine-tuned model's gain over
    the best of them: was fine-tuning worth it, run by run."""
    if headline is None:
        return []
    label = fmt.label(headline)
    models = [present_models(run.metrics) for run in runs]
    rows = []
    for key, title in (("baseline", _("Baseline")), ("base", _("Base model"))):
        values = [found.get(key, {}).get(headline) for found in models]
        if any(val is not None for val in values):
            rows.append(Row(f"{title}: {label}", [Cell(fmt.number(val)) for val in values]))
    gains = [_gain(found, headline) for found in models]
    if rows and any(gain is not None for gain in gains):
        cells = [
            Cell(
                fmt.MISSING if gain is None else fmt.signed(gain), bad=gain is not None and gain < 0
            )
            for gain in gains
        ]
        gain = _("Gain in {metric} over best cheaper").format(metric=_in_sentence(label))
        rows.append(Row(gain, cells))
    return rows


def _gain(models: dict[str, dict[str, float]], name: str) -> float | None:
    """How much better the fine-tuned model is than the best cheaper option (positive:
    better, whichever way the metric improves)."""
    fine = models.get("fine_tuned", {}).get(name)
    others = [vals[name] for key, vals in models.items() if key != "fine_tuned" and name in vals]
    if fine is None or not others:
        return None
    if lower_is_better(name):
        return min(others) - fine
    return fine - max(others)


# --- cost -------------------------------------------------------------------------------


def _trainable(run: Run) -> tuple[Any, Any]:
    predicted = run.estimate.get("predicted")
    predicted = predicted if isinstance(predicted, dict) else {}
    params = run.metrics.get("params") if isinstance(run.metrics.get("params"), dict) else {}
    trainable = predicted.get("trainable_params", params.get("trainable"))
    total = predicted.get("total_params", params.get("total"))
    return trainable, total


def _params_text(trainable: Any, total: Any) -> str:
    if not fmt.is_number(trainable):
        return fmt.MISSING
    if fmt.is_number(total) and total > 0:
        share = 100 * trainable / total
        return (
            f"{fmt.count(trainable)} ({share:.0f}%)"
            if share >= 10
            else f"{fmt.count(trainable)} ({share:.2g}%)"
        )
    return fmt.count(trainable)


def cost_rows(runs: list[Run]) -> list[Row]:
    """Time, memory and trained weights: lower is cheaper, except throughput."""
    measured: list[tuple[str, str, str, bool]] = [
        (_("Training time"), "train_seconds", "s", True),
        (_("Wall time, end to end"), "wall_seconds", "s", True),
        (_("Peak memory"), "peak_memory_mb", "MB", True),
        (_("Throughput"), "tokens_per_second", "tokens/s", False),
    ]
    rows = []
    for label, key, unit, lower in measured:
        values = [run.metrics.get(key) for run in runs]
        values = [val if fmt.is_number(val) else None for val in values]
        if all(val is None for val in values):
            continue
        flags = best_flags(values, lower)
        cells = [
            Cell(fmt.MISSING if val is None else fmt.unit(val, unit), flag)
            for val, flag in zip(values, flags, strict=True)
        ]
        rows.append(Row(label, cells))
    params = [_trainable(run) for run in runs]
    if any(fmt.is_number(trainable) for trainable, _ in params):
        counts = [trainable if fmt.is_number(trainable) else None for trainable, _ in params]
        flags = best_flags(counts, lower=True)
        cells = [
            Cell(_params_text(trainable, total), flag)
            for (trainable, total), flag in zip(params, flags, strict=True)
        ]
        rows.append(Row(_("Trainable parameters"), cells))
    steps = [run.metrics.get("steps") for run in runs]
    if any(fmt.is_number(val) for val in steps):
        rows.append(Row(_("Steps"), [Cell(fmt.number(val)) for val in steps]))
    devices = [
        " ".join(str(run.metrics[k]) for k in ("device", "precision") if run.metrics.get(k))
        for run in runs
    ]
    if any(devices):
        rows.append(Row(_("Device"), [Cell(text or fmt.MISSING) for text in devices]))
    return rows


# --- guards -----------------------------------------------------------------------------


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def forgetting_cells(run: Run) -> tuple[Cell, Cell] | None:
    forgetting = _mapping(run.metrics.get("forgetting"))
    if not forgetting:
        return None
    increase, threshold = forgetting.get("increase"), forgetting.get("threshold")
    past = fmt.is_number(increase) and fmt.is_number(threshold) and increase > threshold
    text = f"{increase:+.3g}" if fmt.is_number(increase) else fmt.MISSING
    if fmt.is_number(threshold):
        text += " " + _("(limit {limit})").format(limit=fmt.quantity(threshold))
    action = str(forgetting.get("action_taken") or fmt.MISSING)
    chosen = _mapping(_mapping(forgetting.get("rescue")).get("chosen"))
    if chosen.get("source") == "interpolation" and fmt.is_number(chosen.get("coefficient")):
        coefficient = fmt.quantity(chosen["coefficient"])
        action += _(", rescued at {coefficient}").format(coefficient=coefficient)
    if forgetting.get("action"):
        action += " " + _("(guard: {action})").format(action=forgetting["action"])
    taken = forgetting.get("action_taken") not in (None, "none")
    return Cell(text, bad=past), Cell(action, bad=taken)


def overfitting_cell(run: Run) -> Cell | None:
    overfitting = _mapping(run.metrics.get("overfitting"))
    if not overfitting:
        return None
    step = overfitting.get("detected_at_step")
    if step is None:
        return Cell(_("not detected"))
    action = overfitting.get("action")
    text = _("from step {step}").format(step=fmt.value(step))
    return Cell(text + (f" ({action})" if action else ""), bad=True)


def stopping_cell(run: Run) -> Cell | None:
    reason, best = run.metrics.get("stop_reason"), run.metrics.get("best_step")
    if not reason and best is None:
        return None
    text = str(reason or fmt.MISSING)
    if best is not None:
        text += _("; kept step {step}").format(step=fmt.value(best))
    return Cell(text)


def quality_cell(run: Run) -> Cell | None:
    """The data-quality gate: what the check found and what the recipe let through (a run
    that finished with errors ran with the gate at warn or off)."""
    gate = _mapping(run.recipe.get("guards")).get("data_quality")
    summary = _mapping(_mapping(run.quality).get("summary"))
    if gate == "off":
        return Cell(_("off"))
    if not summary:
        return None
    errors, warnings = summary.get("errors") or 0, summary.get("warnings") or 0
    found = ", ".join(
        (
            ngettext("{count} error", "{count} errors", errors).format(count=fmt.number(errors)),
            ngettext("{count} warning", "{count} warnings", warnings).format(
                count=fmt.number(warnings)
            ),
        )
    )
    if errors:
        text = _("let through: {found} (gate: {gate})").format(found=found, gate=gate or "warn")
        return Cell(text, bad=True)
    return Cell(_("passed: {found}").format(found=found))


def guard_rows(runs: list[Run]) -> list[Row]:
    rows = []
    forgetting = [forgetting_cells(run) for run in runs]
    if any(forgetting):
        empty = Cell(fmt.MISSING)
        rows.append(Row(_("Forgetting increase"), [f[0] if f else empty for f in forgetting]))
        rows.append(Row(_("Forgetting action taken"), [f[1] if f else empty for f in forgetting]))
    for label, read in (
        (_("Overfitting"), overfitting_cell),
        (_("Training stopped"), stopping_cell),
        (_("Data-quality gate"), quality_cell),
    ):
        cells = [read(run) for run in runs]
        if any(cells):
            rows.append(Row(label, [cell or Cell(fmt.MISSING) for cell in cells]))
    return rows


# --- the summary ------------------------------------------------------------------------


def _examples(run: Run, name: str, scope: str) -> int | None:
    """How many examples a score rests on: the generated answers for generation scores,
    else the split's rows."""
    key = "fine_tuned" if scope == "test" else "validation"
    generated = _mapping(run.metrics.get(key)).get("generated")
    if name in GENERATION_METRICS and fmt.is_number(generated):
        return int(generated)
    count = _mapping(run.metrics.get("splits")).get(scope)
    return int(count) if fmt.is_number(count) else None


def _noise_clause(best: Run, other: Run, name: str, scope: str) -> str:
    """Whether the gap between two runs is beyond what a different draw of test examples
    could give; judged only for shares of examples, on the same number of examples."""
    if name not in PROPORTIONS:
        return ""
    a, b = _scores(best, scope).get(name), _scores(other, scope).get(name)
    n, m = _examples(best, name, scope), _examples(other, name, scope)
    metric = fmt.label(name)
    if a is None or b is None or not n or n != m or not (0 <= a <= 1 and 0 <= b <= 1):
        return ""
    noise = proportion_noise(a, b, n)
    gap = abs(a - b)
    where = f"{fmt.number(n)} {scope} examples"
    if gap > noise:
        return (
            f"{metric} differs by {fmt.number(gap)}, beyond the noise of {where} "
            f"(±{fmt.number(noise)} at 95%)."
        )
    return (
        f"{metric} differs by {fmt.number(gap)}, within the noise of {where} "
        f"(±{fmt.number(noise)} at 95%): more {scope} data would be needed to tell them apart."
    )


def _in_sentence(label: str) -> str:
    """'Macro-F1' -> 'macro-F1' mid-sentence; acronyms such as 'ROUGE-L' keep their case."""
    return label if label[1:2].isupper() else label[:1].lower() + label[1:]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def summary(runs: list[Run], headline: str | None, scope: str) -> str:
    """One or two sentences: the best run by the headline metric, the gap to the next, and
    whether that gap is noise when metrics.json allows judging it."""
    if len({run.task for run in runs}) > 1:
        return (
            "These runs are of different task kinds, so none is named best: compare runs of "
            "one kind for a verdict."
        )
    if headline is None:
        return f"No {scope} metric is reported by two or more of these runs, so none is named best."
    label, lower = _in_sentence(fmt.label(headline)), lower_is_better(headline)
    scored = [
        (run, _scores(run, scope)[headline]) for run in runs if headline in _scores(run, scope)
    ]
    scored.sort(key=lambda item: item[1] if lower else -item[1])
    (best, top), (second, next_value) = scored[0], scored[1]
    missing = [run.name for run in runs if headline not in _scores(run, scope)]
    lacking = f" ({_listed(missing)} did not report it)" if missing else ""
    tied = [run.name for run, value in scored if value == top]
    if len(tied) > 1:
        return f"{_listed(tied)} tie on {scope} {label} at {fmt.number(top)}{lacking}."
    direction = " (lower is better)" if lower else ""
    sentence = (
        f"Best by {scope} {label}{direction}: {best.name}, {fmt.number(top)} against "
        f"{fmt.number(next_value)} for {second.name} ({fmt.signed(top - next_value)}){lacking}."
    )
    noise = _noise_clause(best, second, headline, scope)
    if not noise:
        proxy = next(
            (name for name in sorted(PROPORTIONS)
             if name in _scores(best, scope) and name in _scores(second, scope)),
            None,
        )  # fmt: skip
        noise = _noise_clause(best, second, proxy, scope) if proxy else ""
        if noise:
            noise = (
                f"There are no per-example scores in metrics.json to judge the noise in {label}; "
                + _in_sentence(noise)
            )
    if not noise:
        noise = "There are no per-example scores in metrics.json to judge whether that is noise."
    return f"{sentence} {_capital(noise)}"


def _listed(names: list[str]) -> str:
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 2 else names)


def _test_rows_key(run: Run) -> tuple | None:
    """What decides which rows a run tested on: the test file's content, or the train
    file's content with the split shares and the seed; None when a fingerprint is missing."""
    data = _mapping(run.recipe.get("data"))
    prints = _mapping(run.metrics.get("data_fingerprints"))
    if data.get("test"):
        digest = _mapping(prints.get("test")).get("sha256")
        return ("file", digest) if digest else None
    digest = _mapping(prints.get("train")).get("sha256")
    if not digest:
        return None
    seed = _mapping(run.recipe.get("train")).get("seed")
    validation = "file" if data.get("validation") else data.get("validation_size")
    shares = (validation, data.get("test_size"))
    return ("split", digest, shares, seed)


def comparability_notes(runs: list[Run], scope: str) -> list[str]:
    notes = []
    tasks = list(dict.fromkeys(run.task for run in runs))
    if len(tasks) > 1:
        notes.append(
            f"The runs are of different task kinds ({', '.join(tasks)}): a metric one kind "
            "does not report reads as a dash, and scores of different kinds do not compare."
        )
    if scope == "test" and len(tasks) == 1:
        keys = [_test_rows_key(run) for run in runs]
        if all(key is not None for key in keys) and len(set(keys)) > 1:
            notes.append(
                "The runs were tested on different rows (other data, split shares or "
                "train.seed): part of a difference in their scores comes from the data, not "
                "the models."
            )
    return notes
