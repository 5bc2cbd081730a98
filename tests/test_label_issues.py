"""The label-issue check flags mostly real errors: on real topics with known flipped labels,
its default cut is precise, its finding says how many real errors to expect, and every
less certain candidate stays ranked in quality.json for review."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from tunesmith.data.quality import check_data
from tunesmith.data.quality.label_issues import FLAG_AT, error_probabilities
from tunesmith.recipe import load_recipe

QUIET = Console(quiet=True)


@pytest.fixture
def flipped_topics(tmp_path: Path) -> tuple[Path, set[int]]:
    """The bundled chatterbot topics (405 real questions), 10% of labels flipped, seeded."""
    source = files("tunesmith") / "demo_data" / "chatterbot_topics.csv"
    frame = pd.read_csv(str(source))
    labels = sorted(frame["label"].unique())
    rng = np.random.default_rng(0)
    rows = rng.choice(len(frame), len(frame) // 10, replace=False)
    for i in rows:
        frame.at[i, "label"] = str(rng.choice([x for x in labels if x != frame.at[i, "label"]]))
    path = tmp_path / "flipped.csv"
    frame.to_csv(path, index=False)
    return path, {int(i) for i in rows}


def test_flagged_rows_are_mostly_flipped_ones(tiny_recipe, flipped_topics, tmp_path):
    """The tiny encoder has random weights, so the word and character n-gram models carry the
    ensemble. The method before issue 21 (probe + character n-grams, every row cleanlab
    found flagged) flags 94 rows here, 30 of them flipped: precision 0.32; this one about
    0.5."""
    path, flipped = flipped_topics
    tiny_recipe["data"] = {"train": str(path)}
    report = check_data(load_recipe(tiny_recipe), QUIET, label_issues=True)
    issues = [f for f in report.findings if f.check == "label_issues"]
    flagged = {row for f in issues for row in f.rows}
    hits = len(flagged & flipped)
    assert hits / len(flagged) >= 0.45, f"{hits} of {len(flagged)} flagged rows are flipped"
    assert hits >= len(flipped) // 3

    summary = report.summary
    expected = summary["label_issues_expected_errors"]
    assert summary["label_issues"] == len(flagged)
    assert 0 < expected <= len(flagged)
    for finding in issues:  # one per split, each with its own expected count
        mine = sum(d["error_probability"] for d in finding.details)
        assert f"about {mine:.0f} of them expected to be real errors" in finding.message
    assert sum(len(f.rows) for f in issues) == len(flagged)
    models = summary["label_issue_models"]
    assert set(models) == {"pre-trained features", "word n-grams", "character n-grams"}
    assert all(isinstance(m["used"], bool) and 0 <= m["accuracy"] <= 1 for m in models.values())

    written = json.loads(report.write(tmp_path / "out").read_text())
    candidates = written["summary"]["label_issue_candidates"]
    assert len(candidates) > len(flagged)
    assert {c["row"] for c in candidates if c["flagged"]} == flagged
    assert all(c["flagged"] for c in candidates if c["error_probability"] >= FLAG_AT)
    assert all(c["suggested"] != c["label"] for c in candidates)
    assert candidates[0]["label_probability"] <= candidates[-1]["label_probability"]


def test_error_probabilities_follow_the_models():
    """A row the models give to another class is more likely wrong than one they agree with."""
    labels = np.array([0] * 30 + [1] * 30)
    p = np.tile([0.9, 0.1], (60, 1))
    p[30:] = [0.1, 0.9]
    p[0] = [0.02, 0.98]  # given 0, the models say 1
    wrong = error_probabilities(labels, p)
    assert wrong[0] > 0.5 > wrong[1:].max()
    assert wrong.shape == (60,) and (wrong >= 0).all() and (wrong <= 1).all()
