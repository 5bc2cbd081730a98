"""What a search may spend: a number of trials, a deadline, the memory one trial may take;
whether a trial fits before it starts (the analytic estimate, no dry run) and when the
search ends."""

from __future__ import annotations

import time
from dataclasses import dataclass

import optuna

from tunesmith.tune.study import counted, outcome

SKIPPED_IN_A_ROW = 8
"""A search whose last this many trials were all skipped ends: nothing it draws fits."""


@dataclass(frozen=True)
class Budget:
    trials: int | None
    """Trials to run (counting pruned, skipped, guarded and failed ones)."""
    deadline: float | None
    """time.time() after which no trial starts (a running one finishes)."""
    memory_mb: float | None
    """Predicted peak memory one trial may take."""

    def seconds_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.time()

    def why_not(self, predicted: dict | None) -> str | None:
        """The reason a trial must not start, from its analytic estimate (None: it fits)."""
        if predicted is None:
            return None
        peak = predicted.get("peak_memory_mb")
        if self.memory_mb is not None and peak and peak > self.memory_mb:
            return (
                f"predicted peak memory {peak:,.0f} MB is over the memory budget of "
                f"{self.memory_mb:,.0f} MB"
            )
        seconds, left = predicted.get("total_seconds"), self.seconds_left()
        if left is not None and seconds and seconds > left:
            return (
                f"predicted training time {_duration(seconds)} is over the "
                f"{_duration(max(left, 0))} left of the budget"
            )
        return None

    def end(self, study: optuna.Study) -> str | None:
        """Why the search ends now, or None while it goes on."""
        trials = study.get_trials(deepcopy=False)
        if self.trials is not None and sum(counted(t) for t in trials) >= self.trials:
            return f"{self.trials} trials run"
        left = self.seconds_left()
        if left is not None and left <= 0:
            return "the time budget is spent"
        finished = [outcome(t) for t in trials if t.state.is_finished() and counted(t)]
        recent = finished[-SKIPPED_IN_A_ROW:]
        if len(recent) == SKIPPED_IN_A_ROW and set(recent) == {"skipped"}:
            return (
                f"the last {SKIPPED_IN_A_ROW} trials were all skipped: nothing the space "
                "draws fits the budgets"
            )
        return None


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
