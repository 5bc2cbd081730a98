"""The search's progress, read from the study's storage (so it shows every worker's trials,
local or not): an overall bar against the budget, a live line per running trial (its last
validation score), and one printed line per finished trial."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import optuna
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, TaskID

from tunesmith.progress import columns
from tunesmith.tune.budget import Budget
from tunesmith.tune.study import counted, outcome, values_of

POLL_SECONDS = 1.0


class Watch:
    def __init__(self, study: optuna.Study, budget: Budget, metric: str, console: Console) -> None:
        self.study, self.budget, self.metric, self.console = study, budget, metric, console
        self.started = time.time()
        self._reported: set[int] = {
            t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()
        }
        self._lines: dict[int, TaskID] = {}
        self._stop = threading.Event()

    def follow(self, done: Callable[[], bool]) -> None:
        """Redraw every second until `done()`; then once more."""
        progress = Progress(*columns(), console=self.console, transient=True)
        with progress:
            total, unit = self._total()
            overall = progress.add_task("search", total=total, unit=unit, info="")
            while True:
                finished = done() or self._stop.is_set()
                self._redraw(progress, overall)
                if finished:
                    break
                self._stop.wait(POLL_SECONDS)

    def in_background(self) -> threading.Thread:
        """follow() in a thread, until stop()."""
        thread = threading.Thread(target=self.follow, args=(lambda: False,), daemon=True)
        thread.start()
        return thread

    def stop(self, thread: threading.Thread | None = None) -> None:
        self._stop.set()
        if thread is not None:
            thread.join(timeout=10)

    def _total(self) -> tuple[float, str]:
        if self.budget.trials is not None:
            return float(self.budget.trials), "trials"
        return max(self.budget.deadline - self.started, 1.0), "s"

    def _redraw(self, progress: Progress, overall: TaskID) -> None:
        try:
            trials = self.study.get_trials(deepcopy=False)
        except Exception:  # a busy SQLite file: next second
            return
        if self.budget.trials is not None:
            done = sum(counted(t) and t.state.is_finished() for t in trials)
        else:
            done = min(time.time() - self.started, self._total()[0])
        left = self.budget.seconds_left()
        info = f"{len(trials)} trials" + (f", {max(left, 0) / 60:.1f} min left" if left else "")
        progress.update(overall, completed=done, info=info)
        for trial in trials:
            if trial.state.is_finished() and trial.number not in self._reported:
                self._reported.add(trial.number)
                progress.console.print(self.line(trial), highlight=False, markup=False)
            running = trial.state == optuna.trial.TrialState.RUNNING
            line = self._lines.get(trial.number)
            if running:
                text = f"trial {trial.number}"
                step = trial.last_step
                detail = (
                    f"evaluation {step}: validation {self.metric} "
                    f"{trial.intermediate_values[step]:.4f}"
                    if step is not None
                    else "loading and starting"
                )
                if line is None:
                    self._lines[trial.number] = progress.add_task(
                        text, total=None, unit="", info=escape(detail)
                    )
                else:
                    progress.update(line, info=escape(detail))
            elif line is not None:
                progress.remove_task(line)
                del self._lines[trial.number]

    def line(self, trial: optuna.trial.FrozenTrial) -> str:
        """One finished trial: number, outcome, score, values, reason, time."""
        state = outcome(trial)
        values = ", ".join(f"{k}={_short(v)}" for k, v in values_of(trial).items())
        score = f" validation {self.metric} {trial.value:.4f}" if trial.value is not None else ""
        reason = trial.user_attrs.get("reason") or ""
        seconds = trial.user_attrs.get("wall_seconds")
        cost = f" ({seconds:.0f} s)" if seconds else ""
        return f"trial {trial.number} {state}{score}  {values}{cost}" + (
            f"\n    {reason}" if reason else ""
        )


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
