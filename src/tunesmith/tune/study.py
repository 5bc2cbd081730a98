"""The Optuna study a search runs in: its storage (a SQLite file in the tune folder by
default; a PostgreSQL or MySQL URL lets workers on several machines share it), the TPE
sampler with the guards as constraints, the successive-halving pruner, and how a trial's
outcome is read back."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from tunesmith.errors import UserError
from tunesmith.evaluate.metrics import lower_is_better


def study_name(folder_name: str) -> str:
    """The study's name in its storage: from the tune folder's name, so searches in other
    folders can share one PostgreSQL database, and machines joining a search give the same
    --output name."""
    return f"tunesmith-{folder_name}"


HEARTBEAT_SECONDS = 5
"""A running trial writes a heartbeat this often; one silent for GRACE_SECONDS belonged to a
killed worker: it is failed and run again (RetryHeartbeatStaleTrialCallback)."""
GRACE_SECONDS = 20
RETRIES = 2
"""A trial killed with its worker is run again at most this many times."""

OUTCOME = "outcome"
"""User attribute of every trial: complete | guard | pruned | skipped | failed."""


def open_storage(url: str) -> RDBStorage:
    """Optuna's RDB storage with heartbeats, so a killed search's running trial is noticed
    and retried; a URL it cannot open is the user's mistake (exit 2)."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        return RDBStorage(
            url,
            engine_kwargs=engine,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=RETRIES),
        )
    except Exception as error:  # sqlalchemy's errors (bad URL, no driver, no server)
        raise UserError(
            f"--storage {url}: cannot open it ({str(error).splitlines()[0]}); give "
            "sqlite:///path/study.db, or a postgresql:// or mysql:// URL that this machine "
            "reaches (with its driver installed)"
        ) from None


def guard_constraints(trial: FrozenTrial) -> tuple[float]:
    """TPE's constraint: above 0 for a trial a guard marked, so it is never taken as the
    best and the sampler learns to avoid its region."""
    return (1.0 if trial.user_attrs.get(OUTCOME) == "guard" else 0.0,)


def open_study(
    storage: RDBStorage,
    name: str,
    direction: str,
    seed: int,
    trials: int | None,
    worker: int = 0,
) -> optuna.Study:
    """The study (made, or loaded to resume it). TPE starts with a few random trials (a
    third of the planned ones, 2 to 10); successive halving compares trials at their 1st,
    3rd and 9th evaluation and ends the worse two thirds.

    Each sampler's seed also depends on the worker and on how many trials the study held
    when it opened: two workers (or a resumed search) seeded alike would draw the same
    random values again."""
    # not before the third evaluation: full fine-tuning warms up slower than an adapter at
    # its higher rate, and one epoch in it was behind every LoRA trial on chatterbot topics
    # while it ended best on test (macro-F1 0.903 against 0.837)
    pruner = UnmarkedPruner(
        optuna.pruners.SuccessiveHalvingPruner(min_resource=3, reduction_factor=3)
    )
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=direction,
        pruner=pruner,
        load_if_exists=True,
    )
    held = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(
        seed=seed + 7919 * (worker + 1) + held,
        n_startup_trials=min(10, max(2, (trials or 15) // 3)),
        constraints_func=guard_constraints,
    )
    return study


class UnmarkedPruner(optuna.pruners.BasePruner):
    """A pruner that compares a trial only with the trials no guard marked: a trial that
    forgot or overfitted is never chosen, so being behind it is no reason to stop. (On the
    Zaragoza FAQ, the two trials that trained longest led every evaluation and were both
    marked for forgetting; a DoRA trial behind them at its third evaluation was pruned with
    a lower validation loss than the trial that was chosen.)"""

    def __init__(self, inner: optuna.pruners.BasePruner) -> None:
        self.inner = inner

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.inner.prune(_WithoutMarked(study), trial)


class _WithoutMarked:
    """The study as a pruner reads it, without the trials a guard marked."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        trials = self._study.get_trials(*args, **kwargs)
        return [t for t in trials if t.user_attrs.get(OUTCOME) != "guard"]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


def counted(trial: FrozenTrial) -> bool:
    """Whether a trial counts towards --trials: not one queued that has not started (the
    recipe as written, a retry), nor one failed by a killed worker (its retry counts
    instead)."""
    if trial.state == TrialState.WAITING:
        return False
    if trial.state == TrialState.FAIL:
        return OUTCOME in trial.user_attrs
    return True


def outcome(trial: FrozenTrial) -> str:
    """complete | guard | pruned | skipped | failed | interrupted | running | waiting."""
    if trial.state == TrialState.RUNNING:
        return "running"
    if trial.state == TrialState.WAITING:
        return "waiting"
    if trial.state == TrialState.FAIL and OUTCOME not in trial.user_attrs:
        return "interrupted"
    return trial.user_attrs.get(OUTCOME, trial.state.name.lower())


def retry_abandoned(study: optuna.Study) -> list[int]:
    """Queue again every trial a stop cut short: a running one (failed now; called only
    when this command holds the tune folder's lock, so no live worker of this folder runs
    it; another machine's worker on a shared storage is found by its heartbeat instead) and
    one interrupted by Ctrl-C (failed without an outcome) that was not queued again yet."""
    storage = study._storage
    callback = storage.get_heartbeat_stale_trial_callback()
    if callback is None:
        return []
    retried = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        try:
            failed = storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            if failed and _queue_again(study, callback, storage.get_trial(trial._trial_id)):
                retried.append(trial.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
    trials = study.get_trials(deepcopy=False)
    queued = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    for trial in trials:
        interrupted = trial.state == TrialState.FAIL and OUTCOME not in trial.user_attrs
        if interrupted and trial.number not in queued and _queue_again(study, callback, trial):
            retried.append(trial.number)
    return retried


def _queue_again(study: optuna.Study, callback: Any, trial: FrozenTrial) -> bool:
    """Whether the retry callback queued `trial` again (not when its retries are spent)."""
    before = len(study.get_trials(deepcopy=False))
    callback(study, trial)
    return len(study.get_trials(deepcopy=False)) > before


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial that no guard marked (None when there is none)."""
    chosen = _eligible(study)
    if not chosen:
        return None
    sign = 1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(chosen, key=lambda t: (sign * t.value, -t.number))


RECIPE_POINT = "recipe_point"
"""Study attribute: the recipe-as-written's parameters (enqueued as the first trial)."""
VALIDATION_ROWS = "validation_rows"
"""Study attribute: how many rows the validation split has (the noise of its scores)."""


@dataclass(frozen=True)
class Choice:
    """The trial a search hands back, and why that one."""

    trial: FrozenTrial | None
    reason: str = ""
    """Empty when the best trial won plainly; else the sentence that says why this one."""


def score_noise(value: float, rows: int) -> float:
    """The standard error of a score between 0 and 1 measured on `rows` rows, as a
    proportion's: sqrt(p(1 - p) / n), with p kept a row away from 0 and 1."""
    p = min(max(value, 1 / rows), 1 - 1 / rows) if rows > 1 else 0.5
    return math.sqrt(p * (1 - p) / max(rows, 1))


def recipe_trial(study: optuna.Study) -> FrozenTrial | None:
    """The first complete, unmarked trial of the recipe as written, if it ran."""
    point = study.user_attrs.get(RECIPE_POINT)
    if not point:
        return None
    for trial in _eligible(study):  # enqueued with the point; its other keys were drawn
        if trial.system_attrs.get("fixed_params") == point:
            return trial
    return None


def choose(study: optuna.Study, metric: str) -> Choice:
    """The best eligible trial, unless its lead over the recipe as written is within one
    standard error of the difference of the two validation scores (the one-standard-error
    rule of Breiman et al.): then the recipe as written is kept, and the reason says so. A
    small validation split cannot tell such trials apart, and on chatterbot topics the trial
    that led by 0.009 macro-F1 on 40 validation rows scored 0.886 on test against the
    recipe's 0.903. Scores outside 0..1 (loss, perplexity) have no such bound: the best
    trial is chosen."""
    best = best_trial(study)
    own = recipe_trial(study)
    rows = study.user_attrs.get(VALIDATION_ROWS)
    if best is None or own is None or own.number == best.number or not rows:
        return Choice(best)
    bounded = not lower_is_better(metric) and all(0 <= t.value <= 1 for t in (best, own))
    if not bounded:
        return Choice(best)
    lead = abs(best.value - own.value)
    noise = math.hypot(score_noise(best.value, rows), score_noise(own.value, rows))
    if lead > noise:
        return Choice(
            best,
            f"Trial {best.number} leads the recipe as written (trial {own.number}) by "
            f"{lead:.4f} validation {metric}, more than one standard error of the difference "
            f"on {rows} validation rows ({noise:.4f}).",
        )
    return Choice(
        own,
        f"Trial {best.number} led the recipe as written (trial {own.number}) by only "
        f"{lead:.4f} validation {metric}, within one standard error of the difference on "
        f"{rows} validation rows ({noise:.4f}): the recipe as written is kept (the "
        "one-standard-error rule; more validation rows would tell them apart).",
    )


def _eligible(study: optuna.Study) -> list[FrozenTrial]:
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get(OUTCOME) == "complete" and t.value is not None
    ]


def importances(study: optuna.Study) -> dict[str, float]:
    """Optuna's parameter importance (fANOVA) over the complete trials (a guard-marked
    trial's score says as much about its values); empty when there are too few of them or
    nothing varied."""
    try:
        return optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
        )
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}


def values_of(trial: FrozenTrial) -> dict[str, Any]:
    """The recipe values a trial trained with (a relative learning rate as the rate)."""
    return dict(trial.user_attrs.get("values") or trial.params)
