import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tunesmith.data.split import stratified_split
from tunesmith.data.tables import read_table
from tunesmith.data.text import load_text_classification
from tunesmith.errors import UserError
from tunesmith.recipe import DataConfig

from .conftest import make_rows


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif path.suffix == ".json":
        path.write_text(json.dumps(frame.to_dict(orient="records")))
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json", ".parquet"])
def test_every_format_reads_the_same_rows(tmp_path, suffix):
    frame = pd.DataFrame(make_rows(5))
    read = read_table(write(frame, tmp_path / f"d{suffix}"))
    assert read[["text", "label"]].to_dict(orient="records") == frame.to_dict(orient="records")


def test_missing_file_names_the_role_and_path(tmp_path):
    with pytest.raises(UserError, match=r"data.train: file not found: .*nope.csv"):
        read_table(tmp_path / "nope.csv", role="data.train")


def test_empty_file_is_reported(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(UserError, match="is empty"):
        read_table(tmp_path / "e.csv")


def test_corrupt_parquet_is_reported(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(UserError, match="not a valid parquet file"):
        read_table(tmp_path / "bad.parquet")


def test_bad_jsonl_line_is_named(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": oops}\n')
    with pytest.raises(UserError, match="line 2 is not valid JSON"):
        read_table(tmp_path / "d.jsonl")


def test_unsupported_extension(tmp_path):
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(UserError, match=r"unsupported file type '\.xlsx'"):
        read_table(tmp_path / "d.xlsx")


def config(path: Path, **extra) -> DataConfig:
    return DataConfig(train=str(path), **extra)


def test_missing_column_lists_columns_and_suggests(tmp_path):
    path = write(pd.DataFrame(make_rows(5)), tmp_path / "d.csv")
    with pytest.raises(UserError) as caught:
        load_text_classification(config(path, text_column="txt"), seed=0)
    message = str(caught.value)
    assert "data.text_column: column 'txt' not found" in message
    assert "did you mean 'text'?" in message and "its columns are: text, label" in message


def test_empty_rows_are_named_or_dropped(tmp_path):
    frame = pd.DataFrame(make_rows(10))
    frame.loc[3, "text"] = ""
    frame.loc[7, "label"] = None
    path = write(frame, tmp_path / "d.csv")
    with pytest.raises(UserError, match=r"2 row\(s\) with an empty .*rows 3, 7.*drop_empty"):
        load_text_classification(config(path), seed=0)
    splits = load_text_classification(config(path, drop_empty=True), seed=0)
    kept = len(splits.train) + len(splits.validation) + len(splits.test)
    assert kept == len(frame) - 2


def test_single_class_is_refused(tmp_path):
    path = write(pd.DataFrame({"text": ["a", "b", "c"], "label": ["x"] * 3}), tmp_path / "d.csv")
    with pytest.raises(UserError, match="single class"):
        load_text_classification(config(path), seed=0)


def test_test_label_unseen_in_training_is_refused(tmp_path):
    train = write(pd.DataFrame(make_rows(10)), tmp_path / "train.csv")
    test_rows = pd.DataFrame([*make_rows(2), {"text": "new thing", "label": "weather"}])
    test = write(test_rows, tmp_path / "test.csv")
    with pytest.raises(UserError) as caught:
        load_text_classification(config(train, test=str(test)), seed=0)
    assert "data.test" in str(caught.value) and "'weather' never seen in training" in str(
        caught.value
    )
    assert "rows 6" in str(caught.value)


def test_numeric_labels_keep_numeric_order(tmp_path):
    frame = pd.DataFrame({"text": [f"t {i}" for i in range(60)], "label": [2, 10, 1] * 20})
    splits = load_text_classification(config(write(frame, tmp_path / "d.csv")), seed=0)
    assert splits.label_names == ["1", "2", "10"]


def test_given_files_are_used_as_they_are(tmp_path):
    train = write(pd.DataFrame(make_rows(10)), tmp_path / "train.jsonl")
    val = write(pd.DataFrame(make_rows(2, seed=1)), tmp_path / "val.jsonl")
    test = write(pd.DataFrame(make_rows(3, seed=2)), tmp_path / "test.parquet")
    splits = load_text_classification(config(train, validation=str(val), test=str(test)), 0)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (30, 6, 9)
    assert splits.test.rows == list(range(9)) and splits.test.source == str(test)


def test_stratified_split_keeps_proportions_and_is_seeded():
    labels = ["a"] * 100 + ["b"] * 50 + ["c"] * 10
    first = stratified_split(labels, 0.1, 0.2, seed=3)
    again = stratified_split(labels, 0.1, 0.2, seed=3)
    other = stratified_split(labels, 0.1, 0.2, seed=4)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["test"], other["test"])
    test_labels = [labels[i] for i in first["test"]]
    assert (test_labels.count("a"), test_labels.count("b"), test_labels.count("c")) == (20, 10, 2)
    everything = np.concatenate(list(first.values()))
    assert sorted(everything.tolist()) == list(range(len(labels)))


def test_tiny_classes_stay_in_training():
    split = stratified_split(["a"] * 20 + ["rare"], 0.1, 0.2, seed=0)
    assert 20 in split["train"]
