"""`tunesmith tune`: check everything, check the data and score the cheaper options once,
run the trials (here, or in --workers processes), then complete the best trial on test and
write the tune folder's files."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from rich.console import Console
from rich.markup import escape

from tunesmith.errors import GateFailed, UserError
from tunesmith.estimate.recommend import parse_duration, parse_memory
from tunesmith.evaluate.metrics import lower_is_better
from tunesmith.i18n import _, language, number
from tunesmith.progress import phase
from tunesmith.recipe import Recipe, load_recipe
from tunesmith.run import check_data_quality, complete_on_test
from tunesmith.run_folder import RunFolder, inputs_of
from tunesmith.tracking import (
    NO_TRACKING,
    PARENT_RUN_ATTR,
    Tracker,
    Tracking,
    plan_tracking,
)
from tunesmith.tune.budget import Budget
from tunesmith.tune.folder import AskLock, TuneFolder, prepare_folder
from tunesmith.tune.report import state_text, write_trials_csv, write_tune_report
from tunesmith.tune.space import Space, base_mapping, build_space, with_values
from tunesmith.tune.study import (
    RECIPE_POINT,
    VALIDATION_ROWS,
    Choice,
    choose,
    importances,
    open_storage,
    open_study,
    outcome,
    retry_abandoned,
    study_name,
    values_of,
)
from tunesmith.tune.trial import Objective
from tunesmith.tune.watch import Watch
from tunesmith.tune.workers import start_workers, stop_workers, work, worker_command

DEFAULT_BUDGET = "30m"


@dataclass
class Search:
    """Everything a search needs, checked before any work."""

    recipe: Recipe
    space: Space
    folder: TuneFolder
    storage: str
    budget: Budget
    metric: str
    resume: bool
    worker: int = 0
    """This process's worker number (0 for the search's own process)."""
    tracking: Tracking = field(default_factory=Tracking)
    """Where the search and its trials are recorded (the recipe's `tracking`, checked);
    once the search's own run exists, where its trials are: nested under it."""

    @property
    def direction(self) -> str:
        return "minimize" if lower_is_better(self.metric) else "maximize"

    @property
    def keys(self) -> list[str]:
        return [d.key for d in self.space.dimensions]

    def open(self) -> optuna.Study:
        return open_study(
            open_storage(self.storage),
            study_name(self.folder.path.name),
            self.direction,
            self.recipe.train.seed,
            self.budget.trials,
            self.worker,
        )

    def objective(self) -> Objective:
        return Objective(
            self.space, base_mapping(self.recipe), self.folder, self.budget, self.metric,
            self.tracking,
        )  # fmt: skip


def plan_search(
    recipe_path: Path,
    overrides: list[str],
    budget: str | None,
    trials: int | None,
    storage: str | None,
    output: Path | None,
    overwrite: bool,
    memory_budget: str | None,
    deadline: float | None = None,
    worker: int | None = None,
    tracking_uri: str | None = None,
) -> Search:
    """The recipe, its space, the folder, the budgets and the tracker, all checked (a
    UserError names the key, file or option); nothing is written yet."""
    recipe = load_recipe(recipe_path, overrides)
    if trials is not None and trials < 1:
        raise UserError("--trials must be 1 or more")
    if budget is None and trials is None and deadline is None:
        budget = DEFAULT_BUDGET
    seconds = parse_duration(budget, "--budget") if budget else None
    if deadline is None and seconds is not None:
        deadline = time.time() + seconds
    memory = parse_memory(memory_budget) if memory_budget else None
    space = build_space(recipe, trials, seconds)
    stopping = recipe.train.early_stopping
    metric = stopping.metric if stopping and stopping.metric else "loss"
    tracking = plan_tracking(recipe.tracking, tracking_uri)
    output = Path(output or Path("tunes") / recipe_path.stem)
    if worker is not None:
        folder, resume = TuneFolder(output), True
        if not folder.is_marked():
            raise UserError(f"--worker: {output} is not a tune folder; start the search first")
    else:
        folder, resume = prepare_folder(output, overwrite, inputs_of(recipe))
    return Search(
        recipe=recipe,
        space=space,
        folder=folder,
        storage=storage or folder.default_storage(),
        budget=Budget(trials, deadline, memory),
        metric=metric,
        resume=resume,
        worker=0 if worker is None else worker + 1,
        tracking=tracking,
    )


def run_tune(
    recipe_path: Path,
    overrides: list[str],
    console: Console,
    budget: str | None = None,
    trials: int | None = None,
    workers: int = 1,
    storage: str | None = None,
    output: Path | None = None,
    overwrite: bool = False,
    memory_budget: str | None = None,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """The whole search; returns its summary (also in tune.html). Exit 1 (GateFailed) when
    the data gate fails or no trial could be chosen. `tracking_uri` (--tracking-uri): where
    the recipe's `tracking` records the search (one run, a child run per trial)."""
    if workers < 1:
        raise UserError("--workers must be 1 or more")
    search = plan_search(
        recipe_path, overrides, budget, trials, storage, output, overwrite, memory_budget,
        tracking_uri=tracking_uri,
    )  # fmt: skip
    folder = search.folder
    with folder.locked():
        if search.resume and overwrite:
            folder.clear()
            search.resume = False
        folder.mark()
        study = _start_study(search, overwrite, console)
        tracker = _start_tracking(search, study, console)
        with tracker.recording():
            _check_data_once(search, console)
            contenders = _contenders_once(search, study, console)
            _say_plan(search, workers, console)
            ended = _run_trials(search, study, workers, recipe_path, overrides, console)
            console.print(f"Search ended: {ended}")
            return finish(search, study, contenders, console, tracker)


def run_worker(
    recipe_path: Path,
    overrides: list[str],
    console: Console,
    trials: int | None,
    storage: str | None,
    output: Path | None,
    memory_budget: str | None,
    deadline: float | None,
    worker: int,
    tracking_uri: str | None = None,
) -> None:
    """Worker `worker` of --workers: trials until the budget ends the search (each one a
    child of the search's tracked run, which the search's own process started)."""
    search = plan_search(
        recipe_path, overrides, None, trials, storage, output, False, memory_budget,
        deadline=deadline, worker=worker, tracking_uri=tracking_uri,
    )  # fmt: skip
    study = search.open()
    if search.tracking.enabled:
        parent = study.user_attrs.get(PARENT_RUN_ATTR)
        search.tracking = search.tracking.child(parent, search.folder.path.name)
    lock = AskLock(search.folder / TuneFolder.ASK_LOCK)
    reason = work(study, search.objective(), search.budget, lock)
    console.print(f"worker done: {reason}")


def _start_study(search: Search, overwrite: bool, console: Console) -> optuna.Study:
    """The study, made or resumed; a resumed one must search the same space and metric."""
    if overwrite and search.storage != search.folder.default_storage():
        storage = open_storage(search.storage)
        name = study_name(search.folder.path.name)
        if name in [s.study_name for s in optuna.get_all_study_summaries(storage)]:
            optuna.delete_study(study_name=name, storage=storage)
    study = search.open()
    identity = {"space": search.space.to_json(), "metric": search.metric}
    stored = {k: study.user_attrs.get(k) for k in identity}
    own = search.space.recipe_point(base_mapping(search.recipe))
    if stored["space"] is None:
        for key, value in identity.items():
            study.set_user_attr(key, value)
        if own:  # the recipe as written is trial 0: the search measures it, then beats it
            study.enqueue_trial(own, skip_if_exists=True)
    elif stored != identity:
        raise UserError(
            f"{search.folder.path}: its study searched another space or metric "
            f"({stored['space']}, {stored['metric']}); run with the same recipe and --set "
            "values to resume it, --overwrite to start again, or another --output"
        )
    if own and RECIPE_POINT not in study.user_attrs:
        study.set_user_attr(RECIPE_POINT, own)  # what `choose` keeps unless beaten
    if search.storage == search.folder.default_storage():  # we hold the folder's lock
        retried = retry_abandoned(study)
        if retried:
            console.print(
                f"Resuming: trial(s) {', '.join(map(str, retried))} of a killed search run again"
            )
    done = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    if done:
        console.print(f"Resuming the study in {search.storage}: {len(done)} trial(s) finished")
    return study


def _start_tracking(search: Search, study: optuna.Study, console: Console) -> Tracker:
    """The search's own tracked run (reopened when a killed search resumes), its id kept in
    the study so that every worker's trials become its children."""
    tracking = search.tracking
    if not tracking.enabled:
        return NO_TRACKING
    name = search.folder.path.name
    resumed = study.user_attrs.get(PARENT_RUN_ATTR)
    tracker = tracking.open_search(console, name, search.folder / TuneFolder.TRIALS, resumed)
    budget = search.budget
    params = base_mapping(search.recipe) | {
        "search": {
            "space": search.space.describe(),
            "metric": search.metric,
            "direction": search.direction,
            "trials": budget.trials,
            "memory_budget_mb": budget.memory_mb,
        }
    }
    tags = {
        "tunesmith.command": "tune",
        "tunesmith.task": search.recipe.task,
        "tunesmith.tune_folder": str(search.folder.path.absolute()),
    }
    tracker.start(params, tags)
    if tracker.run_id is not None and tracker.run_id != resumed:
        study.set_user_attr(PARENT_RUN_ATTR, tracker.run_id)
    search.tracking = tracking.child(tracker.run_id, name)
    return tracker


def _check_data_once(search: Search, console: Console) -> None:
    """The data-quality gate, once for the whole search (trials skip it)."""
    if (search.folder / TuneFolder.QUALITY).is_file():
        return
    with phase("Checking the data", console):
        report = check_data_quality(search.recipe, console)
    if report is not None:
        report.write(search.folder.path)


def _contenders_once(search: Search, study: optuna.Study, console: Console) -> dict[str, dict]:
    """The cheaper options on validation with the recipe's model, and the size of the
    validation split (the noise of its scores), once per study."""
    saved = search.folder.read_json(TuneFolder.CONTENDERS)
    if isinstance(saved, dict) and VALIDATION_ROWS in study.user_attrs:
        return saved
    from tunesmith.tasks.family import prepare
    from tunesmith.train.device import resolve_device, resolve_precision

    recipe = search.recipe
    device = resolve_device(recipe.train.device)
    dtype = resolve_precision(recipe.train.precision, device)
    with phase("Scoring the cheaper options on validation", console):
        family = prepare(recipe, device, dtype, console)
        study.set_user_attr(VALIDATION_ROWS, len(family.task.lengths("validation")))
        contenders = (
            saved if isinstance(saved, dict) else family.score_before(console, split="validation")
        )
    del family
    gc.collect()
    contenders = {k: {n: v for n, v in s.items() if _plain(v)} for k, s in contenders.items()}
    search.folder.write_json(TuneFolder.CONTENDERS, contenders)
    return contenders


def _plain(value: Any) -> bool:
    """A score or a description, not a per-class table or a confusion matrix."""
    return isinstance(value, (int, float, str))


def _say_plan(search: Search, workers: int, console: Console) -> None:
    budget = search.budget
    limits = []
    if budget.trials is not None:
        limits.append(f"{budget.trials} trials")
    if budget.deadline is not None:
        limits.append(f"until {time.strftime('%H:%M:%S', time.localtime(budget.deadline))}")
    if budget.memory_mb is not None:
        limits.append(f"at most {budget.memory_mb:,.0f} MB a trial")
    console.print(
        f"Searching {escape(search.space.source)}: {escape(search.space.describe())}\n"
        f"Objective: validation {search.metric} ({search.direction}); {', '.join(limits)}; "
        f"{workers} worker{'s' if workers > 1 else ''}; study {escape(search.storage)}",
        highlight=False,
    )


def _run_trials(
    search: Search,
    study: optuna.Study,
    workers: int,
    recipe_path: Path,
    overrides: list[str],
    console: Console,
) -> str:
    watch = Watch(study, search.budget, search.metric, console)
    lock = AskLock(search.folder / TuneFolder.ASK_LOCK)
    if workers == 1:
        thread = watch.in_background()
        try:
            return work(study, search.objective(), search.budget, lock)
        finally:
            watch.stop(thread)
    argv = worker_command(
        recipe_path, overrides, search.folder, search.storage, search.budget,
        search.tracking.uri if search.tracking.enabled else None,
    )  # fmt: skip
    processes = start_workers(argv, workers, search.folder)
    try:
        watch.follow(lambda: all(p.poll() is not None for p in processes))
    finally:
        stop_workers(processes)
    return search.budget.end(study) or "every worker stopped (see logs/worker-K.log)"


def finish(
    search: Search,
    study: optuna.Study,
    contenders: dict[str, dict],
    console: Console,
    tracker: Tracker = NO_TRACKING,
) -> dict[str, Any]:
    """trials.csv; the best eligible trial completed on test as best/ (once per choice);
    best-recipe.yaml; tune.html; the search's tracked run completed. GateFailed (exit 1)
    when no trial can be chosen."""
    folder, metric = search.folder, search.metric
    write_trials_csv(folder, study, metric, search.keys)
    choice = choose(study, metric)
    best = choice.trial
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[outcome(trial)] = counts.get(outcome(trial), 0) + 1
    summary: dict[str, Any] = {
        "space": search.space.describe(),
        "counts": counts,
        "contenders": contenders,
        "best": best.number if best else None,
    }
    if best is not None:
        summary |= _complete_best(search, study, best, console)
    summary["verdict"] = verdict(choice, contenders, metric, search.direction, counts)
    with language(search.recipe.report.language):  # tune.html in the recipe's language
        page = summary | {"verdict": verdict(choice, contenders, metric, search.direction, counts)}
        write_tune_report(folder, study, metric, search.keys, page, importances(study))
    console.print(summary["verdict"], highlight=False)
    console.print(f"Tune folder: {folder.path}  (trials.csv, tune.html)", highlight=False)
    _record_search(tracker, search, study, counts, best, console)
    if best is None:
        raise GateFailed(
            "no trial can be chosen (every trial was skipped, pruned, failed or marked by a "
            f"guard); see {folder / TuneFolder.TRIALS_CSV}" + _what_to_change(study)
        )
    return summary


def _record_search(
    tracker: Tracker,
    search: Search,
    study: optuna.Study,
    counts: dict[str, int],
    best: optuna.trial.FrozenTrial | None,
    console: Console,
) -> None:
    """The search's run: trials per outcome, the chosen trial and its scores (validation,
    and test from best/), tune.html, trials.csv and best-recipe.yaml. It ends FINISHED when
    a trial was chosen; else the GateFailed that follows ends it FAILED."""
    folder = search.folder
    final: dict[str, Any] = {"trials": counts}
    if best is not None:
        final |= {"best_trial": best.number, f"best_validation_{search.metric}": best.value}
        metrics = folder / TuneFolder.BEST / RunFolder.METRICS
        if metrics.is_file():
            scores = RunFolder(metrics.parent).read_json(RunFolder.METRICS)
            final["best"] = {
                k: scores[k] for k in ("fine_tuned", "base", "baseline") if k in scores
            }
    tracker.log_final(final, len(study.get_trials(deepcopy=False)))
    names = (TuneFolder.REPORT, TuneFolder.TRIALS_CSV, TuneFolder.BEST_RECIPE)
    tracker.log_artifacts(folder / name for name in names)
    if best is not None:
        tracker.end()
    where = tracker.where()
    if where:
        console.print(where, highlight=False, markup=False)


def _what_to_change(study: optuna.Study) -> str:
    """Where guards marked every trial: the one that forgot least, and the two ways on."""
    forgot = [
        (t.user_attrs["guards"]["forgetting_increase"], t.number)
        for t in study.get_trials(deepcopy=False)
        if outcome(t) == "guard"
        and (t.user_attrs.get("guards") or {}).get("forgetting_increase") is not None
    ]
    if not forgot:
        return ""
    increase, number = min(forgot)
    return (
        f". Trial {number} forgot least ({increase:.3g}): search lower learning rates "
        "(tune: train.learning_rate) or fewer epochs, or, if that much forgetting is "
        "acceptable, search again with --set "
        f"guards.forgetting.max_increase={increase * 1.1:.2g} --overwrite (the trials of "
        "this study keep their marks)"
    )


def _complete_best(
    search: Search, study: optuna.Study, best: optuna.trial.FrozenTrial, console: Console
) -> dict[str, Any]:
    """best/ as the best trial's run folder, scored once on test (again only when another
    trial became the best); best-recipe.yaml."""
    folder = search.folder
    best_dir = folder / TuneFolder.BEST
    if not folder.trial_dir(best.number).is_dir():  # a worker on another machine ran it
        console.print(
            f"Trial {best.number} is chosen; it ran on another machine sharing the study, "
            f"so its run folder (trials/{best.number:04d}) and best/ are there"
        )
        recipe = with_values(base_mapping(search.recipe), values_of(best))
        return {"recipe_yaml": _best_recipe(search, best, recipe), "test": []}
    done = study.user_attrs.get("best_completed")
    if done != best.number or not (best_dir / RunFolder.REPORT).is_file():
        console.print(f"Trial {best.number} is chosen: scoring it once on the test split")
        folder.replace_best(folder.trial_dir(best.number))
        quality = folder / TuneFolder.QUALITY
        if quality.is_file():
            (best_dir / RunFolder.QUALITY).write_bytes(quality.read_bytes())
        complete_on_test(best_dir, console)
        study.set_user_attr("best_completed", best.number)
    metrics = RunFolder(best_dir).read_json(RunFolder.METRICS)
    recipe = yaml.safe_load((best_dir / RunFolder.RECIPE).read_text(encoding="utf-8"))
    return {"recipe_yaml": _best_recipe(search, best, recipe), "test": _test_rows(metrics)}


def _best_recipe(search: Search, best: optuna.trial.FrozenTrial, recipe: dict) -> str:
    """best-recipe.yaml: the chosen trial's resolved recipe, with its launch command."""
    folder = search.folder
    recipe["output_dir"] = str(Path("runs") / f"{folder.path.name}-best")
    header = (
        f"# Chosen by `tunesmith tune` (trial {best.number} of {folder.path}: validation "
        f"{search.metric} {best.value:.4f}).\n# Launch: tunesmith train "
        f"{folder / TuneFolder.BEST_RECIPE}\n"
    )
    text = header + yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True)
    folder.write_text(TuneFolder.BEST_RECIPE, text)
    return text


def _test_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    from tunesmith.report import fmt

    shown = ("accuracy", "macro_f1", "micro_f1", "loss", "perplexity", "rouge_l")
    names = [n for n in shown if n in (metrics.get("fine_tuned") or {})]
    rows = []
    entries = (("fine_tuned", "tuned (best trial)"), ("base", "base"), ("baseline", "baseline"))
    for key, label in entries:
        scores = metrics.get(key)
        if isinstance(scores, dict):
            rows.append(
                {
                    "label": label,
                    "description": scores.get("description", ""),
                    "scores": {n: fmt.number(scores.get(n)) for n in names},
                }
            )
    return rows


def verdict(
    choice: Choice,
    contenders: dict[str, dict],
    metric: str,
    direction: str,
    counts: dict[str, int],
) -> str:
    """The chosen trial, why it rather than the best-scoring one where that differs, and
    whether it beat the cheaper options on validation."""
    best = choice.trial
    if best is None:
        return _("No trial can be chosen ({counts}).").format(counts=_counts(counts))
    sign = 1 if direction == "maximize" else -1
    scored = {
        k: v[metric] for k, v in contenders.items() if isinstance(v.get(metric), (int, float))
    }
    beaten = [k for k, v in scored.items() if sign * best.value > sign * v]
    ahead = [k for k in scored if k not in beaten]
    said = _("Trial {number} is the chosen one: validation {metric} {score} ({counts}).").format(
        number=best.number, metric=metric, score=number(f"{best.value:.4f}"), counts=_counts(counts)
    )
    if choice.reason:
        said += " " + _(choice.reason)
    if not scored:
        return said
    if ahead:
        text = _(
            "It does NOT beat {options} on validation ({scores}): the cheaper option is the "
            "better choice here."
        )
        scores = _(", ").join(f"{k} {number(f'{scored[k]:.4f}')}" for k in ahead)
        return said + " " + text.format(options=_(" and ").join(ahead), scores=scores)
    return (
        said + " " + _("It beats {options} on validation.").format(options=_(" and ").join(beaten))
    )


def _counts(counts: dict[str, int]) -> str:
    return _(", ").join(f"{n} {state_text(state)}" for state, n in counts.items())
