"""Bad input to the data readers: every mistake is a UserError that names the file, the line
or row, and the fix (never a traceback, never silently wrong data)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tunesmith.cli import main
from tunesmith.data.causal import load_causal_lm, read_prompts
from tunesmith.data.images import load_image_classification
from tunesmith.data.tables import read_table
from tunesmith.data.text import labelled_rows, load_text_classification
from tunesmith.errors import UserError
from tunesmith.recipe import DataConfig

from .conftest import make_image_folder, make_rows

CSV = "text,label\nthe team won,sports\n日本語のテキスト,food\n"


def refused(path: Path, role: str = "data.train") -> str:
    with pytest.raises(UserError) as caught:
        read_table(path, role=role)
    return str(caught.value)


def labelled(path: Path, **extra) -> pd.DataFrame:
    return labelled_rows(DataConfig(train=str(path), **extra), str(path), "data.train")[0]


def refused_labelled(path: Path, **extra) -> str:
    with pytest.raises(UserError) as caught:
        labelled(path, **extra)
    return str(caught.value)


# --- encodings -------------------------------------------------------------------------------


def test_shift_jis_csv_names_the_line_and_the_fix(tmp_path):
    path = tmp_path / "sjis.csv"
    path.write_bytes(CSV.encode("shift_jis"))
    message = refused(path)
    assert str(path) in message and "data.train" in message
    assert "not UTF-8" in message and "line 3" in message
    assert "Save it as UTF-8" in message and "CSV UTF-8" in message


def test_utf16_csv_is_named_as_utf16(tmp_path):
    path = tmp_path / "utf16.csv"
    path.write_bytes(CSV.encode("utf-16"))  # with a byte-order mark
    message = refused(path)
    assert "UTF-16" in message and "line 1" in message and "Save it as UTF-8" in message


def test_utf16_without_a_byte_order_mark_is_refused(tmp_path):
    path = tmp_path / "utf16le.csv"
    path.write_bytes(CSV.encode("utf-16-le"))  # valid UTF-8 bytes, but NUL after every letter
    message = refused(path)
    assert "NUL" in message and "UTF-16" in message and "line 1" in message


def test_jsonl_with_one_latin1_line_names_that_line(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [json.dumps(row).encode() for row in make_rows(2)]
    lines.insert(4, '{"text": "un café", "label": "food"}'.encode("latin-1"))
    path.write_bytes(b"\n".join(lines) + b"\n")
    message = refused(path)
    assert "line 5" in message and "not UTF-8" in message and "caf" in message
    assert "save with the encoding UTF-8" in message


def test_the_line_is_counted_across_read_chunks(tmp_path):
    path = tmp_path / "big.csv"
    good = "text,label\n" + "a text that is long enough to fill the file,sports\n" * 40_000
    path.write_bytes(good.encode() + "é,food\n".encode("latin-1"))  # past the first MiB
    assert "line 40002" in refused(path)


def test_excel_workbook_renamed_to_csv(tmp_path):
    path = tmp_path / "sheet.csv"
    path.write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)))
    message = refused(path)
    assert "xlsx" in message and "CSV UTF-8" in message


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json"])
def test_utf8_with_a_byte_order_mark_is_read_silently(tmp_path, suffix):
    frame = pd.DataFrame(make_rows(2))
    path = tmp_path / f"bom{suffix}"
    if suffix == ".jsonl":
        text = frame.to_json(orient="records", lines=True)
    elif suffix == ".json":
        text = frame.to_json(orient="records")
    else:
        text = frame.to_csv(index=False, sep="\t" if suffix == ".tsv" else ",")
    path.write_bytes(text.encode("utf-8-sig"))
    read = read_table(path)
    assert list(read.columns) == ["text", "label"]
    assert read.to_dict(orient="records") == frame.to_dict(orient="records")


def test_document_folder_and_prompt_file_name_the_bad_line(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("a first document\n")
    (docs / "b.txt").write_bytes(b"first line\nsecond caf\xe9\n")
    with pytest.raises(UserError, match=r"b\.txt is not UTF-8 text: line 2.*remove it"):
        load_causal_lm(DataConfig(train=str(docs), format="text"), seed=0)
    with pytest.raises(UserError, match=r"b\.txt is not UTF-8 text: line 2"):
        read_prompts([str(docs / "b.txt")], DataConfig(train="x"))


# --- malformed files -------------------------------------------------------------------------


def test_csv_row_with_an_extra_cell_names_its_line(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text('text,label\ngood row,sports\n"two\nlines",food\nhello, world,tech\n')
    message = refused(path)
    assert "line 5 has 3 cells" in message and "names 2 columns" in message
    assert "quotes" in message


def test_extra_cells_in_every_row_do_not_shift_the_columns(tmp_path):
    # pandas would make the first column the index and read " world" as the text
    path = tmp_path / "shifted.csv"
    path.write_text("text,label\nhello, world,sports\nfine, thanks,food\n")
    assert "line 2 has 3 cells" in refused(path)


def test_tsv_with_an_extra_cell(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("text\tlabel\na\tb\nc\td\te\n")
    message = refused(path)
    assert "line 3 has 3 cells" in message and "a tab" in message


def test_unclosed_quote_names_the_line_it_opens(tmp_path):
    path = tmp_path / "quote.csv"
    path.write_text('text,label\nfine,sports\n"never closed,food\nmore,tech\n')
    message = refused(path)
    assert "line 3 opens a quoted cell" in message and "never closed" in message


def test_blank_lines_only_and_header_only(tmp_path):
    blank = tmp_path / "blank.csv"
    blank.write_text("\n\n\n")
    assert "only blank lines" in refused(blank)
    header = tmp_path / "header.csv"
    header.write_text("text,label\n")
    assert "no data rows (only a header)" in refused(header)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("3", "expected a JSON list of objects"),
        ('{"a": [1], "b": [2]}', "holds 2 lists"),
        ('[{"text": "a", "label": "x"}, "oops"]', r"item 1 \(0-based\) of the list is not an"),
        ('[{"text": "a"},', "not valid JSON: .* at line 1, column"),
        ('{"text": "a"}\n{"text": "b"}\n', "name it .jsonl"),
    ],
)
def test_json_that_is_not_a_list_of_records(tmp_path, content, expected):
    path = tmp_path / "d.json"
    path.write_text(content)
    message = refused(path)
    assert str(path) in message and "data.train" in message
    assert re.search(expected, message), message


def test_jsonl_bad_line_is_named_with_the_role(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\r\n\n{"text": "b", "label": }\n')
    message = refused(path, role="data.test")
    assert message.startswith("data.test: ") and "line 3 is not valid JSON" in message


def test_json_list_named_jsonl_gets_a_hint(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('[\n{"text": "a", "label": "x"}\n]\n')
    assert "name it .json instead" in refused(path)


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n["b", "y"]\n')
    assert "line 2 is not a JSON object" in refused(path)


# --- numbers where texts or labels belong ----------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_text_column_of_numbers_is_refused(tmp_path, suffix):
    frame = pd.DataFrame({"id": range(12), "text": range(12), "label": ["a", "b"] * 6})
    path = tmp_path / f"d{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    message = refused_labelled(path)
    assert str(path) in message and "column 'text' holds numbers, not texts" in message
    assert "its columns are: id, text, label" in message and "data.text_column" in message


def test_text_column_of_booleans_is_refused(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame({"text": [True, False] * 6, "label": ["a", "b"] * 6}).to_parquet(path)
    assert "holds true/false values, not texts" in refused_labelled(path)


def test_a_few_numbers_among_texts_are_kept_as_text(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"text": "hello there", "label": "a"}, {"text": 42, "label": "b"}] * 3
    path.write_text("\n".join(json.dumps(row) for row in rows))
    assert labelled(path)["text"].tolist()[:2] == ["hello there", "42"]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_fractional_labels_are_refused(tmp_path, suffix):
    frame = pd.DataFrame({"text": [f"text {i}" for i in range(6)], "label": [1.0, 2.0, 1.5] * 2})
    path = tmp_path / f"d{suffix}"
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_csv(path, index=False)
    message = refused_labelled(path)
    assert str(path) in message and "column 'label' holds numbers with a fraction" in message
    assert "row 2: 1.5" in message and "categories" in message


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_whole_number_float_labels_read_as_integers_in_every_format(tmp_path, suffix):
    frame = pd.DataFrame({"text": [f"text {i}" for i in range(6)], "label": [1.0, 2.0, None] * 2})
    path = tmp_path / f"d{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)  # writes "1.0", "2.0", ""
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    assert labelled(path)["label"].tolist() == ["1", "2", ""] * 2


def test_label_codes_keep_their_spelling(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\nfirst,01\nsecond,002\nthird,3\n")
    assert labelled(path)["label"].tolist() == ["01", "002", "3"]


def test_integer_and_boolean_labels(tmp_path):
    path = tmp_path / "d.parquet"
    frame = pd.DataFrame(
        {"text": ["a", "b", "c"], "label": [10, 2, 10], "flag": [True, False, True]}
    )
    frame.to_parquet(path)
    assert labelled(path)["label"].tolist() == ["10", "2", "10"]
    assert labelled(path, label_column="flag")["label"].tolist() == ["True", "False", "True"]


def test_list_in_a_text_cell_is_refused(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"text": "fine", "label": "a"}, {"text": ["a", "list"], "label": "b"}]
    path.write_text("\n".join(json.dumps(row) for row in rows))
    message = refused_labelled(path)
    assert "column 'text' holds a list in row 1" in message


def test_image_table_with_fractional_labels(tmp_path):
    make_image_folder(tmp_path / "imgs", per_class=2)
    paths = sorted(str(p) for p in (tmp_path / "imgs").rglob("*.png"))
    table = tmp_path / "images.csv"
    pd.DataFrame({"image": paths, "label": [0.5, 1.0] * 3}).to_csv(table, index=False)
    with pytest.raises(UserError, match="'label' holds numbers with a fraction"):
        load_image_classification(DataConfig(train=str(table)), seed=0)


def test_data_check_refuses_number_texts(tmp_path, capsys):
    path = tmp_path / "d.parquet"
    pd.DataFrame({"text": range(30), "label": [1.0, 2.0, 3.0] * 10}).to_parquet(path)
    assert main(["data", "check", "--data", str(path), "--no-label-issues"]) == 2
    assert "column 'text' holds numbers, not texts" in capsys.readouterr().err


def test_text_classification_reads_whole_float_labels(tmp_path):
    rows = make_rows(10)
    names = {"sports": 1.0, "food": 2.0, "tech": 3.0}
    frame = pd.DataFrame([{"text": r["text"], "label": names[r["label"]]} for r in rows])
    frame.to_parquet(tmp_path / "d.parquet")
    splits = load_text_classification(DataConfig(train=str(tmp_path / "d.parquet")), seed=0)
    assert splits.label_names == ["1", "2", "3"]


# --- rich markup in user strings -------------------------------------------------------------


def test_labels_that_look_like_markup_print_literally(tmp_path, tiny_model_dir, capsys):
    """A label "[/]" is a rich closing tag and "[urgent]" a style: both must print as is."""
    rows = make_rows(20)
    names = {"sports": "[/]", "food": "[/]", "tech": "[urgent]"}
    frame = pd.DataFrame([{"text": r["text"], "label": names[r["label"]]} for r in rows])
    frame = pd.concat([frame[frame.label == "[/]"], frame[frame.label == "[urgent]"].head(3)])
    path = tmp_path / "markup.csv"
    frame.drop_duplicates("text").to_csv(path, index=False)
    args = ["data", "check", "--data", str(path), "--no-label-issues"]
    code = main([*args, "--set", f"model={tiny_model_dir}"])
    out = capsys.readouterr().out
    assert code in (0, 1), out
    assert "'[urgent]'" in out and "'[/]'" in out  # the rare class and the imbalance name them
