"""`tunesmith annotate`: serve the page, or (--export, --agreement) answer without a server."""

from __future__ import annotations

import errno
import ipaddress
import socket
from pathlib import Path

import uvicorn
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tunesmith.annotate.agreement import Agreement
from tunesmith.annotate.app import create_app
from tunesmith.annotate.guard import allowed_hosts
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
    force: bool = False,
) -> None:
    """Answer --export / --agreement without a server, else serve the page until Ctrl-C.

    `force` lets --export replace an existing file (never DATA, --db or --suspects)."""
    check_port(port)
    serving = export is None and not agreement
    # the address first, before the database is created: a bad --host/--port leaves nothing
    listener = bind(host, port) if serving else None
    try:
        session = open_session(
            data,
            text_column=text_column,
            label_column=label_column,
            image_column=image_column,
            labels=[name.strip() for name in labels.split(",")] if labels else [],
            suspects=suspects,
            db=db,
        )
    except BaseException:
        if listener is not None:
            listener.close()
        raise
    try:
        if export is not None:
            written = session.export(export, force=force)
            say(console, f"{len(session.data)} rows with their final labels written to {written}")
        if agreement:
            print_agreement(session.agreement(), console)
        if listener is not None:
            serve(session, host, listener, console)
    finally:
        session.store.close()


def serve(session: AnnotationSession, host: str, listener: socket.socket, console: Console) -> None:
    """Serve the page on a socket from `bind` until Ctrl-C; the socket is closed after."""
    try:  # from here on, Ctrl-C (even before uvicorn takes over the signal) ends cleanly
        _describe(session, console)
        if not _is_loopback(host):
            say(console, f"Listening on {host}: anyone who can reach it can read and annotate")
        bound = listener.getsockname()[1]
        say(console, f"Open {url(host, bound)}  (Ctrl-C to stop)")
        make_server(create_app(session, allowed_hosts(host, bound))).run(sockets=[listener])
    except KeyboardInterrupt:
        pass  # uvicorn shut down gracefully, then re-raised the Ctrl-C it caught
    finally:
        listener.close()
    say(console, f"Stopped; every decision is saved in {session.store.path}")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one), so a port in use is a clear
    error before the server starts, no other program can take it in between, and a browser
    opened at once waits for the server instead of being refused."""
    check_port(port)
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
        if error.errno == errno.EADDRNOTAVAIL:
            raise UserError(
                f"--host {host}: not an address of this machine; use 127.0.0.1, or an address "
                "of this machine's network interfaces"
            ) from None
        why = "in use by another program" if error.errno == errno.EADDRINUSE else error.strerror
        raise UserError(
            f"--port {port}: cannot listen on {host}:{port} ({why}); choose another port, "
            f"e.g. --port {_free_port(host)}"
        ) from None
    listener.listen()
    return listener


def check_port(port: int) -> None:
    """A port out of range is the user's typo, not an OverflowError deep in `socket.bind`."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UserError(f"--port {port}: a port is a number from 0 to 65535 (0: any free port)")


def say(console: Console, message: str) -> None:
    """Print `message` as it is: paths, labels and names may hold [markup] or :emoji: codes."""
    console.print(Text(message))


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
        say(
            console,
            f"No row is labelled by two annotators yet ({len(result.annotators)} annotator(s) "
            "so far); agreement needs rows that several people labelled.",
        )
        return
    table = Table("annotator", "annotator", "rows", "agree", "Cohen's kappa")
    for pair in result.pairs:
        scores = (str(pair.rows), _number(pair.observed), _number(pair.kappa))
        table.add_row(*(Text(cell) for cell in (pair.first, pair.second, *scores)))  # "[b]ob" too
    console.print(table)
    say(
        console,
        f"Krippendorff's alpha (nominal), {len(result.annotators)} annotators on "
        f"{result.rows} rows: {_number(result.alpha)}",
    )


def _describe(session: AnnotationSession, console: Console) -> None:
    progress = session.progress()
    say(
        console,
        f"Annotating {session.data.path}: {len(session.data)} rows, "
        f"{progress['to_label']['total']} to label, {len(session.suspects)} suspected label "
        f"error(s); labels {', '.join(session.labels)}; decisions in {session.store.path}",
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
