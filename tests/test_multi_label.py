"""multi-label-classification end to end on the tiny BERT: reading label sets, thresholds,
a LoRA and a full run through the CLI, eval/predict/export, and bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tunesmith.cli import main
from tunesmith.errors import UserError
from tunesmith.recipe import DataConfig
from tunesmith.tasks.multi_label_classification.data import (
    load_multi_label,
    parse_label_cells,
    read_labelled,
)
from tunesmith.tasks.multi_label_classification.thresholds import Thresholds, tune

from .conftest import FILLER, TOPICS

TAGS = {
    **TOPICS,
    "music": ["guitar", "song", "concert", "piano", "album", "band", "melody", "drums"],
    "travel": ["flight", "hotel", "beach", "passport", "airport", "luggage", "trip", "museum"],
}
WORDS_PER_TAG = 3
"""Each tag's first words only: few enough that the tiny model learns them in seconds."""


def multi_label_rows(count: int, seed: int = 0) -> list[dict]:
    """Unique texts whose words give their tags away: mostly 2-3 tags per row, some with one,
    every 20th with none (filler words only)."""
    rng, names = random.Random(seed), sorted(TAGS)
    rows: list[dict] = []
    seen: set[str] = set()
    while len(rows) < count:
        tags = sorted(rng.sample(names, rng.choice([1, 2, 2, 3, 3]) if len(rows) % 20 else 0))
        words = [w for tag in tags for w in rng.sample(TAGS[tag][:WORDS_PER_TAG], 2)]
        words += rng.sample(FILLER, rng.randint(1, 4))
        rng.shuffle(words)
        text = " ".join(words)
        if text not in seen:
            seen.add(text)
            rows.append({"text": text, "tags": tags})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_recipe(folder: Path, recipe: dict, name: str = "recipe.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def bow_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT with attention that averages the tokens into [CLS].

    Randomly initialised, its [CLS] output hardly depends on the text (the spread across
    texts is ~1e-4), so no method could learn from it in seconds; pre-trained encoders pass
    the words on. Near-zero query/key weights give near-uniform attention (not zero: DoRA
    divides by each weight's norm), identity value/output and pooler weights carry the mean
    of the tokens to the head: a bag of words, the same code paths."""
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    size = model.config.hidden_size
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            layer.attention.self.query.weight.mul_(0.01)
            layer.attention.self.key.weight.mul_(0.01)
            layer.attention.self.value.weight.copy_(3 * torch.eye(size))
            layer.attention.output.dense.weight.copy_(torch.eye(size))
        model.bert.pooler.dense.weight.copy_(torch.eye(size))
    folder = tmp_path_factory.mktemp("bow-bert")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return folder


def base_recipe(model: Path, train: Path) -> dict:
    return {
        "task": "multi-label-classification",
        "model": str(model),
        "data": {"train": str(train), "label_column": "tags"},
        "train": {"batch_size": 8, "precision": "fp32"},
        "guards": {"forgetting": None, "overfitting": None},
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, bow_model_dir: Path) -> dict[str, Path]:
    """A LoRA and a full run, trained once through the CLI for the tests that read them."""
    folder = tmp_path_factory.mktemp("multi-label-runs")
    train = write_jsonl(folder / "train.jsonl", multi_label_rows(200))
    settings = {"lora": ("lora", 1e-2, 12), "full": ("full", 2e-3, 6)}
    out = {}
    for name, (method, learning_rate, epochs) in settings.items():
        recipe = base_recipe(bow_model_dir, train)
        recipe["method"] = {"name": method}
        recipe["train"] |= {"learning_rate": learning_rate, "epochs": epochs}
        path = write_recipe(folder, recipe, f"{name}.yaml")
        assert main(["train", str(path), "--output", str(folder / name)]) == 0
        out[name] = folder / name
    return out


# --- reading label sets --------------------------------------------------------------------


def test_label_cells_are_lists_json_lists_or_separated_strings():
    cells = pd.Series(
        [["b", "a"], np.array(["c"]), '["x, y", "z"]', " a | c ", "", None, 3, ("a", "a")]
    )
    labels, separator = parse_label_cells(cells, "tags", "t.jsonl", "data.train")
    assert separator == "|"
    assert labels == [("b", "a"), ("c",), ("x, y", "z"), ("a", "c"), (), (), ("3",), ("a",)]
    semicolons, found = parse_label_cells(pd.Series(["a;b", "c"]), "tags", "t.csv", "x")
    assert (semicolons, found) == ([("a", "b"), ("c",)], ";")


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_every_format_reads_the_same_label_sets(tmp_path, suffix):
    rows = [{"text": "pizza match", "tags": ["food", "sports"]}, {"text": "a day", "tags": []}]
    path = tmp_path / f"train.{suffix}"
    frame = pd.DataFrame(rows)
    if suffix == "csv":  # a csv holds strings: labels joined by a separator
        frame.assign(tags=[",".join(t) for t in frame["tags"]]).to_csv(path, index=False)
    elif suffix == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    read = read_labelled(DataConfig(train=str(path), label_column="tags"), path, "data.train")
    assert read["labels"].tolist() == [("food", "sports"), ()]
    assert read.attrs["separator"] == ("," if suffix == "csv" else None)


def test_mixed_separators_name_the_rows():
    cells = pd.Series(["a;b", "c", "d,e", "f,g"])
    with pytest.raises(UserError, match=r"';' in rows 0; ',' in rows 2, 3") as caught:
        parse_label_cells(cells, "tags", "t.csv", "data.train")
    assert "JSON list" in str(caught.value)


def test_a_label_cell_that_is_not_a_name_is_refused_with_its_row():
    with pytest.raises(UserError, match=r"row 1 \(0-based\) holds a dict"):
        parse_label_cells(pd.Series([["a"], [{"x": 1}]]), "tags", "t.jsonl", "data.train")
    with pytest.raises(UserError, match=r"row 0 \(0-based\) holds 1.5"):
        parse_label_cells(pd.Series([1.5]), "tags", "t.jsonl", "data.train")


def test_splits_keep_rare_labels_in_train_and_refuse_bad_rows(tmp_path):
    rows = multi_label_rows(120)
    rows[5]["tags"] = [*rows[5]["tags"], "rare"]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    config = DataConfig(train=str(train), label_column="tags")
    splits = load_multi_label(config, seed=0)
    assert splits.label_names == ["food", "music", "rare", "sports", "tech", "travel"]
    assert splits.train.targets[:, 2].sum() == 1  # stratified on the rarest label: kept
    assert sum(map(len, (splits.train, splits.validation, splits.test))) == 120

    rows[7]["text"] = " "
    write_jsonl(train, rows)
    with pytest.raises(UserError, match=r"empty 'text' \(0-based rows 7\)"):
        load_multi_label(config, seed=0)
    with pytest.raises(UserError, match="column 'label' not found"):
        load_multi_label(DataConfig(train=str(train)), seed=0)


def test_labels_unseen_in_train_name_the_file_and_rows(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", multi_label_rows(60))
    validation = write_jsonl(
        tmp_path / "val.jsonl",
        [{"text": "pizza", "tags": ["food"]}, {"text": "rain", "tags": ["weather", "food"]}],
    )
    config = DataConfig(train=str(train), validation=str(validation), label_column="tags")
    with pytest.raises(UserError, match=r"val.jsonl: label\(s\) 'weather' never seen.*rows 1"):
        load_multi_label(config, seed=0)


# --- thresholds ----------------------------------------------------------------------------


def test_thresholds_are_tuned_globally_and_per_label_with_enough_positives():
    rng = np.random.default_rng(0)
    names = ["a", "b", "c"]
    targets = np.zeros((40, 3), dtype=np.float32)
    targets[:20, 0] = 1
    targets[:3, 1] = 1  # 3 validation positives: too few for a threshold of its own
    targets[20:30, 2] = 1
    probabilities = rng.uniform(0.0, 0.2, size=(40, 3))
    probabilities[:20, 0] = rng.uniform(0.25, 0.3, 20)  # "a" scores low but separably
    probabilities[:3, 1] = 0.9
    probabilities[20:30, 2] = rng.uniform(0.6, 0.9, 10)
    probabilities[30:, 2] = rng.uniform(0.4, 0.5, 10)  # "c" needs a higher threshold
    thresholds = tune(probabilities, targets, names)
    # the best micro-F1 needs 0.25 for "a"; "c" then gets its own, the nearest perfect one
    assert thresholds.global_threshold == 0.25
    assert thresholds.own == {"a": 0.25, "c": 0.5}
    assert thresholds.vector(names).tolist() == [0.25, 0.25, 0.5]
    assert (thresholds.apply(probabilities, names) == targets).all()
    saved = thresholds.to_dict(names)
    assert saved["tuned_per_label"] == ["a", "c"] and saved["validation_rows"] == 40
    assert Thresholds.from_dict(json.loads(json.dumps(saved))) == thresholds
    assert tune(probabilities, np.zeros_like(targets), names).global_threshold == 0.5


# --- runs through the CLI ------------------------------------------------------------------


def test_lora_and_full_runs_learn_and_store_their_thresholds(runs):
    for name, weights in (("lora", "adapter"), ("full", "model")):
        run = runs[name]
        metrics = json.loads((run / "metrics.json").read_text())
        fine = metrics["fine_tuned"]
        # predicting every label would score about 0.6 micro-F1 here
        assert fine["micro_f1"] >= 0.8 and fine["macro_f1"] >= 0.75, (name, fine)
        for key in ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss", "loss"):
            assert isinstance(fine[key], float)
        assert set(fine["per_class"]) == set(TAGS) == set(metrics["labels"])
        for contender in ("base", "baseline"):
            assert {"micro_f1", "macro_f1", "subset_accuracy"} <= set(metrics[contender])
            assert metrics[contender]["thresholds"]["tuned_per_label"]
        saved = json.loads((run / weights / "thresholds.json").read_text())
        assert saved == metrics["thresholds"] == fine["thresholds"]
        assert 0 < saved["global"] < 1 and set(saved["per_label"]) == set(TAGS)
        history = [json.loads(line) for line in (run / "history.jsonl").open()]
        assert "val_micro_f1" in history[-1] and "val_macro_f1" in history[-1]
        report = (run / "report.html").read_text()
        assert "Subset accuracy" in report and "Hamming loss" in report
    assert {p.name for p in runs["lora"].iterdir()} >= {"quality.json", "estimate.json"}


def test_eval_predict_and_export_apply_the_stored_thresholds(runs, tmp_path, capsys):
    run = runs["lora"]
    assert main(["eval", str(run), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    stored = json.loads((run / "metrics.json").read_text())["fine_tuned"]
    assert scored["micro_f1"] == pytest.approx(stored["micro_f1"])
    assert scored["thresholds"] == stored["thresholds"]

    other = tmp_path / "other.csv"  # labels joined by ';' this time
    rows = multi_label_rows(30, seed=5)
    pd.DataFrame([{"text": r["text"], "tags": ";".join(r["tags"])} for r in rows]).to_csv(
        other, index=False
    )
    assert main(["eval", str(run), "--data", str(other), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 30

    texts = ["guitar song pizza bread", "the a very"]
    output = tmp_path / "predictions.jsonl"
    assert main(["predict", str(run), *texts, "--output", str(output)]) == 0
    predicted = [json.loads(line) for line in output.open()]
    thresholds = stored["thresholds"]["per_label"]
    for row in predicted:
        over = {n for n, p in row["probabilities"].items() if p >= thresholds[n]}
        assert set(row["labels"]) == over and row["label"] == ", ".join(row["labels"])
    assert {"music", "food"} <= set(predicted[0]["labels"])

    exported = tmp_path / "exported"
    assert main(["export", str(run), "--merge", "--output", str(exported)]) == 0
    assert json.loads((exported / "thresholds.json").read_text())["per_label"] == thresholds
    model = AutoModelForSequenceClassification.from_pretrained(exported).eval()
    assert model.config.problem_type == "multi_label_classification"
    tokenizer = AutoTokenizer.from_pretrained(exported)
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    ours = torch.tensor([[row["probabilities"][n] for n in names] for row in predicted])
    torch.testing.assert_close(torch.sigmoid(logits), ours, atol=1e-4, rtol=0)


# --- bad input and the data check ----------------------------------------------------------


def test_unseen_label_in_the_test_file_exits_2_and_writes_nothing(bow_model_dir, tmp_path, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", multi_label_rows(60))
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "rain today", "tags": ["weather"]}])
    recipe = base_recipe(bow_model_dir, train)
    recipe["data"]["test"] = str(test)
    output = tmp_path / "should-not-exist"
    code = main(["train", str(write_recipe(tmp_path, recipe)), "--output", str(output)])
    err = capsys.readouterr().err
    assert code == 2 and not output.exists()
    assert "test.jsonl" in err and "'weather' never seen in training" in err
    assert "rows 0" in err and "Traceback" not in err


def test_data_check_reports_label_sets_and_refuses_leakage(bow_model_dir, tmp_path):
    rows = multi_label_rows(80)
    rows[3]["tags"] = [*rows[3]["tags"], "rare"]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    test = write_jsonl(tmp_path / "test.jsonl", [*rows[10:13], *multi_label_rows(10, seed=3)])
    recipe = base_recipe(bow_model_dir, train)
    recipe["data"]["test"] = str(test)
    out = tmp_path / "check"
    path = write_recipe(tmp_path, recipe)
    assert main(["data", "check", str(path), "--output", str(out)]) == 1  # leakage: an error
    findings = json.loads((out / "quality.json").read_text())["findings"]
    leaks = [f for f in findings if f["check"] == "leakage" and f["severity"] == "error"]
    assert leaks and set(leaks[0]["rows"]) <= {10, 11, 12}
    rare = next(f for f in findings if f["check"] == "rare_labels")
    assert rare["rows"] == [3] and "'rare' (1)" in rare["message"]
    unlabelled = [f for f in findings if f["check"] == "rows_without_labels"]
    assert {r for f in unlabelled if f["file"] == str(train) for r in f["rows"]} == {0, 20, 40, 60}
    assert [f["rows"] for f in unlabelled if f["split"] == "test"] == [[3]]
    summary = json.loads((out / "quality.json").read_text())["summary"]
    assert summary["label_counts"]["rare"] == 1
    assert 1.5 < summary["label_cardinality"]["train"]["mean_labels_per_row"] < 2.5


def test_serve_classifies_with_the_runs_thresholds(runs):
    """/v1/classify gives each text the labels `predict` gives it (the tuned thresholds)."""
    import httpx2 as httpx

    from tunesmith.inference import predict_run

    from .test_serve import serving

    texts = [row["text"] for row in multi_label_rows(8, seed=5)]
    expected = predict_run(runs["lora"], texts)
    with serving(runs["lora"]) as url:
        answer = httpx.post(f"{url}/v1/classify", json={"input": texts}).json()
    assert [row["labels"] for row in answer["data"]] == [row["labels"] for row in expected]
    assert any(row["labels"] for row in expected)
