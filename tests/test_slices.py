"""Bias (`data.slice_columns`): the missing-column refusal, class balance per slice in the
data check, metrics per slice in metrics.json with the worst named, the warning's interval
(a small slice is not over-read) and the report's Slices section."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from tunesmith.data.quality import check_data
from tunesmith.errors import UserError
from tunesmith.evaluate.metrics import classification_metrics
from tunesmith.evaluate.slices import ExampleResults, slice_metrics, wilson
from tunesmith.recipe import DataConfig, load_recipe
from tunesmith.run import train

from .conftest import TOPICS, make_rows
from .test_multi_label import bow_model_dir  # noqa: F401 (a fixture the last test uses)

QUIET = Console(quiet=True)


def with_regions(rows: list[dict], noisy: str | None = "south", seed: int = 0) -> pd.DataFrame:
    """Rows in three regions; the `noisy` region's labels are drawn at random (its rows are
    harder: their words say nothing about their label)."""
    rng = random.Random(seed)
    regions = ["north", "east", "south"]
    out = []
    for i, row in enumerate(rows):
        region = regions[i % 3]
        label = rng.choice(sorted(TOPICS)) if region == noisy else row["label"]
        out.append({"text": row["text"], "label": label, "region": region})
    return pd.DataFrame(out)


def test_a_missing_slice_column_is_refused_before_any_work(tiny_recipe, tmp_path):
    path = tmp_path / "data.csv"
    with_regions(make_rows(10)).rename(columns={"region": "area"}).to_csv(path, index=False)
    tiny_recipe["data"] = {"train": str(path), "slice_columns": ["region"]}
    recipe = load_recipe(tiny_recipe)
    for attempt in (lambda: check_data(recipe, QUIET), lambda: train(recipe, console=QUIET)):
        with pytest.raises(UserError) as caught:
            attempt()
        message = str(caught.value)
        assert "data.slice_columns" in message and "'region'" in message
        assert str(path) in message and "text, label, area" in message
    assert not Path(tiny_recipe["output_dir"]).exists()  # nothing written


def test_data_check_gives_class_balance_per_slice_and_warns_of_a_skewed_one(tiny_recipe, tmp_path):
    frame = with_regions(make_rows(40), noisy=None)
    # the west region holds only sports rows: a class balance far from the rest
    west = pd.DataFrame(
        {"text": [r["text"] for r in make_rows(30, seed=3) if r["label"] == "sports"]}
    )
    frame = pd.concat([frame, west.assign(label="sports", region="west")], ignore_index=True)
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    tiny_recipe["data"] = {"train": str(path), "slice_columns": ["region"]}
    report = check_data(load_recipe(tiny_recipe), QUIET, label_issues=False)

    balance = report.summary["slices"]["region"]
    assert balance["west"] == {"rows": 30, "labels": {"sports": 30}}
    assert balance["north"]["rows"] == 40 and set(balance["north"]["labels"]) == set(TOPICS)
    assert any(f.check == "slice_balance" and f.severity == "info" for f in report.findings)
    skewed = [f for f in report.findings if f.check == "slice_skew"]
    assert [f.details[0]["value"] for f in skewed] == ["west"]
    assert skewed[0].severity == "warning" and "(30 rows)" in skewed[0].message
    assert "absent here" in skewed[0].message
    written = json.loads(json.dumps(report.to_dict()))  # quality.json holds it as is
    assert written["summary"]["slices"]["region"]["west"]["rows"] == 30


def test_balanced_slices_are_not_warned_about(tiny_recipe, tmp_path):
    path = tmp_path / "data.csv"
    with_regions(make_rows(40), noisy=None).to_csv(path, index=False)
    tiny_recipe["data"] = {"train": str(path), "slice_columns": ["region"]}
    report = check_data(load_recipe(tiny_recipe), QUIET, label_issues=False)
    assert not [f for f in report.findings if f.check == "slice_skew"]
    assert set(report.summary["slices"]["region"]) == {"north", "east", "south"}


def test_metrics_per_slice_name_the_hard_region(tiny_recipe, tmp_path):
    path = tmp_path / "data.csv"
    with_regions(make_rows(60)).to_csv(path, index=False)
    tiny_recipe["data"] = {"train": str(path), "slice_columns": ["region"]}
    tiny_recipe["method"] = {"name": "full"}
    tiny_recipe["train"] |= {"epochs": 6, "learning_rate": 1e-3}
    tiny_recipe["guards"] = {"data_quality": "off"}
    metrics = train(load_recipe(tiny_recipe), console=QUIET)

    written = json.loads((Path(tiny_recipe["output_dir"]) / "metrics.json").read_text())
    assert written["slices"] == metrics["slices"]
    regions = written["slices"]["region"]
    assert set(regions) == {"north", "east", "south"}
    assert sum(entry["rows"] for entry in regions.values()) == written["splits"]["test"]
    for entry in regions.values():
        assert {"rows", "accuracy", "macro_f1", "loss"} <= set(entry)
    worst = written["slices_worst"]["region"]
    assert worst["value"] == "south" and worst["metric"] == "accuracy"
    assert worst["score"] == regions["south"]["accuracy"] < worst["rest"]
    low, high = worst["interval"]
    assert low <= worst["score"] <= high
    report = (Path(tiny_recipe["output_dir"]) / "report.html").read_text()
    assert 'id="slices"' in report and "south" in report


@pytest.fixture
def hand_results(tmp_path):
    """Hand-made test results on a file of `regions`: label 0 everywhere, the prediction
    right where `correct` is 1."""

    def make(correct: list[int], regions: list[str]) -> tuple[DataConfig, ExampleResults]:
        path = tmp_path / "test.csv"
        pd.DataFrame({"text": "x", "label": "a", "region": regions}).to_csv(path, index=False)
        y_true = np.zeros(len(correct), dtype=int)
        y_pred = 1 - np.asarray(correct)

        def metrics_of(indices: np.ndarray) -> dict:
            return classification_metrics(y_true[indices], y_pred[indices], ["a", "b"])

        outcome = ExampleResults(
            str(path), list(range(len(correct))), metrics_of, {"accuracy": np.array(correct, float)}
        )
        return DataConfig(train=str(path), slice_columns=["region"]), outcome

    return make


def test_a_small_bad_slice_is_not_warned_about_but_a_large_one_is(hand_results):
    rest = [1] * 188 + [0] * 12  # 94% on 200 rows
    # 5 of 6 right (83%): the Wilson upper bound (0.97) is above the rest's 0.94
    found = slice_metrics(
        *hand_results([1, 1, 1, 1, 0, 1, *rest], ["small"] * 6 + ["big"] * 200), "accuracy"
    )
    assert found["slices"]["region"]["small"]["rows"] == 6
    worst = found["slices_worst"]["region"]
    assert worst["value"] == "small" and worst["interval"][1] > worst["rest"]
    assert found["slices_warnings"] == []

    # the same 83% on 60 rows is far below: warned, with its size
    large = ([1] * 5 + [0]) * 10
    found = slice_metrics(*hand_results(large + rest, ["large"] * 60 + ["big"] * 200), "accuracy")
    (warning,) = found["slices_warnings"]
    assert warning["value"] == "large" and warning["rows"] == 60
    assert "(60 test rows)" in warning["message"] and warning["interval"][1] < warning["rest"]


def test_a_metric_without_per_example_values_is_bootstrapped(hand_results):
    rest = [1] * 188 + [0] * 12
    large = ([1] * 5 + [0]) * 10
    found = slice_metrics(*hand_results(large + rest, ["large"] * 60 + ["big"] * 200), "macro_f1")
    low, high = found["slices_worst"]["region"]["interval"]
    score = found["slices"]["region"]["large"]["macro_f1"]
    assert found["slices_worst"]["region"]["value"] == "large"
    assert low < score <= high


def test_wilson_interval_is_wide_for_few_rows():
    low, high = wilson(0, 6)
    assert low == 0 and 0.35 < high < 0.45
    low, high = wilson(50, 100)
    assert 0.39 < low < 0.41 and 0.59 < high < 0.61


def test_no_slice_columns_no_slices_and_a_kind_without_results_is_skipped(hand_results):
    assert slice_metrics(DataConfig(train="unused.csv"), None, "accuracy") == {}
    data, _ = hand_results([1, 0], ["a", "b"])
    assert "slices_skipped" in slice_metrics(data, None, "accuracy")


def test_report_slices_section_in_both_languages(tmp_path):
    from tunesmith.i18n import language
    from tunesmith.report.render import build_context, render_html

    from .test_report_layout import write_run_folder

    run = write_run_folder(tmp_path / "run", "text-classification")
    pages = {}
    for lang in ("en", "ja"):
        with language(lang):
            pages[lang] = render_html(build_context(run))
    english = pages["en"]
    section = english[english.index('id="slices"') : english.index("Data findings")]
    assert "acquisition_channel_of_the_customer_account" in section and "九州" in section
    assert section.count(">worst<") == 2  # one per column
    assert "九州 (31 test rows): Accuracy 0.710 (95% interval 0.533 to 0.839)" in section
    assert "phone (39" not in section  # a worst slice that is not warned about has no warning
    assert '<div class="scroll">' in section
    assert "スライス別の評価" in pages["ja"] and "テスト 31 行" in pages["ja"]


def test_multi_label_runs_give_metrics_per_slice(bow_model_dir, tmp_path):  # noqa: F811
    from .test_multi_label import base_recipe, multi_label_rows, write_jsonl

    rows = [
        {**row, "region": ["north", "south"][i % 2]} for i, row in enumerate(multi_label_rows(80))
    ]
    recipe = base_recipe(bow_model_dir, write_jsonl(tmp_path / "train.jsonl", rows))
    recipe["data"]["slice_columns"] = ["region"]
    recipe["method"] = {"name": "lora"}
    recipe["train"] |= {"epochs": 1, "learning_rate": 1e-2}
    recipe["output_dir"] = str(tmp_path / "run")
    report = check_data(load_recipe(recipe), QUIET, label_issues=False)
    assert set(report.summary["slices"]["region"]) == {"north", "south"}

    metrics = train(load_recipe(recipe), console=QUIET)
    regions = metrics["slices"]["region"]
    assert sum(entry["rows"] for entry in regions.values()) == metrics["splits"]["test"]
    assert {"rows", "micro_f1", "macro_f1", "subset_accuracy"} <= set(regions["north"])
    worst = metrics["slices_worst"]["region"]
    assert worst["metric"] == "micro_f1" and worst["score"] == regions[worst["value"]]["micro_f1"]
    low, high = worst["interval"]  # bootstrapped: micro-F1 is no mean of per-row values
    assert low <= high


def test_an_image_folder_has_no_columns_to_slice_by(tiny_image_recipe):
    tiny_image_recipe["data"]["slice_columns"] = ["camera"]
    with pytest.raises(UserError, match=r"data\.slice_columns: data\.train is the folder"):
        check_data(load_recipe(tiny_image_recipe), QUIET)


def test_generative_data_check_counts_rows_per_slice(tiny_llm_recipe, tmp_path):
    from .conftest import make_qa_rows

    rows = [{**row, "source": ["faq", "chat"][i % 3 == 0]} for i, row in enumerate(make_qa_rows())]
    path = tmp_path / "qa-sources.jsonl"
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    tiny_llm_recipe["data"] = {"train": str(path), "slice_columns": ["source"]}
    report = check_data(load_recipe(tiny_llm_recipe), QUIET, label_issues=False)
    assert report.summary["slices"]["source"] == {"faq": {"rows": 40}, "chat": {"rows": 20}}
    (note,) = [f for f in report.findings if f.check == "slice_balance"]
    assert "'faq' 40 rows" in note.message and "class balance" not in note.message
