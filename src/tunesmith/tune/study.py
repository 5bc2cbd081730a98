"""The Optuna study a search runs in: its storage (a SQLite file in the tune folder by
default; a PostgreSQL or MySQL URL lets workers on several machines share it), the TPE
sampler with the guards as constraints, the successive-halving pruner, and how a trial's
outcome is read back."""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryFailedTrialCallback
from optuna.trial import FrozenTrial, TrialState

from tunesmith.errors import UserError


def study_name(folder_name: str) -> str:
    """The study's name in its storage: from the tune folder's name, so searches in other
    folders can share one PostgreSQL database, and machines joining a search give the same
    --output name."""
    return f"tunesmith-{folder_name}"


HEARTBEAT_SECONDS = 5
"""A running trial writes a heartbeat this often; one silent for GRACE_SECONDS belonged to a
killed worker: it is failed and run again (RetryFailedTrialCallback)."""
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
            heartbeat_stale_trial_callback=RetryFailedTrialCallback(max_retry=RETRIES),
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
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=3, reduction_factor=3)
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


def counted(trial: FrozenTrial) -> bool:
    """Whether a trial counts towards --trials: not one failed by a killed worker (its
    retry counts instead)."""
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
    """Fail every running trial now and queue it again: called only when this command holds
    the tune folder's lock, so no live worker of this folder runs one (another machine's
    worker on a shared storage is found by its heartbeat instead)."""
    storage = study._storage
    callback = storage.get_heartbeat_stale_trial_callback()
    retried = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        try:
            if storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                retried.append(trial.number)
                if callback is not None:
                    callback(study, storage.get_trial(trial._trial_id))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
    return retried


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial that no guard marked (None when there is none)."""
    chosen = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get(OUTCOME) == "complete" and t.value is not None
    ]
    if not chosen:
        return None
    sign = 1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(chosen, key=lambda t: (sign * t.value, -t.number))


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
