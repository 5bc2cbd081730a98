"""What a search leaves to read: trials.csv (every trial) and tune.html (leaderboard, score
against cost, parameter importance, the cheaper options, the chosen recipe), in the run
report's style (its template folder and style.css, its base64 pictures)."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

import optuna
from matplotlib.figure import Figure

from tunesmith import i18n
from tunesmith.evaluate.metrics import lower_is_better
from tunesmith.i18n import N_, _
from tunesmith.report import fmt
from tunesmith.report.plots import any_script, to_base64
from tunesmith.report.render import render_html
from tunesmith.tune.folder import TuneFolder
from tunesmith.tune.study import outcome, values_of

COLUMNS = (
    "number", "state", "reason", "validation", "forgetting_increase", "forgetting_action",
    "overfitting_step", "train_seconds", "peak_memory_mb", "wall_seconds", "started",
    "finished",
)  # fmt: skip
"""trials.csv's fixed columns; each searched key (model, method.name, ...) follows `state`."""
COLOURS = {"complete": "#2f6fde", "guard": "#b3261e", "pruned": "#9aa5b1"}
STATES = {
    "complete": N_("complete"),
    "guard": N_("guard"),
    "pruned": N_("pruned"),
    "failed": N_("failed"),
    "skipped": N_("skipped"),
    "interrupted": N_("interrupted"),
    "running": N_("running"),
    "waiting": N_("waiting"),
}
"""A trial's outcome as the page names it (trials.csv keeps the English word)."""


def state_text(state: str) -> str:
    return _(STATES[state]) if state in STATES else state


def trial_rows(study: optuna.Study, metric: str) -> list[dict[str, Any]]:
    """One mapping per trial, in trial order: trials.csv's rows."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        guards = attrs.get("guards") or {}
        row = {
            "number": trial.number,
            "state": outcome(trial),
            "reason": attrs.get("reason") or _retried(trial),
            **values_of(trial),
            f"validation_{metric}": trial.value,
            "forgetting_increase": guards.get("forgetting_increase"),
            "forgetting_action": guards.get("forgetting_action"),
            "overfitting_step": guards.get("overfitting_step"),
            "train_seconds": attrs.get("train_seconds"),
            "peak_memory_mb": attrs.get("peak_memory_mb"),
            "wall_seconds": attrs.get("wall_seconds"),
            "started": _time(trial.datetime_start),
            "finished": _time(trial.datetime_complete),
        }
        rows.append(row)
    return rows


def write_trials_csv(folder: TuneFolder, study: optuna.Study, metric: str, keys: list[str]) -> None:
    names = list(COLUMNS[:3]) + keys + [f"validation_{metric}"] + list(COLUMNS[4:])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, extrasaction="ignore")
    writer.writeheader()
    for row in trial_rows(study, metric):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    folder.write_text(TuneFolder.TRIALS_CSV, buffer.getvalue())


def write_tune_report(
    folder: TuneFolder,
    study: optuna.Study,
    metric: str,
    keys: list[str],
    summary: dict[str, Any],
    importance: dict[str, float],
) -> None:
    rows = trial_rows(study, metric)
    contenders = summary.get("contenders") or {}
    context = {
        "title": folder.path.name,
        "generated": i18n.date_time(datetime.now()),
        "verdict": summary["verdict"],
        "metric": metric,
        "lower_is_better": lower_is_better(metric),
        "space": summary["space"],
        "counts": [(state_text(name), count) for name, count in summary["counts"].items()],
        "keys": keys,
        "leaderboard": _leaderboard(rows, keys, metric, summary.get("best")),
        "picture": score_against_cost(rows, metric, contenders),
        "importance": [(key, i18n.number(f"{share:.2f}")) for key, share in importance.items()],
        "contenders": [
            (name, scores.get("description", name), fmt.number(scores.get(metric)))
            for name, scores in contenders.items()
        ],
        "test": summary.get("test") or [],
        "recipe": summary.get("recipe_yaml"),
    }
    folder.write_text(TuneFolder.REPORT, render_html(context, "tune.html.j2"))


def _leaderboard(
    rows: list[dict[str, Any]], keys: list[str], metric: str, best: int | None
) -> list[dict[str, Any]]:
    """Scored trials best first (the guard-marked ones after the eligible), then the rest."""
    sign = 1 if lower_is_better(metric) else -1
    score = f"validation_{metric}"

    def order(row: dict[str, Any]) -> tuple:
        value = row.get(score)
        return (value is None, row["state"] != "complete", sign * (value or 0), row["number"])

    return [
        {
            "number": row["number"],
            "state": row["state"],
            "state_text": state_text(row["state"]),
            "best": row["number"] == best,
            "score": fmt.number(row.get(score)),
            "cells": [fmt.value(row.get(key)) for key in keys],
            "seconds": fmt.number(row.get("train_seconds")),
            "memory": fmt.number(row.get("peak_memory_mb")),
            "reason": _(row["reason"]) if row.get("reason") else "",
        }
        for row in sorted(rows, key=order)
    ]


@any_script
def score_against_cost(rows: list[dict[str, Any]], metric: str, contenders: dict) -> str | None:
    """Each scored trial's validation score against its training seconds, coloured by
    outcome; the cheaper options as horizontal lines."""
    score = f"validation_{metric}"
    points = [r for r in rows if r.get(score) is not None and r.get("train_seconds") is not None]
    if not points:
        return None
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    for state, colour in COLOURS.items():
        chosen = [r for r in points if r["state"] == state]
        if chosen:
            ax.scatter(
                [r["train_seconds"] for r in chosen],
                [r[score] for r in chosen],
                color=colour,
                label=state_text(state),
                s=28,
            )
    for name, scores in contenders.items():
        if fmt.is_number(scores.get(metric)):
            ax.axhline(scores[metric], color="0.5", linestyle="--", linewidth=1)
            ax.annotate(name, (0, scores[metric]), xycoords=("axes fraction", "data"), fontsize=8)
    ax.set_xlabel(_("training seconds"))
    ax.set_ylabel(_("validation {metric}").format(metric=metric))
    ax.legend(fontsize=8, frameon=False)
    return to_base64(fig)


def _retried(trial: optuna.trial.FrozenTrial) -> str:
    if outcome(trial) == "interrupted":
        return N_("its worker was killed; run again as a new trial")
    return N_("a killed trial, run again") if "failed_trial" in trial.system_attrs else ""


def _time(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%S") if moment else None
