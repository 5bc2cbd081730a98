"""The data-quality check: every check finds its planted fault at the right rows, and the gate
stops (or lets through) training as guards.data_quality says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from rich.console import Console

from tunesmith.cli import main
from tunesmith.data.quality import Finding, QualityReport, check_data, gate
from tunesmith.data.quality.label_issues import out_of_fold_probabilities, ranked_label_issues
from tunesmith.data.quality.similarity import near_text_pairs, normalise_text
from tunesmith.errors import UserError
from tunesmith.recipe import load_recipe

from .conftest import make_rows

QUIET = Console(quiet=True)


def by_check(report, check: str, split: str = "train") -> list[int]:
    return [row for f in report.findings if f.check == check and f.split == split for row in f.rows]


def severity(report, check: str) -> set[str]:
    return {f.severity for f in report.findings if f.check == check}


@pytest.fixture
def faulty_text(tmp_path: Path, tiny_model_dir: Path) -> dict:
    """A train file with planted faults at known rows, and a test file that leaks."""
    rows = [r for r in make_rows(30, seed=3) if r["text"]]
    frame = pd.DataFrame(rows).drop_duplicates("text").reset_index(drop=True)
    frame = frame.iloc[:80].copy()
    extra = pd.DataFrame(
        [
            {"text": frame.text[0], "label": frame.label[0]},  # 80: exact duplicate of 0
            {"text": frame.text[1].upper() + "!", "label": frame.label[1]},  # 81: same, normalised
            {"text": frame.text[2], "label": "Sports" if frame.label[2] != "sports" else "food"},
            {"text": "the printer and the wifi network are down todya", "label": "tech"},  # 83
            {"text": "the printer and the wifi network are down today", "label": "tech"},  # 84
            {"text": "", "label": "tech"},  # 85: empty
            {"text": "ok", "label": "food"},  # 86: too short
            {"text": "a rare example about weather", "label": "weather"},  # 87: rare class
        ]
    )
    train = pd.concat([frame, extra], ignore_index=True)
    train_file = tmp_path / "train.csv"
    train.to_csv(train_file, index=False)
    test = pd.DataFrame(
        [
            {"text": frame.text[5], "label": frame.label[5]},  # leaks train row 5
            {"text": "cheese soup for dinner today", "label": "food"},
            {"text": "the coach of the team", "label": "sports"},
        ]
    )
    test_file = tmp_path / "test.csv"
    test.to_csv(test_file, index=False)
    recipe = {
        "model": str(tiny_model_dir),
        "data": {"train": str(train_file), "test": str(test_file), "drop_empty": True},
        "preprocess": {"max_length": 8},
        "guards": {"label_issues": False},
    }
    return {"recipe": recipe, "train": train, "test": test}


def test_text_checks_find_each_planted_fault(faulty_text):
    report = check_data(load_recipe(faulty_text["recipe"]), QUIET)
    all_rows = {f.check: set() for f in report.findings}
    for finding in report.findings:
        all_rows[finding.check].update(finding.rows)
    # exact (after normalising case and punctuation): 0/80 and 1/81 are one item each
    assert {80, 81} <= all_rows["exact_duplicates"] | all_rows["leakage"]
    assert {2, 82} <= all_rows["conflicting_labels"]
    assert severity(report, "conflicting_labels") == {"error"}
    near = all_rows.get("near_duplicates", set()) | all_rows.get("near_leakage", set())
    assert {83, 84} & near  # one typo apart (the other may be split off into validation)
    assert all_rows["empty_rows"] == {85} and severity(report, "empty_rows") == {"info"}
    assert all_rows["short_rows"] == {86}
    assert 87 in all_rows["rare_classes"]
    leak = [f for f in report.findings if f.check == "leakage" and f.split == "train"]
    assert 5 in leak[0].rows and leak[0].severity == "error"
    assert {"split": "test", "row": 0} in [d["same_as"] for d in leak[0].details]
    names = [f for f in report.findings if f.check == "label_names" and f.severity == "error"]
    assert names and "'Sports'" in names[0].message and "'sports'" in names[0].message
    truncated = [f for f in report.findings if f.check == "truncated"]
    assert truncated and "preprocess.max_length=8" in truncated[0].message
    assert report.summary["rows"]["test"] == 3
    assert report.summary["class_counts"]["weather"] == 1


def test_clean_data_has_no_errors(tiny_recipe):
    report = check_data(load_recipe(tiny_recipe), QUIET, label_issues=False)
    assert report.errors == []


def test_normalised_text_and_near_pairs():
    assert normalise_text("  Ｈｅｌｌｏ,   WORLD!! ") == "hello world"
    texts = [normalise_text(t) for t in ("what is chemistry", "what is chemisrty", "chemistry")]
    texts += [normalise_text(t) for t in ("you are immortal", "you are not immortal", "cat", "bat")]
    pairs = {tuple(p) for p in near_text_pairs(texts).tolist()}
    assert pairs == {(0, 1)}  # a typo; not a different question, a negation or a short word


def test_label_issues_find_flipped_labels():
    """Out-of-fold probabilities + cleanlab find most flips of a separable problem."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (4, 16))
    y = np.repeat(np.arange(4), 60)
    x = centres[y] + rng.normal(0, 1, (len(y), 16))
    flipped = rng.choice(len(y), 24, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 4, len(flipped))) % 4
    probabilities, scored = out_of_fold_probabilities(x, noisy)
    found = set(scored[ranked_label_issues(noisy[scored], probabilities)].tolist())
    hits = len(found & set(flipped.tolist()))
    assert hits / len(flipped) >= 0.9
    assert hits / max(len(found), 1) >= 0.8


def test_label_issue_finding_names_the_suggested_label(tiny_recipe, tmp_path):
    rows = make_rows(25, seed=1)
    frame = pd.DataFrame(rows)
    wrong = frame.index[frame.label == "food"][:2]
    frame.loc[wrong, "label"] = "tech"
    path = tmp_path / "flipped.csv"
    frame.to_csv(path, index=False)
    tiny_recipe["data"] = {"train": str(path)}
    report = check_data(load_recipe(tiny_recipe), QUIET, label_issues=True)
    issues = [f for f in report.findings if f.check == "label_issues"]
    details = [d for f in issues for d in f.details]
    flagged = {d["row"]: d for d in details}
    caught = set(wrong.tolist()) & set(flagged)
    assert caught, f"flagged {sorted(flagged)}, flipped {wrong.tolist()}"
    assert all(flagged[r]["label"] == "tech" and flagged[r]["suggested"] == "food" for r in caught)
    assert "label_issue_model_accuracy" in report.summary


def test_image_checks(tiny_image_recipe, tmp_path):
    root = Path(tiny_image_recipe["data"]["train"])
    first = sorted((root / "red").iterdir())[0]
    shutil.copy(first, root / "red" / "copy.png")
    pixels = np.asarray(Image.open(first).convert("RGB"), dtype=np.float32)
    noisy = pixels + np.random.default_rng(0).normal(0, 2, pixels.shape)
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(root / "red" / "near.jpg", quality=95)
    (root / "blue" / "broken.png").write_bytes(b"not an image")
    report = check_data(load_recipe(tiny_image_recipe), QUIET, label_issues=False)
    corrupt = [f for f in report.findings if f.check == "corrupt_images"]
    assert corrupt[0].severity == "error" and "broken.png" in corrupt[0].details[0]["path"]
    exact = [
        d for f in report.findings if f.check in ("exact_duplicates", "leakage") for d in f.details
    ]
    near = [
        d
        for f in report.findings
        if f.check in ("near_duplicates", "near_leakage")
        for d in f.details
    ]
    assert exact and near
    with pytest.raises(UserError, match=r"broken\.png"):  # bad input: exit 2 whatever the guard
        gate(report, "warn")


def test_image_check_of_a_folder_named_through_dot_dot(tiny_image_recipe, tmp_path, monkeypatch):
    root = Path(tiny_image_recipe["data"]["train"])
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    tiny_image_recipe["data"]["train"] = f"../elsewhere/../{root.name}"
    report = check_data(load_recipe(tiny_image_recipe), QUIET, label_issues=False)
    assert sum(report.summary["rows"].values()) == 36
    assert not report.errors


def test_report_prints_markup_in_messages_literally(tmp_path):
    """Messages quote user labels: "[/]" would be a rich closing tag, "[urgent]" a style."""
    finding = Finding(
        "imbalance", "warning", "train", [], "classes ('[/]': 28, '[urgent]': 2)", fix="see [b]"
    )
    report = QualityReport([finding], {})
    console = Console(record=True, width=200)
    report.print(console)
    report.print_brief(console)
    text = console.export_text()
    assert text.count("'[/]': 28, '[urgent]': 2") == 2 and "see [b]" in text


def test_causal_lm_checks(tiny_llm_recipe, tmp_path):
    rows = [
        {"instruction": f"question number {i} about the team", "input": "", "output": f"answer {i}"}
        for i in range(30)
    ]
    rows += [
        rows[0],  # 30: exact duplicate pair
        {"instruction": rows[1]["instruction"], "input": "", "output": "another answer"},  # 31
        *[
            {"instruction": f"unrelated {w} cake", "input": "", "output": "I do not know."}
            for w in ("red", "green", "blue")
        ],  # 32-34: a canned response
        {"instruction": "tell me", "input": "", "output": " ".join(["word"] * 80)},  # 35: long
    ]
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps(r) for r in rows))
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps({"instruction": rows[7]["instruction"], "input": "", "output": "x"}))
    tiny_llm_recipe["data"] = {"train": str(train), "test": str(test)}
    tiny_llm_recipe["preprocess"] = {"max_length": 40}
    report = check_data(load_recipe(tiny_llm_recipe), QUIET)
    found: dict[str, set[int]] = {}
    for finding in report.findings:
        found.setdefault(finding.check, set()).update(finding.rows)
    assert {0, 30} & (found.get("exact_duplicates", set()) | found.get("leakage", set()))
    assert {1, 31} <= found["conflicting_responses"]
    assert {32, 33, 34} <= found["repeated_responses"]
    assert 35 in found["truncated"]
    assert 7 in found["leakage"]
    assert report.summary["format"] == "alpaca"
    repeated = [f for f in report.findings if f.check == "repeated_responses"]
    assert repeated and all(f.severity == "warning" for f in repeated)
    assert "learns to give that answer to everything" in repeated[0].message


def test_label_like_answers_suggest_classification(tiny_llm_recipe, tmp_path):
    """SFT data whose answers are a few intents is classification: a note, not a warning."""
    intents = ["billing", "refund request", "technical support", "cancel account"]
    rows = [
        {"instruction": f"Which intent is this message {i}: topic {i * 7} here?", "input": "",
         "output": intents[i % len(intents)]}
        for i in range(40)
    ]  # fmt: skip
    rows.append({"instruction": "one odd row", "input": "", "output": "a much longer " * 5})
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps(r) for r in rows))
    tiny_llm_recipe["data"] = {"train": str(train)}
    report = check_data(load_recipe(tiny_llm_recipe), QUIET)
    repeated = [f for f in report.findings if f.check == "repeated_responses"]
    assert repeated and all(f.severity == "info" for f in repeated)
    assert "task: text-classification" in repeated[0].fix
    assert "to everything" not in repeated[0].message
    assert "'billing'" in repeated[0].message


def test_data_check_reads_a_llama_factory_folder(tiny_llm_recipe, tmp_path, capsys):
    from .test_data_causal import llama_factory_folder

    folder = llama_factory_folder(tmp_path)
    tiny_llm_recipe["data"] = {"train": str(folder), "dataset": "support"}
    report = check_data(load_recipe(tiny_llm_recipe), QUIET)
    assert report.summary["format"] == "chat"
    tiny_llm_recipe["data"]["dataset"] = "suport"
    assert main(["data", "check", str(write(tmp_path, tiny_llm_recipe))]) == 2
    message = capsys.readouterr()
    assert "has no entry 'suport'; did you mean 'support'?" in message.out + message.err


# --- the gate and the command ----------------------------------------------------------------


def write(tmp_path: Path, recipe: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_gate_refuses_error_findings_and_warn_trains(faulty_text, tmp_path, capsys):
    recipe = faulty_text["recipe"]
    recipe["train"] = {"epochs": 1, "batch_size": 16, "precision": "fp32"}
    output = tmp_path / "run"
    assert main(["train", str(write(tmp_path, recipe)), "--output", str(output)]) == 1
    err = capsys.readouterr().err
    assert "conflicting_labels" in err and "guards.data_quality=warn" in err
    assert not output.exists()

    args = ["train", str(write(tmp_path, recipe)), "--output", str(output)]
    assert main([*args, "--set", "guards.data_quality=warn"]) == 0
    quality = json.loads((output / "quality.json").read_text())
    assert quality["summary"]["errors"] >= 2
    assert any(f["check"] == "leakage" for f in quality["findings"])
    assert "conflicting_labels" in (output / "report.html").read_text()


def test_data_check_command(faulty_text, tmp_path, capsys):
    out = tmp_path / "checked"
    assert (
        main(["data", "check", str(write(tmp_path, faulty_text["recipe"])), "--output", str(out)])
        == 1
    )
    quality = json.loads((out / "quality.json").read_text())
    finding = quality["findings"][0]
    assert finding["severity"] == "error" and {"check", "split", "rows", "message"} <= set(finding)
    clean = tmp_path / "clean.csv"
    pd.DataFrame(make_rows(10)).drop_duplicates("text").to_csv(clean, index=False)
    model = faulty_text["recipe"]["model"]
    code = main(
        ["data", "check", "--data", str(clean), "--set", f"model={model}", "--no-label-issues"]
    )
    assert code == 0, capsys.readouterr().err


def test_data_check_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,label\nhello there,a\n")
    assert main(["data", "check", "--data", str(bad)]) == 2
    assert "column 'text' not found" in capsys.readouterr().err
    assert main(["data", "check"]) == 2
    assert main(["data", "check", "--data", str(tmp_path / "missing.csv")]) == 2
