"""`tunesmith annotate` against a hostile or careless user: forged Host and Origin headers
(DNS rebinding), bad --port and --host, exports that would overwrite DATA or another file, and
labels, names and paths holding rich markup."""

from __future__ import annotations

import http.client
import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from rich.console import Console

from tunesmith.annotate.app import create_app
from tunesmith.annotate.command import _describe
from tunesmith.annotate.session import AnnotationSession, open_session
from tunesmith.cli import main
from tunesmith.errors import UserError
from tunesmith.local_server.guard import allowed_hosts
from tunesmith.local_server.listener import bind, make_server

from .test_annotate import ROWS, write_quality

PORT = 8765
LOCAL = f"http://127.0.0.1:{PORT}"
EVIL = "http://evil.example"
DECISION = {"row": 2, "label": "tech", "annotator": "alice"}


@pytest.fixture
def topics_csv(tmp_path: Path) -> Path:
    path = tmp_path / "topics.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    return path


@pytest.fixture
def session(topics_csv: Path) -> Iterator[AnnotationSession]:
    opened = open_session(topics_csv)
    yield opened
    opened.store.close()


def client_for(session: AnnotationSession) -> TestClient:
    """The app as `serve` builds it for --host 127.0.0.1 --port PORT."""
    return TestClient(create_app(session, allowed_hosts("127.0.0.1", PORT)), base_url=LOCAL)


def error_of(capsys: pytest.CaptureFixture) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return " ".join(captured.err.split())


# --- Host and Origin ------------------------------------------------------------------------


def test_the_page_answers_under_its_loopback_names(session: AnnotationSession) -> None:
    client = client_for(session)
    assert "tunesmith annotate" in client.get("/").text
    for host in (f"localhost:{PORT}", f"[::1]:{PORT}", f"LocalHost.:{PORT}"):
        assert client.get("/api/info", headers={"host": host}).status_code == 200, host


@pytest.mark.parametrize(
    "host",
    [
        f"evil.example:{PORT}",  # DNS rebinding: evil.example now resolves to 127.0.0.1
        "evil.example",
        "127.0.0.1:9999",  # another port
        f"evil.example@127.0.0.1:{PORT}",
        f"127.0.0.1:{PORT}/x",
        "",
    ],
)
def test_a_forged_host_gets_403(session: AnnotationSession, host: str) -> None:
    client = client_for(session)
    for path in ("/", "/api/info", "/static/app.js"):
        answer = client.get(path, headers={"host": host})
        assert answer.status_code == 403, (host, path)
        assert "is not an address of this server" in answer.json()["detail"]
    answer = client.post("/api/decisions", json=DECISION, headers={"host": host})
    assert answer.status_code == 403
    assert session.store.decisions() == []


@pytest.mark.parametrize(
    "origin", [EVIL, f"http://evil.example:{PORT}", "null", "http://127.0.0.1:1"]
)
def test_a_forged_origin_changes_nothing(
    session: AnnotationSession, topics_csv: Path, origin: str
) -> None:
    client = client_for(session)
    kept = client.post("/api/decisions", json={**DECISION, "row": 3, "label": "sports"})
    assert kept.status_code == 200  # no Origin (curl, a script): allowed, Host is checked
    before = session.store.decisions()
    forged = {"origin": origin}
    for path, body in (
        ("/api/decisions", DECISION),
        ("/api/undo", {"annotator": "alice"}),
        ("/api/export", {"format": "csv"}),
    ):
        answer = client.post(path, json=body, headers=forged)
        assert answer.status_code == 403, path
        assert "another site" in answer.json()["detail"]
    assert session.store.decisions() == before
    assert not (topics_csv.parent / "topics.annotated.csv").exists()
    assert client.get("/api/info", headers=forged).status_code == 200  # reads: CORS guards them


def test_the_pages_own_origin_may_change_things(session: AnnotationSession) -> None:
    client = client_for(session)
    for origin in (LOCAL, f"http://localhost:{PORT}"):
        answer = client.post("/api/decisions", json=DECISION, headers={"origin": origin})
        assert answer.status_code == 200, origin
    assert len(session.store.decisions()) == 2


@contextmanager
def served(session: AnnotationSession) -> Iterator[int]:
    """The app as the CLI serves it (uvicorn on a bound socket, allowed hosts of the bound
    port), in a background thread; yields the port."""
    listener = bind("127.0.0.1", 0)
    port = listener.getsockname()[1]
    server = make_server(create_app(session, allowed_hosts("127.0.0.1", port)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join()
        listener.close()


def request(port: int, method: str, path: str, headers: dict, body: str = "") -> int:
    """The status of a raw HTTP request, with the Host header exactly as given."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders(body.encode())
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


def test_a_real_server_refuses_rebinding(session: AnnotationSession) -> None:
    json_body = '{"row": 2, "label": "tech", "annotator": "mallory"}'
    with served(session) as port:
        own = {"Host": f"127.0.0.1:{port}"}
        assert request(port, "GET", "/", own) == 200
        assert request(port, "GET", "/api/info", {"Host": f"evil.example:{port}"}) == 403
        typed = {"Content-Type": "application/json"}
        forged = {**own, **typed, "Origin": EVIL}
        assert request(port, "POST", "/api/decisions", forged, json_body) == 403
        rebound = {"Host": f"evil.example:{port}", **typed, "Origin": f"http://evil.example:{port}"}
        assert request(port, "POST", "/api/decisions", rebound, json_body) == 403
        assert session.store.decisions() == []
        mine = {**own, **typed, "Origin": f"http://127.0.0.1:{port}"}
        assert request(port, "POST", "/api/decisions", mine, json_body) == 200
    assert [d.annotator for d in session.store.decisions()] == ["mallory"]


def test_allowed_hosts_follow_the_bound_address() -> None:
    loopback = allowed_hosts("127.0.0.1", 80)
    assert loopback.allows_host("localhost") and loopback.allows_host("127.0.0.1:80")
    assert not loopback.allows_host("127.0.0.1:8080")
    assert allowed_hosts("::1", 5).allows_host("[0:0::1]:5")
    one = allowed_hosts("192.0.2.7", 5)  # a given address: that one only
    assert one.allows_host("192.0.2.7:5") and not one.allows_host("localhost:5")
    everywhere = allowed_hosts("0.0.0.0", 5)  # loopback names, host name, interface addresses
    assert everywhere.allows_host("localhost:5") and everywhere.allows_host("127.0.0.1:5")
    assert everywhere.allows_host(f"{socket.gethostname()}:5")
    assert not everywhere.allows_host("evil.example:5")
    assert allowed_hosts("::", 5).allows_host("[::1]:5")
    assert not loopback.allows_origin("file://") and loopback.allows_origin("http://localhost")


def test_create_app_alone_answers_loopback_names_on_any_port(session: AnnotationSession) -> None:
    client = TestClient(create_app(session), base_url="http://localhost:1234")
    assert client.get("/api/info").status_code == 200
    assert client.get("/api/info", headers={"host": "testserver"}).status_code == 403


# --- --port and --host ----------------------------------------------------------------------


@pytest.mark.parametrize("port", ["70000", "65536", "-1"])
def test_a_port_out_of_range_exits_2_before_opening_anything(
    topics_csv: Path, capsys: pytest.CaptureFixture, port: str
) -> None:
    before = topics_csv.read_bytes()
    assert main(["annotate", str(topics_csv), "--port", port]) == 2
    error = error_of(capsys)
    assert f"--port {port}:" in error and "from 0 to 65535" in error
    assert topics_csv.read_bytes() == before
    assert [p.name for p in topics_csv.parent.iterdir()] == [topics_csv.name]  # no database


def test_bind_checks_the_port_too() -> None:
    with pytest.raises(UserError, match="--port 70000"):
        bind("127.0.0.1", 70000)


def test_an_address_of_another_machine_blames_host(
    topics_csv: Path, capsys: pytest.CaptureFixture
) -> None:
    before = topics_csv.read_bytes()
    assert main(["annotate", str(topics_csv), "--host", "8.8.8.8", "--port", "0"]) == 2
    error = error_of(capsys)
    assert "--host 8.8.8.8: not an address of this machine; use 127.0.0.1" in error
    assert "network interfaces" in error and "--port" not in error
    assert topics_csv.read_bytes() == before


# --- exports that would destroy something ---------------------------------------------------


def same_file_as(target: Path, how: str) -> Path:
    """A path naming `target`: itself, a symlink or a hard link to it."""
    if how == "itself":
        return target
    other = target.with_name(f"{how}.csv")
    (other.symlink_to if how == "symlink" else other.hardlink_to)(target)
    return other


@pytest.mark.parametrize("how", ["itself", "symlink", "hardlink"])
@pytest.mark.parametrize("force", [False, True])
def test_export_never_overwrites_data(
    topics_csv: Path, capsys: pytest.CaptureFixture, how: str, force: bool
) -> None:
    session = open_session(topics_csv)
    session.decide(2, "tech", "alice")
    session.store.close()
    before = topics_csv.read_bytes()
    out = same_file_as(topics_csv, how)
    arguments = ["annotate", str(topics_csv), "--export", str(out)] + ["--force"] * force
    assert main(arguments) == 2
    error = error_of(capsys)
    assert f"--export {out}: that is DATA" in error and "choose another file name" in error
    assert topics_csv.read_bytes() == before


def test_export_onto_data_by_a_relative_name(
    topics_csv: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(topics_csv.parent)
    before = topics_csv.read_bytes()
    assert main(["annotate", "topics.csv", "--export", "./topics.csv", "--force"]) == 2
    assert "that is DATA" in error_of(capsys)
    assert topics_csv.read_bytes() == before


def test_export_never_overwrites_the_database_or_the_suspects(
    topics_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    database = tmp_path / "decisions.csv"
    base = ["annotate", str(topics_csv), "--db", str(database)]
    assert main([*base, "--agreement"]) == 0  # creates the database
    saved = database.read_bytes()
    assert main([*base, "--export", str(database), "--force"]) == 2
    assert "that is the decisions database (--db)" in error_of(capsys)
    assert database.read_bytes() == saved

    quality = write_quality(tmp_path, topics_csv)
    written = quality.read_bytes()
    link = same_file_as(quality, "symlink")
    command = ["annotate", str(topics_csv), "--suspects", str(quality), "--export", str(link)]
    assert main([*command, "--force"]) == 2
    assert "that is the suspects file (--suspects)" in error_of(capsys)
    assert quality.read_bytes() == written


def test_an_existing_export_is_replaced_only_with_force(
    topics_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "labelled.csv"
    out.write_text("precious,work\n")
    command = ["annotate", str(topics_csv), "--export", str(out)]
    assert main(command) == 2
    error = error_of(capsys)
    assert f"--export {out}: the file exists; add --force to replace it" in error
    assert out.read_text() == "precious,work\n"
    assert main([*command, "--force"]) == 0
    assert list(pd.read_csv(out)["text"]) == [row["text"] for row in ROWS]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_the_python_api_refuses_too(session: AnnotationSession, tmp_path: Path) -> None:
    out = session.export(tmp_path / "a.jsonl")
    with pytest.raises(UserError, match="the file exists; add --force"):
        session.export(out)
    assert session.export(out, force=True) == out
    with pytest.raises(UserError, match="that is DATA"):
        session.export(session.data.path, force=True)


def test_the_pages_export_replaces_its_own_file_never_data(
    session: AnnotationSession, topics_csv: Path
) -> None:
    client = client_for(session)
    own = topics_csv.parent / "topics.annotated.csv"
    assert client.post("/api/export", json={"format": "csv"}).status_code == 200
    client.post("/api/decisions", json=DECISION)
    assert client.post("/api/export", json={"format": "csv"}).status_code == 200  # replaced
    assert pd.read_csv(own, keep_default_na=False)["label"].iloc[2] == "tech"

    own.unlink()
    own.symlink_to(topics_csv)  # the default name now leads to DATA
    before = topics_csv.read_bytes()
    answer = client.post("/api/export", json={"format": "csv"})
    assert answer.status_code == 400 and "that is DATA" in answer.json()["detail"]
    assert topics_csv.read_bytes() == before


# --- markup in labels, names and paths ------------------------------------------------------

MARKUP = ["[/]", "[urgent]", ":fire:", "[bold red]x"]


def test_labels_and_paths_print_literally(tmp_path: Path) -> None:
    data = tmp_path / "[red]topics.csv"
    rows = [{"text": "[b]hi", "label": label} for label in MARKUP]
    pd.DataFrame(rows).to_csv(data, index=False)
    session = open_session(data)
    out = io.StringIO()
    _describe(session, Console(file=out, width=400, color_system=None))
    printed = out.getvalue()
    assert all(label in printed for label in MARKUP), printed
    assert str(data) in printed
    session.store.close()


def test_agreement_and_export_print_names_literally(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "topics.csv"
    pd.DataFrame([{"text": "a", "label": "[/]"}, {"text": "b", "label": "[urgent]"}]).to_csv(
        data, index=False
    )
    session = open_session(data)
    for row in (0, 1):
        session.decide(row, "[/]", "[bold]ann")
        session.decide(row, "[urgent]", "bob[/]")
    session.store.close()
    assert main(["annotate", str(data), "--agreement"]) == 0
    printed = capsys.readouterr().out
    assert "[bold]ann" in printed and "bob[/]" in printed

    out = tmp_path / "[urgent]:fire:.csv"
    assert main(["annotate", str(data), "--export", str(out)]) == 0
    assert str(out) in " ".join(capsys.readouterr().out.split())
    assert out.is_file()


def test_no_file_is_left_by_a_refused_export(session: AnnotationSession, topics_csv: Path) -> None:
    with pytest.raises(UserError):
        session.export(topics_csv)
    assert sorted(os.listdir(topics_csv.parent)) == ["topics.csv", "topics.csv.annotations.sqlite"]
