"""Reports, tune/compare pages and the annotate page in every language (tunesmith.i18n): the
Japanese catalogue is complete and current, each task kind's report renders in Japanese,
`tunesmith report RUN --lang ja` re-renders a finished run, report.language is checked."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from tests.test_report import _full_metrics, _history, _lm_metrics, _rag_metrics, _write_run
from tunesmith import i18n
from tunesmith.cli import main
from tunesmith.errors import UserError
from tunesmith.i18n import language
from tunesmith.recipe import load_recipe
from tunesmith.report import render_report, write_report

ROOT = Path(__file__).parents[1]
PO = ROOT / "src" / "tunesmith" / "locale" / "ja" / "LC_MESSAGES" / "tunesmith.po"
# The report's English section headings: none may be left in a Japanese report.
ENGLISH_HEADINGS = (
    "Fine-tuning report",
    "Before / after",
    "Fine-tune or RAG?",
    "Answers side by side",
    "Training",
    "Results per class",
    "Data findings",
    "Forgetting",
    "Cost",
    "Predicted vs measured",
    "Setup",
)
JAPANESE_HEADINGS = ("ファインチューニング報告書", "学習前後の比較", "コスト", "設定")
HEADING = re.compile(r"<h[1-3]>(.*?)</h[1-3]>")


def extracted() -> set[str]:
    """The msgids `make messages` extracts (babel.cfg), by Babel's own API."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    ids = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map
    ):
        ids.add(message[0] if isinstance(message, tuple) else message)
    return ids


def catalogue() -> Catalog:
    with PO.open("rb") as handle:
        return read_po(handle, locale="ja")


def test_the_japanese_catalogue_is_complete_and_current() -> None:
    """Every string of the code and templates has a Japanese translation, and the catalogue
    holds no string the code no longer has (run `make messages` and translate)."""
    wanted = extracted()
    po = catalogue()
    found = {m.id[0] if isinstance(m.id, tuple) else m.id: m for m in po if m.id}
    assert wanted, "nothing extracted: babel.cfg's patterns match no file"
    missing = sorted(wanted - set(found))
    assert not missing, f"not in the .po (run `make messages`): {missing}"
    stale = sorted(set(found) - wanted)
    assert not stale, f"in the .po but no longer in the code: {stale}"
    untranslated = sorted(
        key
        for key, m in found.items()
        if not all(m.string if isinstance(m.string, tuple) else [m.string])
    )
    assert not untranslated, f"no Japanese text yet: {untranslated}"
    fuzzy = sorted(key for key, m in found.items() if m.fuzzy)
    assert not fuzzy, f"fuzzy (unchecked) translations: {fuzzy}"
    assert not po.obsolete


def test_placeholders_survive_translation() -> None:
    """A translation keeps every {name} / %(name)s of its English text."""
    names = re.compile(r"\{\w+\}|%\(\w+\)s")
    for message in catalogue():
        if not message.id:
            continue
        english = message.id[-1] if isinstance(message.id, tuple) else message.id
        texts = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in texts:
            assert set(names.findall(text)) >= set(names.findall(english)) - {"%(num)s"} or (
                set(names.findall(text)) == set(names.findall(message.id[0]))
            ), (message.id, text)


def test_english_is_the_identity_and_japanese_reads_the_catalogue() -> None:
    assert i18n._("Cost") == "Cost"
    with language("ja"):
        assert i18n._("Cost") == "コスト"
        assert i18n._("{value} s").format(value="3") == "3 秒"
    assert i18n._("Cost") == "Cost"
    with pytest.raises(ValueError, match="jp"), language("jp"):
        pass


# --- a report of each task kind ----------------------------------------------------------


def _kind_run(kind: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Hand-written metrics.json and history of a finished run of `kind`."""
    if kind in ("text-classification", "multi-label-classification", "image-classification"):
        metrics = _full_metrics()
        metrics["task"] = kind
        if kind == "multi-label-classification":
            metrics["fine_tuned"] |= {"subset_accuracy": 0.6, "micro_f1": 0.81}
            del metrics["fine_tuned"]["confusion_matrix"]
        if kind == "image-classification":
            metrics["model"] = "builtin:efficientnet-lite0"
        metrics["forgetting"] = {"increase": 0.02, "threshold": 0.1, "action_taken": "none"}
        return metrics, _history()
    if kind == "causal-lm":
        return _rag_metrics(), _history()
    metrics = copy.deepcopy(_lm_metrics())  # seq2seq: answers scored, no perplexity
    metrics["task"] = "seq2seq"
    for key in ("base", "fine_tuned"):
        metrics[key].pop("perplexity")
    return metrics, _history()


KINDS = (
    "text-classification",
    "multi-label-classification",
    "image-classification",
    "causal-lm",
    "seq2seq",
)


def _finished_run(folder: Path, kind: str, lang: str = "en") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    metrics, history = _kind_run(kind)
    _write_run(folder, metrics, history)
    recipe = {"task": kind, "model": metrics["model"], "report": {"language": lang}}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    (folder / "quality.json").write_text(
        json.dumps(
            {
                "findings": [
                    {
                        "check": "duplicates",
                        "severity": "warning",
                        "split": "train",
                        "rows": [1, 2],
                        "message": "2 duplicate rows",
                    }
                ],
                "summary": {"rows": 800, "errors": 0, "warnings": 1},
            }
        ),
        encoding="utf-8",
    )
    (folder / "estimate.json").write_text(
        json.dumps(
            {
                "predicted": {"peak_memory_mb": 1500.0, "seconds_per_epoch": 10.0},
                "measured": {"peak_memory_mb": 1840.0, "seconds_per_epoch": 12.0},
            }
        ),
        encoding="utf-8",
    )
    return folder


@pytest.mark.parametrize("kind", KINDS)
def test_a_report_of_each_task_kind_renders_in_japanese(tmp_path: Path, kind: str) -> None:
    run = _finished_run(tmp_path / kind, kind)
    english = render_report(run, "en")
    japanese = render_report(run, "ja")
    assert '<html lang="en">' in english and '<html lang="ja">' in japanese
    assert "Fine-tuning report" in english and "Cost" in HEADING.findall(english)
    headings = HEADING.findall(japanese)
    left = [heading for heading in headings if heading in ENGLISH_HEADINGS]
    assert not left, f"English headings in the Japanese report: {left}"
    for heading in JAPANESE_HEADINGS:
        assert heading in japanese
    assert "F1" in japanese or "ROUGE-L" in japanese  # metric names keep their form
    assert "秒" in japanese  # units in the locale's words
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日", japanese)  # the date as ja writes it
    if kind == "causal-lm":
        assert "ファインチューニングか RAG か" in japanese
        assert "ベースモデル" in japanese


def test_the_recipe_language_decides_and_can_be_overridden(tmp_path: Path) -> None:
    run = _finished_run(tmp_path / "run", "text-classification", lang="ja")
    assert '<html lang="ja">' in write_report(run).read_text(encoding="utf-8")
    assert '<html lang="en">' in write_report(run, "en").read_text(encoding="utf-8")


# --- tunesmith report ------------------------------------------------------------------


def test_report_command_re_renders_in_japanese(tmp_path: Path) -> None:
    run = _finished_run(tmp_path / "run", "text-classification")
    assert main(["report", str(run), "--lang", "ja"]) == 0
    page = (run / "report.ja.html").read_text(encoding="utf-8")
    assert '<html lang="ja">' in page and "ファインチューニング報告書" in page
    assert main(["report", str(run)]) == 0  # the recipe's language: report.html itself
    assert '<html lang="en">' in (run / "report.html").read_text(encoding="utf-8")
    assert main(["report", str(run), "--lang", "ja"]) == 0  # its own file: replaced freely


def test_report_command_refuses_an_existing_output_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _finished_run(tmp_path / "run", "causal-lm")
    output = tmp_path / "mine.html"
    output.write_text("keep me", encoding="utf-8")
    assert main(["report", str(run), "--lang", "ja", "--output", str(output)]) == 2
    assert "--force" in capsys.readouterr().err
    assert output.read_text(encoding="utf-8") == "keep me"
    assert main(["report", str(run), "--lang", "ja", "--output", str(output), "--force"]) == 0
    assert '<html lang="ja">' in output.read_text(encoding="utf-8")
    assert main(["report", str(run), "--output", str(tmp_path / "page.txt")]) == 2


def test_report_command_refuses_a_folder_that_is_not_a_finished_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--lang", "ja"]) == 2
    assert "metrics.json" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert main(["report", str(tmp_path / "empty"), "--lang", "jp"]) == 2


def test_a_misspelt_language_is_a_recipe_error_naming_the_key() -> None:
    with pytest.raises(UserError) as caught:
        load_recipe({"data": {"train": "x.csv"}, "report": {"language": "jp"}})
    assert "report.language" in str(caught.value)
    assert (
        load_recipe({"data": {"train": "x.csv"}, "report": {"language": "ja"}}).report.language
        == "ja"
    )


# --- compare and annotate pages ---------------------------------------------------------


def test_compare_page_in_japanese_terminal_in_english(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _finished_run(tmp_path / "a", "text-classification")
    second = _finished_run(tmp_path / "b", "text-classification")
    for run in (first, second):
        for name in ("adapter",):
            (run / name).mkdir()
    page = tmp_path / "compare.html"
    code = main(["compare", str(first), str(second), "--output", str(page), "--lang", "ja"])
    assert code == 0
    assert "Test metrics" in capsys.readouterr().out
    html = page.read_text(encoding="utf-8")
    assert '<html lang="ja">' in html and "実行の比較" in html and "コスト" in html
    assert "Run comparison" not in html


def test_annotate_page_in_japanese(tmp_path: Path) -> None:
    import pandas as pd
    from fastapi.testclient import TestClient

    from tunesmith.annotate.app import create_app, script_messages
    from tunesmith.annotate.session import open_session

    data = tmp_path / "topics.csv"
    pd.DataFrame([{"text": "a goal", "label": "sports"}, {"text": "pizza", "label": ""}]).to_csv(
        data, index=False
    )
    session = open_session(data)
    try:
        japanese = TestClient(create_app(session, lang="ja"), base_url="http://127.0.0.1:8765")
        page = japanese.get("/").text
        assert '<html lang="ja">' in page and "アノテーター" in page and "未ラベル" in page
        messages = json.loads(re.search(r'id="messages"[^>]*>(.*?)</script>', page, re.S)[1])
        assert set(messages) == set(script_messages())  # every string of app.js, translated
        english = TestClient(create_app(session), base_url="http://127.0.0.1:8765").get("/").text
        assert '<html lang="en">' in english and "To label" in english
    finally:
        session.store.close()
