"""`tunesmith annotate`: decisions store, final labels and export, agreement, suspects, the
command line (bad input, busy port, Ctrl-C) and the page itself in a real headless browser."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tunesmith.annotate.agreement import agreement, cohen_kappa, krippendorff_alpha_nominal
from tunesmith.annotate.app import create_app
from tunesmith.annotate.dataset import load_data
from tunesmith.annotate.export import final_labels
from tunesmith.annotate.session import ACCEPT_ABOVE, open_session
from tunesmith.annotate.store import Decision, DecisionStore
from tunesmith.annotate.suspects import load_suspects
from tunesmith.cli import main
from tunesmith.data.images import _read_folder
from tunesmith.errors import UserError
from tunesmith.local_server.listener import bind, make_server

from .browser import FLAGS, chromium_or_skip
from .conftest import make_image_folder

ROWS = [
    {"text": "the football match was great", "label": "sports"},
    {"text": "fresh bread and cheese for dinner", "label": "sports"},  # suspect: food
    {"text": "my laptop needs a new keyboard", "label": ""},
    {"text": "pizza and salad tonight", "label": ""},
    {"text": "the server is down again", "label": "tech"},
]
LOCAL = "http://127.0.0.1:8765"
"""The test client's address: the app answers only under a loopback name (guard.py)."""


@pytest.fixture
def topics_csv(tmp_path: Path) -> Path:
    path = tmp_path / "topics.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    return path


def write_quality(folder: Path, data: Path, extra: list | None = None) -> Path:
    """A quality.json as `tunesmith data check` writes it, naming DATA relative to its folder."""
    findings = [
        {
            "check": "label_issues",
            "severity": "warning",
            "split": "train",
            "file": data.name,
            "rows": [1],
            "message": "1 row(s) look mislabelled",
            "details": [{"row": 1, "label": "sports", "suggested": "food", "confidence": 0.83}],
        },
        {"check": "duplicates", "severity": "warning", "split": "train", "rows": [0, 4]},
        *(extra or []),
    ]
    path = folder / "quality.json"
    path.write_text(json.dumps({"findings": findings, "summary": {}}))
    return path


def read_export(path: Path) -> pd.DataFrame:
    """The exported table as text, "" where a cell is empty (csv) or null (jsonl)."""
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    return pd.read_json(path, lines=True, dtype=False).astype(object).fillna("")


# --- store, decisions, export --------------------------------------------------------------


def test_store_round_trip_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "decisions.sqlite"
    store = DecisionStore(path)
    first = store.add(2, "tech", "", "alice", "label")
    store.add(1, "food", "sports", "bob", "review-change")
    last = store.add(3, "food", "", "alice", "label")
    store.close()

    store = DecisionStore(path)
    decisions = store.decisions()
    assert [(d.row, d.label, d.previous_label, d.annotator, d.kind) for d in decisions] == [
        (2, "tech", "", "alice", "label"),
        (1, "food", "sports", "bob", "review-change"),
        (3, "food", "", "alice", "label"),
    ]
    assert decisions[0] == first
    when = datetime.fromisoformat(first.decided_at)
    assert when.utcoffset() == timezone.utc.utcoffset(None)
    assert store.decisions(row=1)[0].annotator == "bob"

    assert store.undo_last("alice") == last
    again = store.add(3, "tech", "", "alice", "label")
    assert again.id > last.id  # ids are never reused, so they order decisions in time
    assert [d.row for d in store.decisions()] == [2, 1, 3]


def test_session_kinds_queues_and_restart(topics_csv: Path, tmp_path: Path) -> None:
    quality = write_quality(tmp_path, topics_csv)
    session = open_session(topics_csv, suspects=quality)
    assert session.labels == ["food", "sports", "tech"]
    assert session.queue("to_label", "alice") == [2, 3]
    assert session.queue("suspects", "alice") == [1]

    assert session.decide(2, "tech", "alice").kind == "label"
    kept = session.decide(1, "sports", "bob")
    changed = session.decide(1, "food", "alice")
    assert (kept.kind, changed.kind) == ("review-keep", "review-change")
    assert changed.previous_label == "sports"
    with pytest.raises(UserError, match="enter your name"):
        session.decide(3, "food", "  ")
    with pytest.raises(UserError, match="unknown label 'music'"):
        session.decide(3, "music", "alice")
    session.store.close()

    session = open_session(topics_csv, labels=["music"])
    session.decide(3, "music", "carol")
    session.store.close()

    reopened = open_session(topics_csv, suspects=quality)  # the same default database
    assert reopened.store.path == tmp_path / "topics.csv.annotations.sqlite"
    assert reopened.labels == ["food", "music", "sports", "tech"]  # "music" was decided
    assert reopened.store.undo_last("carol").label == "music"
    assert len(reopened.store.decisions()) == 3
    assert reopened.queue("to_label", "alice") == [3]
    assert reopened.queue("to_label", "bob") == [2, 3]
    assert reopened.queue("suspects", "alice") == []
    progress = reopened.progress("alice")
    assert progress["to_label"] == {"total": 2, "done": 1, "yours": 1}
    assert progress["suspects"] == {"total": 1, "done": 1, "yours": 1}
    view = reopened.row(1, "alice")
    assert view["suspect"]["suggested"] == "food" and view["yours"] == "food"


def test_final_label_is_a_majority_vote_with_ties_to_the_latest() -> None:
    def decision(id_: int, row: int, label: str, who: str) -> Decision:
        return Decision(id_, row, label, "", who, f"2024-01-01T00:00:0{id_}+00:00", "label")

    finals = final_labels(
        [
            decision(1, 0, "a", "ann"),
            decision(2, 0, "b", "bob"),
            decision(3, 0, "a", "cat"),  # a wins 2:1 although b is not the latest
            decision(4, 1, "a", "ann"),
            decision(5, 1, "b", "bob"),  # 1:1, b is the latest
            decision(6, 2, "a", "ann"),
            decision(7, 2, "b", "ann"),  # ann changed her mind: one vote, for b
        ]
    )
    assert {row: final.label for row, final in finals.items()} == {0: "a", 1: "b", 2: "b"}
    assert (finals[0].annotator, finals[0].votes, finals[0].voters) == ("cat", 2, 3)
    assert finals[2].votes == finals[2].voters == 1


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_export_holds_the_new_labels(
    topics_csv: Path, tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture
) -> None:
    session = open_session(topics_csv, labels=["food"])
    session.decide(2, "tech", "alice")
    session.decide(3, "food", "alice")
    session.decide(4, "sports", "bob")
    session.decide(4, "tech", "alice")  # a 1:1 tie: the latest, alice's, wins
    session.store.close()

    out = tmp_path / "exports" / f"labelled{suffix}"
    out.parent.mkdir()
    assert main(["annotate", str(topics_csv), "--export", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left

    table = read_export(out)
    assert list(table["text"]) == [row["text"] for row in ROWS]
    assert list(table["label"]) == ["sports", "sports", "tech", "food", "tech"]
    assert list(table["annotator"])[2:] == ["alice", "alice", "alice"]
    assert table["annotator"].iloc[0] == ""  # nobody decided row 0
    datetime.fromisoformat(table["annotated_at"].iloc[2])


def test_export_keeps_numeric_labels_numeric(tmp_path: Path) -> None:
    data = tmp_path / "digits.jsonl"
    data.write_text('{"text": "one", "label": 1}\n{"text": "two", "label": null}\n')
    session = open_session(data, labels=["1", "2"])
    session.decide(1, "2", "alice")
    out = session.export(tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["label"] for row in rows] == [1, 2]
    assert rows[1]["annotator"] == "alice"


def test_image_folder_rows_match_the_readers_and_images_are_served(tmp_path: Path) -> None:
    from PIL import Image

    root = make_image_folder(tmp_path / "images", per_class=2)
    Image.new("RGB", (8, 8), (0, 0, 0)).save(root / "new.png")  # directly in root: to label
    data = load_data(root)
    labelled = _read_folder(root, "data.train")
    assert data.items[: len(labelled)] == list(labelled["path"])
    assert data.labels == [*labelled["label"], ""]

    session = open_session(root)
    assert session.queue("to_label", "alice") == [6]
    client = TestClient(create_app(session), base_url=LOCAL)
    row = client.get("/api/rows/6").json()
    assert row["kind"] == "image" and row["image_name"] == "new.png"
    assert client.get(row["image_url"]).content == (root / "new.png").read_bytes()

    session.decide(6, "red", "alice")
    (tmp_path / "elsewhere").mkdir()
    out = session.export(tmp_path / "elsewhere" / "labels.csv")
    table = pd.read_csv(out)
    assert table["label"].iloc[6] == "red"
    assert all((out.parent / path).is_file() for path in table["image"])  # relative to out


def test_image_table_with_relative_paths(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "shots", per_class=1)
    table = tmp_path / "shots.csv"
    table.write_text("path,colour\nshots/red/0.png,red\nshots/blue/0.png,\n")
    session = open_session(table, label_column="colour", image_column="path")
    assert session.data.items[1] == str(root / "blue" / "0.png")
    assert session.queue("to_label", "al") == [1]
    session.decide(1, "red", "al")  # the label set: the labels present in DATA
    (tmp_path / "out").mkdir()
    rows = pd.read_csv(session.export(tmp_path / "out" / "labelled.csv"))
    assert list(rows["colour"]) == ["red", "red"]
    assert list(rows["path"]) == ["../shots/red/0.png", "../shots/blue/0.png"]


def test_api_answers_a_users_mistake_with_400(topics_csv: Path) -> None:
    client = TestClient(create_app(open_session(topics_csv)), base_url=LOCAL)
    assert "tunesmith annotate" in client.get("/").text
    assert client.get("/static/app.js").status_code == 200
    answer = client.post("/api/decisions", json={"row": 2, "label": "tech", "annotator": ""})
    assert answer.status_code == 400 and "name" in answer.json()["detail"]
    answer = client.post("/api/decisions", json={"row": 99, "label": "tech", "annotator": "al"})
    assert answer.status_code == 400 and "row 99" in answer.json()["detail"]
    answer = client.post("/api/export", json={"format": "xlsx"})
    assert answer.status_code == 400


# --- agreement -------------------------------------------------------------------------------


def test_cohen_kappa_of_a_hand_computed_table() -> None:
    # Both "yes" 20 times, A yes/B no 5, A no/B yes 10, both "no" 15 (50 rows):
    # p_o = 35/50 = 0.7; p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = (0.7 - 0.5) / 0.5 = 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(["x", "x"], ["x", "x"]) is None  # chance agreement 1: undefined


def columns(*coders: list) -> list[list]:
    """Reliability data given coder by coder (rows) as units (rows) of values by coder."""
    return [list(unit) for unit in zip(*coders, strict=True)]


def test_krippendorff_alpha_matches_the_published_examples() -> None:
    n = None
    # Wikipedia, "Krippendorff's alpha", computational example: 3 coders, 15 units, nominal.
    # Pairable values n = 25; sum of off-diagonal coincidences = 4; sum_{c != k} n_c n_k = 486:
    # alpha = 1 - (25 - 1) * 4 / 486 = 0.691
    wikipedia = columns(
        [n, n, n, n, n, 3, 4, 1, 2, 1, 1, 3, 3, n, 3],
        [1, n, 2, 1, 3, 3, 4, 3, n, n, n, n, n, n, n],
        [n, n, 2, 1, 3, 4, 4, n, 2, 1, 1, 3, 3, n, 4],
    )
    assert krippendorff_alpha_nominal(wikipedia) == pytest.approx(0.691358, abs=1e-6)
    # Krippendorff (2011), Computing Krippendorff's Alpha-Reliability, example C (nominal,
    # 4 observers, missing data): 0.743; example A (2 observers, binary): 0.095.
    paper_c = columns(
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    )
    assert krippendorff_alpha_nominal(paper_c) == pytest.approx(0.743, abs=5e-4)
    paper_a = columns([0, 1, 0, 0, 0, 0, 0, 0, 1, 0], [1, 1, 1, 0, 0, 1, 0, 0, 0, 0])
    assert krippendorff_alpha_nominal(paper_a) == pytest.approx(0.095, abs=5e-4)
    assert krippendorff_alpha_nominal([["a", "a"], ["b", "b"]]) == 1.0
    assert krippendorff_alpha_nominal([["a", n], [n, "b"]]) is None  # nothing pairable


def test_agreement_between_annotators(
    topics_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    session = open_session(topics_csv, labels=["food"])
    for row, (ann, bob) in enumerate([("food", "food"), ("sports", "food"), ("tech", "tech")]):
        session.decide(row, ann, "ann")
        session.decide(row, bob, "bob")
    session.decide(3, "food", "ann")  # one annotator only: not compared
    result = agreement(session.store.decisions())
    assert result.annotators == ["ann", "bob"] and result.rows == 3
    (pair,) = result.pairs
    assert pair.rows == 3 and pair.observed == pytest.approx(2 / 3)
    # ann: food, sports, tech; bob: food, food, tech. p_o = 2/3, p_e = (1*2 + 1*0 + 1*1) / 9
    assert pair.kappa == pytest.approx((2 / 3 - 1 / 3) / (1 - 1 / 3))
    session.store.close()

    assert main(["annotate", str(topics_csv), "--agreement"]) == 0
    printed = capsys.readouterr().out
    assert "ann" in printed and "bob" in printed and "0.500" in printed
    assert "Krippendorff's alpha" in printed


# --- suspects --------------------------------------------------------------------------------


def test_suspects_come_only_from_label_issues_of_this_file(topics_csv: Path, tmp_path: Path):
    other = {"check": "label_issues", "file": "other.csv", "rows": [3], "details": []}
    anywhere = {"check": "label_issues", "rows": [4], "message": "no file named"}
    quality = write_quality(tmp_path, topics_csv, [other, anywhere])
    labels = [row["label"] for row in ROWS]
    suspects = load_suspects(quality, topics_csv, labels)
    assert sorted(suspects) == [1, 4]
    assert (suspects[1].label, suspects[1].suggested, suspects[1].confidence) == (
        "sports",
        "food",
        0.83,
    )
    assert suspects[4].suggested is None and suspects[4].label == "tech"

    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps({"findings": [other]}))
    with pytest.raises(UserError, match=r"findings are for other\.csv"):
        load_suspects(elsewhere, topics_csv, labels)
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({"findings": [{"check": "label_issues", "rows": [7]}]}))
    with pytest.raises(UserError, match="row 7 is not a row"):
        load_suspects(stale, topics_csv, labels)


def label_issues(rows: list[int], **fields: list) -> dict:
    """A label_issues finding for topics.csv: `rows` in the check's order, and per row the
    detail fields given (e.g. confidence=[...], rank=[...])."""
    details = [
        {"row": row, "suggested": "food", **{key: values[i] for key, values in fields.items()}}
        for i, row in enumerate(rows)
    ]
    return {"check": "label_issues", "file": "topics.csv", "rows": rows, "details": details}


def quality_with(folder: Path, *findings: dict) -> Path:
    path = folder / "ranked.json"
    path.write_text(json.dumps({"findings": list(findings), "summary": {}}))
    return path


def test_suspect_queue_follows_the_data_checks_ranking(topics_csv: Path, tmp_path: Path):
    # ranked 4, 1, 0 (not row order, nor by the suggestion's confidence: that gives 1, 0, 4)
    ranked = label_issues([4, 1, 0], confidence=[0.3, 0.9, 0.6])
    session = open_session(topics_csv, suspects=quality_with(tmp_path, ranked))
    assert session.queue("suspects", "alice") == [4, 1, 0]
    assert [s.rank for s in session.suspects.values()] == [0, 1, 2]
    client = TestClient(create_app(session), base_url=LOCAL)
    assert client.get("/api/queue", params={"name": "suspects"}).json()["rows"] == [4, 1, 0]
    session.decide(4, "food", "alice")  # what alice decided leaves her queue, in order
    assert session.queue("suspects", "alice") == [1, 0]
    assert session.queue("suspects", "bob") == [4, 1, 0]
    session.store.close()

    # one file split three ways: each split's finding ranked on its own, interleaved by score
    train = label_issues([3, 0], label_probability=[0.05, 0.30])
    validation = label_issues([2, 4], label_probability=[0.10, 0.40])
    session = open_session(topics_csv, suspects=quality_with(tmp_path, train, validation))
    assert session.queue("suspects", "carol") == [3, 2, 0, 4]
    session.store.close()

    # an explicit rank wins over the order of "rows"
    explicit = label_issues([0, 1, 4], rank=[3, 1, 2])
    session = open_session(topics_csv, suspects=quality_with(tmp_path, explicit))
    assert session.queue("suspects", "carol") == [1, 4, 0]
    session.store.close()


def test_enter_accepts_a_suggestion_only_from_the_threshold(topics_csv: Path, tmp_path: Path):
    quality = quality_with(tmp_path, label_issues([1, 4, 0, 2], confidence=[0.27, 0.8, 0.95, None]))
    session = open_session(topics_csv, suspects=quality)
    assert session.accept_above == ACCEPT_ABOVE == 0.8
    client = TestClient(create_app(session), base_url=LOCAL)
    assert client.get("/api/info").json()["accept_above"] == 0.8

    def by_enter() -> dict[int, bool]:
        rows = {r: client.get(f"/api/rows/{r}").json() for r in (1, 4, 0, 2)}
        return {r: row["suspect"]["enter_accepts"] for r, row in rows.items()}

    assert by_enter() == {1: False, 4: True, 0: True, 2: False}  # 80% itself is enough
    low = client.get("/api/rows/1").json()["suspect"]
    assert (low["suggested"], low["confidence"]) == ("food", 0.27)  # still shown, with its share
    answer = client.post("/api/decisions", json={"row": 1, "label": "food", "annotator": "al"})
    assert answer.json()["decision"]["kind"] == "review-change"  # a click still takes it
    session.accept_above = 0.9
    assert by_enter() == {1: False, 4: False, 0: True, 2: False}
    session.accept_above = 0.0  # everything, even a suggestion of unknown confidence
    assert by_enter() == {1: True, 4: True, 0: True, 2: True}
    session.store.close()

    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(UserError, match=r"--accept-above .*between 0 and 1"):
            open_session(topics_csv, suspects=quality, db=tmp_path / "new.sqlite", accept_above=bad)
    assert not (tmp_path / "new.sqlite").exists()


def test_the_command_lines_accept_above_default_is_the_sessions() -> None:
    import inspect

    from tunesmith import cli

    assert inspect.signature(cli.annotate).parameters["accept_above"].default == ACCEPT_ABOVE


# --- the command line: bad input, busy port, Ctrl-C -----------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_INPUTS = {
    "missing file": (lambda d: [str(d / "nope.csv")], "file or folder not found"),
    "not a table": (lambda d: [str(write(d / "notes.txt", "hello"))], "unsupported file type"),
    "broken jsonl": (lambda d: [str(write(d / "b.jsonl", "{oops\n"))], "line 1 is not valid"),
    "no text column": (
        lambda d: [str(write(d / "t.csv", "sentence,label\nhi,a\n"))],
        "column 'text' not found",
    ),
    "no label column": (
        lambda d: [str(write(d / "t.csv", "text,tag\nhi,a\n")), "--text-column", "text"],
        "--label-column NAME",
    ),
    "no labels at all": (
        lambda d: [str(write(d / "t.csv", "text,label\nhi,\n"))],
        "--labels a,b,c",
    ),
    "missing suspects": (
        lambda d: [str(write(d / "t.csv", "text,label\nhi,a\n")), "--suspects", "q.json"],
        "--suspects q.json: file not found",
    ),
    "bad export name": (
        lambda d: [str(write(d / "t.csv", "text,label\nhi,a\n")), "--export", "x.xlsx"],
        "use a .csv or .jsonl",
    ),
    "db in a missing folder": (
        lambda d: [str(write(d / "t.csv", "text,label\nhi,a\n")), "--db", "no/such/x.sqlite"],
        "--db no/such/x.sqlite: cannot open it",
    ),
    "db not a database": (
        lambda d: [str(write(d / "t.csv", "text,label\nhi,a\n")), "--db", str(d / "t.csv")],
        "cannot open it as an annotations database",
    ),
    "accept-above over 1": (
        lambda d: [str(write(d / "t.csv", "text,label\nhi,a\n")), "--accept-above", "1.5"],
        "--accept-above 1.5: give a confidence between 0 and 1",
    ),
    "negative accept-above": (
        lambda d: [str(write(d / "t.csv", "text,label\nhi,a\n")), "--accept-above", "-0.2"],
        "--accept-above -0.2: give a confidence between 0 and 1",
    ),
    "missing image": (
        lambda d: [str(write(d / "i.csv", "image,label\ngone.png,a\n")), "--image-column", "image"],
        "row 0: ",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_a_message(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    arguments, expected = BAD_INPUTS[case]
    assert main(["annotate", *arguments(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert expected in " ".join(error.split()), error


def test_port_in_use_exits_2_naming_it(topics_csv: Path, capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["annotate", str(topics_csv), "--port", str(port)]) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert f"--port {port}" in error and "in use" in error


def test_ctrl_c_stops_the_server_cleanly(topics_csv: Path) -> None:
    command = [sys.executable, "-m", "tunesmith", "annotate", str(topics_csv), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    while line := process.stdout.readline():
        lines.append(line)
        if "Ctrl-C" in line:
            break
    address = re.search(r"http://127\.0\.0\.1:\d+/", "".join(lines))
    assert address, "".join(lines)
    with urllib.request.urlopen(address.group() + "api/info") as answer:  # serving by now
        assert json.load(answer)["rows"] == len(ROWS)
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=120)  # a guard against a hang, not a speed check
    assert process.returncode == 0, "".join(lines) + rest
    assert "Stopped; every decision is saved" in rest and "Traceback" not in rest


# --- the page in a headless browser ------------------------------------------------------------


@contextmanager
def serving(app) -> Iterator[str]:
    """The app served by uvicorn on a free port in a background thread, as the CLI serves it."""
    listener = bind("127.0.0.1", 0)
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join()
        listener.close()


def test_label_review_and_export_in_a_browser(topics_csv: Path, tmp_path: Path) -> None:
    executable = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    # ranked first: row 4, a suggestion of 27%, under --accept-above's 80%; then row 1 at 83%
    unsure = label_issues([4], confidence=[0.27], label_probability=[0.05])
    unsure["details"][0]["suggested"] = "sports"
    session = open_session(topics_csv, suspects=write_quality(tmp_path, topics_csv, [unsure]))
    idle = 'body[data-busy="false"]'
    with serving(create_app(session)) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=FLAGS)
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector('body[data-ready="true"] #card[data-row="2"]')

        page.keyboard.press("3")  # no name yet: refused, with a message
        expect(page.locator("#message")).to_contain_text("Enter your name")
        page.fill("#annotator", "alice")
        page.press("#annotator", "Enter")
        page.wait_for_selector(f'{idle} #card[data-row="2"]')

        page.keyboard.press("1")  # labels: 1 food, 2 sports, 3 tech
        page.wait_for_selector(f'{idle} #card[data-row="3"]')
        page.keyboard.press("u")  # undo: back to row 2
        page.wait_for_selector(f'{idle} #card[data-row="2"]')
        page.keyboard.press("3")
        page.wait_for_selector(f'{idle} #card[data-row="3"]')

        expect(page.locator("#accept-rule")).to_have_text(
            "Enter accepts a suggestion only at a confidence of at least 80%."
        )
        page.click('#queues button[data-queue="suspects"]')
        page.wait_for_selector(f'{idle} #card[data-row="4"]')
        expect(page.locator("#suggested")).to_have_text("sports")
        expect(page.locator("#confidence")).to_have_text("(confidence 27%)")
        expect(page.locator("#accept-hint")).to_be_visible()
        expect(page.locator("#accept-hint")).to_contain_text("27%, under 80%: Enter does not")
        expect(page.locator("#accept-key")).to_be_hidden()
        page.keyboard.press("Enter")  # under the threshold: the label stays, the page says why
        expect(page.locator("#message")).to_have_text(
            "Label unchanged: Enter accepts only suggestions of at least 80%."
        )
        page.wait_for_selector(f'{idle} #card[data-row="4"]')
        expect(page.locator("#label-now")).to_have_text("tech")
        expect(page.locator("#accept")).to_be_enabled()  # a click would still take it

        page.keyboard.press("s")
        page.wait_for_selector(f'{idle} #card[data-row="1"]')
        expect(page.locator("#suggested")).to_have_text("food")
        expect(page.locator("#confidence")).to_have_text("(confidence 83%)")
        expect(page.locator("#accept-hint")).to_be_hidden()
        expect(page.locator("#accept-key")).to_be_visible()
        page.keyboard.press("Enter")  # 83%: accept the suggestion
        page.wait_for_selector(f"{idle} #empty:not([hidden])")
        expect(page.locator("#progress")).to_contain_text("1 of 2 reviewed")

        page.click("#export")
        expect(page.locator("#export-result")).to_contain_text("Wrote 5 rows")
        page.reload()  # the name is remembered
        expect(page.locator("#annotator")).to_have_value("alice")
        browser.close()

    table = read_export(tmp_path / "topics.annotated.csv")
    assert list(table["label"]) == ["sports", "food", "tech", "", "tech"]
    assert list(table["annotator"]) == ["", "alice", "alice", "", ""]
    kinds = [(d.row, d.label, d.kind) for d in session.store.decisions()]
    assert kinds == [(2, "tech", "label"), (1, "food", "review-change")]
