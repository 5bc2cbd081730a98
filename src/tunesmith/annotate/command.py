"""`tunesmith annotate`: serve the page, or (--export, --agreement) answer without a server."""

from __future__ import annotations

import errno
import ipaddress
import socket
from pathlib import Path

import uvicorn
from rich.console import Console
from rich.table import Table

from tunesmith.annotate.agreement import Agreement
from tunesmith.annotate.app import create_app
from tunesmith.annotate.session import AnnotationSession, open_session
from tunesmith.errors import UserError


def run_annotate(
    data: Path,
    *,
    port: int,
    host: str,
    text_column: str,
    label_column: str,
    image_column: str | None,
    labels: str | None,
    suspects: Path | None,
    db: Path | None,
    export: Path | None,
    agreement: bool,
    console: Console,
) -> None:
    """Answer --export / --agreement without a server, else serve the page until Ctrl-C."""
    session = open_session(
        data,
        text_column=text_column,
        label_column=label_column,
        image_column=image_column,
        labels=[name.strip() for name in labels.split(",")] if labels else [],
        suspects=suspects,
        db=db,
    )
    try:
        if export is not None:
            written = session.export(export)
            console.print(f"{len(session.data)} rows with their final labels written to {written}")
        if agreement:
            print_agreement(session.agreement(), console)
        if export is None and not agreement:
            serve(session, host, port, console)
    finally:
        session.store.close()


def serve(session: AnnotationSession, host: str, port: int, console: Console) -> None:
    listener = bind(host, port)
    try:  # from here on, Ctrl-C (even before uvicorn takes over the signal) ends cleanly
        _describe(session, console)
        if not _is_loopback(host):
            console.print(f"Listening on {host}: anyone who can reach it can read and annotate")
        address = url(host, listener.getsockname()[1])
        console.print(f"Open {address}  (Ctrl-C to stop)", highlight=False)
        make_server(create_app(session)).run(sockets=[listener])
    except KeyboardInterrupt:
        pass  # uvicorn shut down gracefully, then re-raised the Ctrl-C it caught
    finally:
        listener.close()
    console.print(f"Stopped; every decision is saved in {session.store.path}")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one), so a port in use is a clear
    error before the server starts, no other program can take it in between, and a browser
    opened at once waits for the server instead of being refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        listener.bind((host, port))
    except socket.gaierror:
        listener.close()
        raise UserError(f"--host {host}: not an address of this machine; use 127.0.0.1") from None
    except OSError as error:
        listener.close()
        why = "in use by another program" if error.errno == errno.EADDRINUSE else error.strerror
        raise UserError(
            f"--port {port}: cannot listen on {host}:{port} ({why}); choose another port, "
            f"e.g. --port {_free_port(host)}"
        ) from None
    listener.listen()
    return listener


def make_server(app) -> uvicorn.Server:
    """A quiet uvicorn server (no access log); `run(sockets=[bind(...)])` serves until Ctrl-C."""
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))


def url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if ":" in shown:
        shown = "[::1]" if shown == "::" else f"[{shown}]"
    return f"http://{shown}:{port}/"


def print_agreement(result: Agreement, console: Console) -> None:
    if result.rows == 0:
        console.print(
            f"No row is labelled by two annotators yet ({len(result.annotators)} annotator(s) "
            "so far); agreement needs rows that several people labelled."
        )
        return
    table = Table("annotator", "annotator", "rows", "agree", "Cohen's kappa")
    for pair in result.pairs:
        table.add_row(
            pair.first, pair.second, str(pair.rows), _number(pair.observed), _number(pair.kappa)
        )
    console.print(table)
    console.print(
        f"Krippendorff's alpha (nominal), {len(result.annotators)} annotators on "
        f"{result.rows} rows: {_number(result.alpha)}"
    )


def _describe(session: AnnotationSession, console: Console) -> None:
    progress = session.progress()
    console.print(
        f"Annotating {session.data.path}: {len(session.data)} rows, "
        f"{progress['to_label']['total']} to label, {len(session.suspects)} suspected label "
        f"error(s); labels {', '.join(session.labels)}; decisions in {session.store.path}",
        highlight=False,
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            return probe.getsockname()[1]
    except OSError:
        return 8766


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
