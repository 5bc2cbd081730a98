"""Running trials: one worker's loop over the shared study, and `--workers N` local worker
processes (each a `tunesmith tune --worker` on the same storage, so workers on other
machines join the same way)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna

from tunesmith.tune.budget import Budget
from tunesmith.tune.folder import AskLock, TuneFolder
from tunesmith.tune.trial import Objective


def work(study: optuna.Study, objective: Objective, budget: Budget, lock: AskLock) -> str:
    """Run trials one after another until the budget ends the search; why it ended.

    Each trial runs under Optuna's `optimize` (heartbeat, stale trials failed and retried).
    The ask lock is held from the budget check until the trial exists in the storage, so
    local workers never start more trials than --trials."""

    def locked_objective(trial: optuna.Trial) -> float:
        lock.release()  # the trial is in the storage now: the next worker may count it
        return objective(trial)

    while True:
        lock.acquire()
        try:
            reason = budget.end(study)
            if reason is not None:
                return reason
            study.optimize(locked_objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
        finally:
            lock.release()


def worker_command(
    recipe: Path,
    overrides: list[str],
    folder: TuneFolder,
    storage: str,
    budget: Budget,
    tracking_uri: str | None = None,
) -> list[str]:
    """The command line of a local worker (its number follows): the same recipe, overrides,
    budgets and tracking destination (resolved, so a worker records where the search does)."""
    argv = [sys.executable, "-m", "tunesmith", "tune", str(recipe)]
    argv += [arg for item in overrides for arg in ("--set", item)]
    argv += ["--output", str(folder.path), "--storage", storage]
    if budget.trials is not None:
        argv += ["--trials", str(budget.trials)]
    if budget.deadline is not None:
        argv += ["--deadline", f"{budget.deadline:.3f}"]
    if budget.memory_mb is not None:
        argv += ["--memory-budget", f"{budget.memory_mb:.0f}MB"]
    if tracking_uri is not None:
        argv += ["--tracking-uri", tracking_uri]
    return [*argv, "--worker"]


def start_workers(argv: list[str], count: int, folder: TuneFolder) -> list[subprocess.Popen]:
    """`count` worker processes, each writing to logs/worker-K.log; each dies with this
    process (Linux: PR_SET_PDEATHSIG), so a killed search leaves no worker behind."""
    processes = []
    env = os.environ | {"TUNESMITH_TUNE_WORKER": "1"}
    for k in range(count):
        log = folder.log(f"worker-{k}").open("w", encoding="utf-8")
        processes.append(
            subprocess.Popen(
                [*argv, str(k)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=_die_with_parent,
            )
        )
        log.close()
    return processes


def stop_workers(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _die_with_parent() -> None:
    """In the child, before exec: receive SIGKILL when the parent dies (Linux only)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
