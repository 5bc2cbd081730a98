"""`tunesmith tune`: the space and its refusals, a tiny search end to end, two workers on one
SQLite study, a killed search resumed, the memory budget, guard-marked trials never chosen."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tunesmith.cli import main
from tunesmith.recipe import load_recipe
from tunesmith.tune.space import base_mapping, build_space, with_values
from tunesmith.tune.study import (
    OUTCOME,
    RECIPE_POINT,
    VALIDATION_ROWS,
    best_trial,
    choose,
    guard_constraints,
    open_storage,
    open_study,
    retry_abandoned,
    score_noise,
)
from tunesmith.tune.trial import Objective

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def search_recipe(tiny_recipe: dict, tmp_path: Path) -> dict:
    """The tiny BERT recipe with a small space: lora or full, lora's rank, the rate."""
    recipe = dict(tiny_recipe)
    recipe["train"] = dict(recipe["train"], epochs=2)
    recipe["guards"] = {"label_issues": False}
    recipe["tune"] = {
        "method.name": ["lora", "full"],
        "method.r": [2, 4],
        "train.learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
    }
    recipe.pop("output_dir")
    return recipe


def write(recipe: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def read_trials(folder: Path) -> list[dict]:
    with (folder / "trials.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def study_of(folder: Path) -> optuna.Study:
    name = f"tunesmith-{folder.name}"
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'study.db'}")


def running_trials(database: Path) -> list[int]:
    """Numbers of the study's running trials that have reported an evaluation (so have drawn
    all their values), read without optuna (empty while the study is being made)."""
    if not database.is_file():
        return []
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1)) as db:
            rows = db.execute(
                "SELECT number FROM trials WHERE state = 'RUNNING' AND trial_id IN "
                "(SELECT trial_id FROM trial_intermediate_values) ORDER BY number"
            )
            return [number for (number,) in rows]
    except sqlite3.Error:  # the tables are being created
        return []


# --- the space -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tune", "says"),
    [
        ({"train.learnin_rate": [1e-3]}, ["tune.train.learnin_rate", "learning_rate"]),
        ({"data.train": ["other.csv"]}, ["tune.data.train", "not searched"]),
        ({"method.r": [0, 4]}, ["tune.method.r", "0"]),
        ({"method.name": ["lora", "lorra"]}, ["tune.method.name", "lorra"]),
        ({"method.name": ["full"], "method.r": [4]}, ["tune.method.r", "full", "'r'"]),
        ({"train.batch_size": {"low": 8, "high": 4}}, ["tune.train.batch_size", "swap"]),
        ({"train.epochs": {"low": 1, "high": 3, "relative": True}}, ["relative"]),
        ({"model": ["/no/such/model"]}, ["tune.model", "/no/such/model"]),
    ],
)
def test_a_bad_space_exits_2_naming_the_key(search_recipe, tune, says, tmp_path, capsys):
    recipe = write(search_recipe | {"tune": tune}, tmp_path / "recipe.yaml")
    output = tmp_path / "tuned"
    assert main(["tune", str(recipe), "--trials", "2", "--output", str(output)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    for word in says:
        assert word in err
    assert not output.exists()  # refused before any work


def test_a_bad_budget_or_storage_exits_2(search_recipe, tmp_path, capsys):
    recipe = write(search_recipe, tmp_path / "recipe.yaml")
    assert main(["tune", str(recipe), "--budget", "ten minutes"]) == 2
    assert "--budget" in capsys.readouterr().err
    out = tmp_path / "t"
    args = ["tune", str(recipe), "--trials", "1", "--output", str(out)]
    assert main([*args, "--storage", "nosuchdb://x/y"]) == 2
    assert "--storage nosuchdb://x/y" in capsys.readouterr().err


def test_a_folder_that_is_not_a_tune_folder_is_refused_even_with_overwrite(
    search_recipe, tmp_path, capsys
):
    recipe = write(search_recipe, tmp_path / "recipe.yaml")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["tune", str(recipe), "--trials", "1", "--output", str(mine), "--overwrite"]) == 2
    assert "not a tune folder" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep me"


def test_a_range_as_design_writes_it_short(search_recipe):
    """[low, high, log] is {low, high, log: true}; YAML's 1e-5 (a string) is a number."""
    search_recipe["tune"] = {"train.learning_rate": ["1e-5", "1e-3", "log"]}
    (dimension,) = build_space(load_recipe(search_recipe), trials=2, budget_s=None).dimensions
    assert (dimension.bounds.low, dimension.bounds.high, dimension.bounds.log) == (1e-5, 1e-3, True)
    value = dimension.draw(optuna.trial.FixedTrial({"train.learning_rate": 3e-4}))
    assert value == 3e-4


def test_method_keys_are_drawn_only_for_the_methods_that_have_them(search_recipe):
    recipe = load_recipe(search_recipe)
    space = build_space(recipe, trials=4, budget_s=None)
    base = {"method": {"name": "lora"}}
    full = space.draw(
        optuna.trial.FixedTrial({"method.name": "full", "train.learning_rate": 2e-3}), base
    )
    lora = optuna.trial.FixedTrial(
        {"method.name": "lora", "method.r": 2, "train.learning_rate": 2e-3}
    )
    assert full == {"method.name": "full", "train.learning_rate": 2e-3}
    assert space.draw(lora, base) == {
        "method.name": "lora",
        "method.r": 2,
        "train.learning_rate": 2e-3,
    }


def test_another_method_keeps_the_keys_the_recipe_set_and_gets_its_own_defaults(search_recipe):
    recipe = load_recipe(search_recipe)  # lora with r: 4 (target_modules: its default)
    base = base_mapping(recipe)
    dora = load_recipe(with_values(base, {"method.name": "dora"}))
    ia3 = load_recipe(with_values(base, {"method.name": "ia3"}))
    assert (dora.method.name, dora.method.r) == ("dora", 4)
    assert ia3.method.name == "ia3" and "r" not in type(ia3.method).model_fields
    search_recipe["tune"] = {"method.name": ["lora", "ia3", "full"]}
    assert build_space(load_recipe(search_recipe), trials=2, budget_s=None)  # all valid


def test_the_default_space_follows_the_task_kind_and_the_budget(tiny_recipe):
    recipe = load_recipe(tiny_recipe)
    small = build_space(recipe, trials=3, budget_s=None)
    assert [d.key for d in small.dimensions] == ["method.name", "train.learning_rate"]
    assert small.dimensions[0].choices == ("lora", "full")
    full = build_space(recipe, trials=None, budget_s=3600)
    assert [d.key for d in full.dimensions] == [
        "method.name",
        "train.learning_rate",
        "method.r",
        "train.epochs",
    ]
    # the rate is a multiple of each method's own default: 1e-3 for lora, 5e-5 for full
    pick = {"method.name": "full", "train.learning_rate/default": 2.0, "method.r": 8}
    values = full.draw(
        optuna.trial.FixedTrial(pick | {"train.epochs": 4}), {"method": {"name": "lora"}}
    )
    assert values == {"method.name": "full", "train.learning_rate": 1e-4, "train.epochs": 4}


def test_a_guard_marked_trial_is_never_chosen():
    study = optuna.create_study(direction="maximize")
    for value, outcome in ((0.9, "guard"), (0.6, "complete"), (0.7, "pruned")):
        trial = optuna.trial.create_trial(
            value=value if outcome != "pruned" else None,
            state=optuna.trial.TrialState.PRUNED
            if outcome == "pruned"
            else optuna.trial.TrialState.COMPLETE,
            user_attrs={OUTCOME: outcome},
        )
        study.add_trial(trial)
    chosen = best_trial(study)
    assert chosen is not None and chosen.value == 0.6
    assert [guard_constraints(t) for t in study.trials] == [(1.0,), (0.0,), (0.0,)]


def _study_of(scores: list[tuple[float, str]], rows: int, metric_max: bool = True):
    """A study whose trial 0 is the recipe as written (lr 1e-3), then the given trials."""
    study = optuna.create_study(direction="maximize" if metric_max else "minimize")
    rate = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    epochs = optuna.distributions.IntDistribution(1, 4)
    study.set_user_attr(RECIPE_POINT, {"train.learning_rate": 1e-3})
    study.set_user_attr(VALIDATION_ROWS, rows)
    for number, (value, outcome) in enumerate(scores):
        study.add_trial(
            optuna.trial.create_trial(
                value=value,
                params={"train.learning_rate": 1e-3 * (1 + number), "train.epochs": 3},
                distributions={"train.learning_rate": rate, "train.epochs": epochs},
                user_attrs={OUTCOME: outcome},
                # as Optuna marks an enqueued trial; the point need not hold every key
                system_attrs={"fixed_params": {"train.learning_rate": 1e-3}} if number == 0 else {},
            )
        )
    return study


def test_a_lead_within_the_noise_of_validation_keeps_the_recipe_as_written():
    """The one-standard-error rule: on 40 validation rows 0.818 against 0.809 is noise (the
    standard error of the difference is about 0.087); on 4,000 rows 0.85 against 0.80 is
    not (0.0087)."""
    kept = choose(_study_of([(0.809, "complete"), (0.818, "complete")], rows=40), "macro_f1")
    assert kept.trial.number == 0
    assert "within one standard error" in kept.reason and "40 validation rows" in kept.reason
    beaten = choose(_study_of([(0.80, "complete"), (0.85, "complete")], 4000), "macro_f1")
    assert beaten.trial.number == 1 and "more than one standard error" in beaten.reason
    # the rule needs the recipe's own trial: one a guard marked is not kept
    marked = choose(_study_of([(0.809, "guard"), (0.818, "complete")], rows=40), "macro_f1")
    assert marked.trial.number == 1 and marked.reason == ""
    # a loss has no 0..1 bound: the best trial is chosen
    loss = choose(_study_of([(2.0, "complete"), (1.9, "complete")], 40, False), "loss")
    assert loss.trial.number == 1 and loss.reason == ""
    assert score_noise(0.5, 100) == pytest.approx(0.05)
    assert score_noise(1.0, 100) == pytest.approx(math.sqrt(0.99 * 0.01 / 100))


def test_the_pruner_ignores_trials_a_guard_marked():
    """A trial behind a guard-marked one (never chosen) goes on; behind an unmarked one with
    the same scores it is pruned."""
    for outcome, pruned in (("guard", False), ("complete", True)):
        study = open_study(optuna.storages.InMemoryStorage(), "t", "minimize", 0, trials=3)
        ahead = study.ask()
        for evaluation in (1, 2, 3):
            ahead.report(2.0, evaluation)
            assert not ahead.should_prune()  # its rung scores are written here
        ahead.set_user_attr(OUTCOME, outcome)
        study.tell(ahead, 2.0)
        behind = study.ask()
        for evaluation in (1, 2, 3):
            behind.report(3.0, evaluation)
        assert behind.should_prune() is pruned, outcome


def test_a_trial_cut_short_by_ctrl_c_runs_again_once_when_the_search_resumes(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = open_study(storage, "t", "maximize", seed=0, trials=3)
    rate = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    for state, attrs in ((TrialState.FAIL, {}), (TrialState.FAIL, {OUTCOME: "failed"})):
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                params={"train.learning_rate": 2e-3},
                distributions={"train.learning_rate": rate},
                user_attrs=attrs,
            )
        )
    # trial 0 was interrupted (no outcome); trial 1 failed on its own and is not retried
    assert retry_abandoned(study) == [0]
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.params for t in waiting] == [{"train.learning_rate": 2e-3}]
    assert retry_abandoned(study) == []  # queued once, not again at the next resume
    # a retry interrupted in its turn, with its retries spent, is not said to run again
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.FAIL,
            params={"train.learning_rate": 3e-3},
            distributions={"train.learning_rate": rate},
            system_attrs={"failed_trial": 7, "retry_history": [7, 8]},
        )
    )
    waiting_before = len(study.get_trials(states=(TrialState.WAITING,)))
    assert retry_abandoned(study) == []
    assert len(study.get_trials(states=(TrialState.WAITING,))) == waiting_before


def test_the_pruner_ends_a_trial_behind_the_others_at_an_evaluation():
    """Each evaluation the loop makes reaches Optuna (trial.report); successive halving ends
    a trial behind a finished one at the same evaluation, from the third on (a slow start,
    such as full fine-tuning's warm-up, is not judged at the first)."""
    study = open_study(optuna.storages.InMemoryStorage(), "t", "maximize", seed=0, trials=3)
    first = study.ask()
    for evaluation in (1, 2, 3):
        first.report(0.9, evaluation)
    study.tell(first, 0.9)
    objective = Objective(space=None, base={}, folder=None, budget=None, metric="macro_f1")
    ahead = objective._pruner(study.ask())
    for step in (10, 20, 30):
        ahead({"step": step, "val_macro_f1": 0.95})  # at least as good: goes on
    behind = objective._pruner(study.ask())
    behind({"step": 10, "val_loss": 1.0})  # no watched metric in this line: not reported
    behind({"step": 20, "val_macro_f1": 0.2})  # evaluations 1 and 2: too early to judge
    behind({"step": 30, "val_macro_f1": 0.2})
    with pytest.raises(optuna.TrialPruned, match="pruned at evaluation 3"):
        behind({"step": 40, "val_macro_f1": 0.2})


def test_the_recipe_as_written_is_the_first_point_of_its_space():
    """A new study enqueues the recipe's own values where the space holds them, so the
    search measures the recipe it was given (a learning rate left to the method's default
    is factor 1 of a relative range)."""
    from tunesmith.recipe import load_recipe
    from tunesmith.tune.space import base_mapping, build_space

    recipe = load_recipe(
        {
            "data": {"train": "x.csv"},
            "method": {"name": "lora", "r": 8},
            "tune": {
                "method.name": ["lora", "full"],
                "method.r": [4, 16],
                "train.learning_rate": {"low": 0.3, "high": 3, "log": True, "relative": True},
                "train.batch_size": {"low": 8, "high": 32},
            },
        }
    )
    space = build_space(recipe, trials=4, budget_s=None)
    point = space.recipe_point(base_mapping(recipe))
    assert point == {"method.name": "lora", "train.learning_rate/default": 1.0,
                     "train.batch_size": 16}  # fmt: skip
    # r 8 is not a candidate: the sampler draws it


# --- searches ------------------------------------------------------------------------------


def test_a_tiny_search_writes_every_file_and_reads_test_only_for_the_best(
    search_recipe, tmp_path, capsys
):
    recipe = write(search_recipe, tmp_path / "recipe.yaml")
    folder = tmp_path / "tuned"
    args = ["tune", str(recipe), "--trials", "3", "--output", str(folder)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "trial 0 " in out and "trial 2 " in out  # a line per finished trial
    for name in ("study.db", "trials.csv", "best", "best-recipe.yaml", "tune.html"):
        assert (folder / name).exists(), name

    rows = read_trials(folder)
    assert [r["number"] for r in rows] == ["0", "1", "2"]
    assert {r["state"] for r in rows} <= {"complete", "pruned", "guard"}
    assert list(rows[0])[:6] == ["number", "state", "reason", "method.name", "method.r",
                                 "train.learning_rate"]  # fmt: skip
    for row in rows:
        assert row["method.r"] == "" if row["method.name"] == "full" else row["method.r"] in "24"
        assert 1e-3 <= float(row["train.learning_rate"]) <= 1e-2
        if row["state"] != "pruned":
            assert 0.0 <= float(row["validation_macro_f1"]) <= 1.0
            assert float(row["train_seconds"]) > 0 and float(row["peak_memory_mb"]) > 0

    # trials are scored on validation only: no test score, no report
    for number in range(3):
        trial = folder / "trials" / f"{number:04d}"
        metrics = json.loads((trial / "metrics.json").read_text())
        assert "fine_tuned" not in metrics and "base" not in metrics
        assert not (trial / "report.html").exists()
    contenders = json.loads((folder / "contenders.json").read_text())
    assert {"base", "baseline"} <= set(contenders)

    best = json.loads((folder / "best" / "metrics.json").read_text())
    top = max(
        (r for r in rows if r["state"] == "complete"),
        key=lambda r: (float(r["validation_macro_f1"]), -int(r["number"])),
    )
    kept = "the recipe as written is kept" in out  # its lead was within the noise
    chosen = rows[0] if kept else top
    assert best["validation"]["macro_f1"] == pytest.approx(float(chosen["validation_macro_f1"]))
    assert {"fine_tuned", "base", "baseline"} <= set(best)
    assert 0.0 <= best["fine_tuned"]["accuracy"] <= 1.0
    assert (folder / "best" / "report.html").is_file()
    rerun = load_recipe(folder / "best-recipe.yaml")
    assert rerun.method.name == chosen["method.name"]
    assert rerun.train.learning_rate == pytest.approx(float(chosen["train.learning_rate"]))
    html = (folder / "tune.html").read_text()
    for section in ("Leaderboard", "Score against cost", "Parameter importance", "Cheaper options"):
        assert section in html
    assert "data:image/png;base64," in html

    # the same command again resumes a finished study: no trial is run twice
    assert main(args) == 0
    assert len(read_trials(folder)) == 3
    assert "Resuming" in capsys.readouterr().out


def test_a_trial_trains_the_model_that_train_trains_from_its_recipe(search_recipe, tmp_path):
    """The recipe as written is trial 0; `tunesmith train` of the same recipe (which also
    checks the data, with its label-issue pass, and scores the cheaper options: random
    draws a trial does not make) ends with the same validation scores at the same step."""
    search_recipe["guards"] = {"label_issues": True, "data_quality": "warn"}
    search_recipe["tune"]["method.r"] = [2, 4]  # the recipe's lora, r 4, rate 5e-3: all in it
    recipe = write(search_recipe, tmp_path / "recipe.yaml")
    folder = tmp_path / "tuned"
    assert main(["tune", str(recipe), "--trials", "1", "--output", str(folder)]) == 0
    trial = json.loads((folder / "trials" / "0000" / "metrics.json").read_text())
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--output", str(run)]) == 0
    trained = json.loads((run / "metrics.json").read_text())
    assert trial["best_step"] == trained["best_step"] and trial["steps"] == trained["steps"]
    for name, value in trained["validation"].items():
        if isinstance(value, float):
            assert trial["validation"][name] == pytest.approx(value, rel=1e-5), name


def test_a_trial_over_the_memory_budget_is_skipped_with_the_reason(search_recipe, tmp_path):
    recipe = write(search_recipe, tmp_path / "recipe.yaml")
    folder = tmp_path / "tuned"
    args = ["tune", str(recipe), "--trials", "2", "--output", str(folder)]
    assert main([*args, "--memory-budget", "50MB"]) == 1  # nothing could be chosen
    rows = read_trials(folder)
    assert [r["state"] for r in rows] == ["skipped", "skipped"]
    assert all("over the memory budget of 50 MB" in r["reason"] for r in rows)
    assert not (folder / "trials" / "0000").exists()  # never trained
    assert not (folder / "best").exists()
    # --overwrite on a tune folder starts again: a new study, not two more trials
    assert main([*args, "--memory-budget", "50MB", "--overwrite"]) == 1
    assert [r["number"] for r in read_trials(folder)] == ["0", "1"]


def test_trials_a_guard_marked_are_never_chosen(search_recipe, tmp_path, capsys):
    recipe = write(search_recipe, tmp_path / "recipe.yaml")
    folder = tmp_path / "tuned"
    strict = "guards.forgetting.max_increase=1e-9"  # any drift at all fires the guard
    args = ["tune", str(recipe), "--trials", "2", "--output", str(folder), "--set", strict]
    assert main(args) == 1
    rows = read_trials(folder)
    assert {r["state"] for r in rows} <= {"guard", "pruned"} and "guard" in {
        r["state"] for r in rows
    }
    assert all("forgetting" in r["reason"] for r in rows if r["state"] == "guard")
    assert not (folder / "best").exists()
    said = capsys.readouterr()
    assert "No trial can be chosen" in said.out
    assert "forgot least" in said.err and "guards.forgetting.max_increase=" in said.err


@pytest.mark.slow
def test_two_workers_share_one_study_without_duplicates(search_recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    recipe = write(search_recipe, tmp_path / "recipe.yaml")
    folder = tmp_path / "tuned"
    args = ["tune", str(recipe), "--trials", "4", "--workers", "2", "--output", str(folder)]
    assert main(args) == 0
    study = study_of(folder)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]  # exactly --trials, none twice
    rates = [t.user_attrs["values"]["train.learning_rate"] for t in trials]
    assert len(set(rates)) == 4  # four different draws
    worker_logs = [(folder / "logs" / f"worker-{k}.log").read_text() for k in range(2)]
    assert all("worker done" in log for log in worker_logs)
    for number in range(4):  # each trial ran in one worker and wrote its own run folder
        assert (folder / "trials" / f"{number:04d}" / "recipe.yaml").is_file()
    assert len(read_trials(folder)) == 4


@pytest.mark.slow
def test_a_killed_search_resumes_and_finishes_its_trials(search_recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    search_recipe["train"]["epochs"] = 4  # trials long enough to be killed mid-way
    recipe = write(search_recipe, tmp_path / "recipe.yaml")
    folder = tmp_path / "tuned"
    args = ["tune", str(recipe), "--trials", "3", "--output", str(folder)]
    process = subprocess.Popen(
        [sys.executable, "-m", "tunesmith", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed_in = None
    try:  # polled with sqlite3 itself: loading the study each time is too slow to catch a trial
        while process.poll() is None and killed_in is None:
            time.sleep(0.02)
            running = running_trials(folder / "study.db")
            if running and running[0] >= 1:  # one worker: trial 0 has finished
                process.send_signal(signal.SIGKILL)
                killed_in = running[0]
    finally:
        process.kill()
        process.wait()
    assert killed_in is not None, "the search ended before it could be killed"
    before = {t.number: t.state for t in study_of(folder).get_trials()}
    assert before[killed_in] == optuna.trial.TrialState.RUNNING  # left behind by the kill

    assert main(args) == 0  # the same command resumes
    rows = read_trials(folder)
    states = {int(r["number"]): r["state"] for r in rows}
    assert states[killed_in] == "interrupted"
    finished = [n for n, s in states.items() if s in ("complete", "pruned", "guard")]
    assert len(finished) == 3  # --trials counts the retry, not the killed trial
    retry = study_of(folder).trials[killed_in + 1]
    killed = study_of(folder).trials[killed_in]
    assert retry.params == killed.params  # the killed trial ran again with its values
    assert (folder / "best" / "metrics.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["causal-lm", "image-classification"])
def test_each_kind_searches_its_default_space(kind, tiny_llm_recipe, tiny_image_recipe, tmp_path):
    """No tune: section: the kind's default space (causal-lm: lora or dora), its cheaper
    options on validation, and best/ scored on test (the LLM's answers generated)."""
    recipe = dict(tiny_llm_recipe if kind == "causal-lm" else tiny_image_recipe)
    recipe.pop("output_dir")
    recipe["guards"] = {"forgetting": None, "label_issues": False}  # the plumbing, not the guard
    path = write(recipe, tmp_path / "recipe.yaml")
    folder = tmp_path / "tuned"
    assert main(["tune", str(path), "--trials", "2", "--output", str(folder)]) == 0
    rows = read_trials(folder)
    methods = {"causal-lm": {"lora", "dora"}, "image-classification": {"lora", "full"}}[kind]
    assert {r["method.name"] for r in rows} <= methods
    assert {"base", "baseline"} <= set(json.loads((folder / "contenders.json").read_text()))
    best = json.loads((folder / "best" / "metrics.json").read_text())
    assert "fine_tuned" in best and "base" in best
    if kind == "causal-lm":
        assert (folder / "best" / "generations.jsonl").is_file()
        assert not (folder / "trials" / "0000" / "generations.jsonl").exists()


def test_a_guard_marks_a_trial_only_by_the_weights_it_kept():
    """The overfitting guard stops a run and restores its best-validation weights: only a
    trial whose kept weights come from after the detection overfits. Forgetting is judged
    on the kept weights too: a rollback under the threshold, or a warning fired after the
    best evaluation, does not mark a trial."""
    from tunesmith.tune.trial import guard_outcomes

    detected = {"overfitting": {"detected_at_step": 162, "patience": 2, "action": "stop"}}
    assert guard_outcomes({**detected, "best_step": 144})["fired"] == ""
    assert "overfitting from step 162" in guard_outcomes({**detected, "best_step": 170})["fired"]
    forgot = {"forgetting": {"action_taken": "warned", "increase": 0.4, "threshold": 0.1}}
    assert "forgetting 0.4 past 0.1 (warned)" in guard_outcomes(forgot)["fired"]
    rolled_back = {"forgetting": {"action_taken": "rolled_back", "increase": 0.06,
                                  "threshold": 0.1}}  # fmt: skip
    assert guard_outcomes(rolled_back)["fired"] == ""
    kept_before = {"forgetting": {"action_taken": "warned", "increase": 0.08, "threshold": 0.1}}
    assert guard_outcomes(kept_before)["fired"] == ""
