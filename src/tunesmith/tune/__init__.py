"""`tunesmith tune`: a budgeted, guarded search over models, methods and hyperparameters on
Optuna, each trial a `tunesmith train` run scored on validation; the best one is completed
on test. space.py (the space), study.py (storage, sampler, pruner), trial.py (one trial),
budget.py, workers.py, watch.py (progress), folder.py (the tune folder), report.py
(trials.csv, tune.html), search.py (the command)."""

from tunesmith.tune.search import run_tune, run_worker

__all__ = ["run_tune", "run_worker"]
