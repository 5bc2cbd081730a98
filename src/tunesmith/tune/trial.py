"""One trial: the recipe the sampler drew, trained by `tunesmith train`'s own phases
(run.train with a SearchTrial) into TUNE_DIR/trials/NNNN/, scored on validation only.

The pruner sees every evaluation (`trial.report` / `trial.should_prune`); a trial whose
analytic estimate does not fit the budgets is skipped before its first step; a trial a
guard marked (the weights it kept forgot past the threshold, or were trained after
overfitting was detected) completes with its score
but is never chosen (the sampler's constraint)."""

from __future__ import annotations

import math
import shutil
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import optuna
from rich.console import Console
from rich.progress import Progress

from tunesmith.errors import GateFailed, UserError
from tunesmith.progress import shown
from tunesmith.recipe import load_recipe
from tunesmith.run import SearchTrial, train
from tunesmith.run_folder import RunFolder
from tunesmith.tracking import Tracking
from tunesmith.train.device import reset_peak_memory
from tunesmith.tune.budget import Budget
from tunesmith.tune.folder import TuneFolder
from tunesmith.tune.space import Space, with_values
from tunesmith.tune.study import OUTCOME


class TrialSkipped(Exception):
    """The trial's estimate does not fit the budgets: it is not trained."""


@dataclass
class Objective:
    """Optuna's objective: a trial's recipe values in, its validation score out."""

    space: Space
    base: dict[str, Any]
    """The resolved recipe every trial starts from (space.base_mapping)."""
    folder: TuneFolder
    budget: Budget
    metric: str
    """The validation metric searched (the recipe's early-stopping metric)."""
    tracking: Tracking = field(default_factory=Tracking)
    """Where each trial is recorded: a child of the search's tracked run."""

    def __call__(self, trial: optuna.Trial) -> float:
        started = time.time()
        values = self.space.draw(trial, self.base)
        trial.set_user_attr("values", values)
        run_dir = self.folder.trial_dir(trial.number)
        reset_peak_memory()  # this trial's peak, not the worker's since its first trial
        hooks = SearchTrial(
            on_evaluation=self._pruner(trial),
            check_cost=self._fits,
            tracking=self.tracking if self.tracking.enabled else None,
            run_name=f"trial-{trial.number:04d}",
            tags={"tunesmith.trial": str(trial.number)},
            stopped=(optuna.TrialPruned, TrialSkipped),
        )
        with self.folder.log(f"{trial.number:04d}").open("w", encoding="utf-8") as log:
            console = Console(file=log, width=100, soft_wrap=True)
            console.print(f"trial {trial.number}: {values}", markup=False)
            try:
                recipe = load_recipe(with_values(self.base, values) | {"output_dir": None})
                with shown(Progress(console=console)):  # every bar goes to the log
                    metrics = train(recipe, run_dir, console=console, trial=hooks)
            except TrialSkipped as skipped:
                self._end(trial, "skipped", str(skipped), started)
                raise optuna.TrialPruned(str(skipped)) from None
            except optuna.TrialPruned as pruned:
                shutil.rmtree(run_dir / RunFolder.CHECKPOINTS, ignore_errors=True)
                self._end(trial, "pruned", str(pruned), started)
                raise
            except (UserError, GateFailed) as error:
                console.print(f"trial {trial.number} failed: {error}", markup=False)
                self._end(trial, "failed", str(error), started)
                raise
            except Exception as error:  # a bug: the whole traceback in the trial's log
                console.print(traceback.format_exc(), markup=False)
                self._end(trial, "failed", f"{type(error).__name__}: {error}", started)
                raise
        return self._complete(trial, metrics, started)

    def _pruner(self, trial: optuna.Trial):
        evaluations = 0

        def report(record: dict) -> None:
            nonlocal evaluations
            value = record.get(f"val_{self.metric}")
            if value is None or not math.isfinite(value):
                return
            evaluations += 1
            trial.report(value, evaluations)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"pruned at evaluation {evaluations} (validation {self.metric} "
                    f"{value:.4f}): behind the other trials at that point"
                )

        return report

    def _fits(self, predicted: dict | None) -> None:
        reason = self.budget.why_not(predicted)
        if reason is not None:
            raise TrialSkipped(reason)

    def _complete(self, trial: optuna.Trial, metrics: dict, started: float) -> float:
        value = (metrics.get("validation") or {}).get(self.metric)
        if value is None or not math.isfinite(value):
            reason = f"no finite validation {self.metric} (the loss diverged?)"
            self._end(trial, "failed", reason, started)
            raise ValueError(reason)
        guards = guard_outcomes(metrics)
        trial.set_user_attr("guards", guards)
        trial.set_user_attr("train_seconds", metrics.get("train_seconds"))
        trial.set_user_attr("peak_memory_mb", metrics.get("peak_memory_mb"))
        trial.set_user_attr("stop_reason", metrics.get("stop_reason"))
        marked = guards.get("fired")
        self._end(trial, "guard" if marked else "complete", marked or "", started)
        return float(value)

    def _end(self, trial: optuna.Trial, outcome: str, reason: str, started: float) -> None:
        trial.set_user_attr(OUTCOME, outcome)
        trial.set_user_attr("reason", reason)
        trial.set_user_attr("wall_seconds", round(time.time() - started, 1))


def guard_outcomes(metrics: dict) -> dict[str, Any]:
    """The guards' verdicts of a trial's metrics.json; `fired` names what marked it."""
    forgetting = metrics.get("forgetting") or {}
    overfitting = metrics.get("overfitting") or {}
    fired = []
    action = forgetting.get("action_taken")
    # like overfitting below, judged on the weights the trial kept: a rollback (or a best
    # evaluation before the guard fired) that kept weights under the threshold is fine
    kept_increase, threshold = forgetting.get("increase"), forgetting.get("threshold")
    if kept_increase is not None and threshold is not None and kept_increase > threshold:
        fired.append(f"forgetting {kept_increase:.3g} past {threshold:g} ({action})")
    detected = overfitting.get("detected_at_step")
    # the overfitting guard stops a run and restores its best-validation weights: a trial
    # overfits only where the weights it kept were trained past the point it was detected
    if detected is not None and (metrics.get("best_step") or 0) >= detected:
        fired.append(f"overfitting from step {detected} (weights kept from step "
                     f"{metrics.get('best_step')})")  # fmt: skip
    return {
        "forgetting_increase": forgetting.get("increase"),
        "forgetting_action": action,
        "overfitting_step": overfitting.get("detected_at_step"),
        "fired": "; ".join(fired),
    }
