"""`tunesmith annotate`: serve the page, or (--export, --agreement) answer without a server."""

from __future__ import annotations

import socket
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tunesmith.annotate.agreement import Agreement
from tunesmith.annotate.app import create_app
from tunesmith.annotate.session import (
    ACCEPT_ABOVE,
    AnnotationSession,
    check_accept_above,
    open_session,
)
from tunesmith.local_server.guard import allowed_hosts
from tunesmith.local_server.listener import bind, check_port, is_loopback, make_server, url


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
    lang: str = "en",
    accept_above: float = ACCEPT_ABOVE,
) -> None:
    """Answer --export / --agreement without a server, else serve the page until Ctrl-C.

    `force` lets --export replace an existing file (never DATA, --db or --suspects); `lang`:
    the page's language; `accept_above`: the confidence from which Enter takes a suggestion."""
    check_port(port)
    check_accept_above(accept_above)
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
            accept_above=accept_above,
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
            serve(session, host, listener, console, lang)
    finally:
        session.store.close()


def serve(
    session: AnnotationSession,
    host: str,
    listener: socket.socket,
    console: Console,
    lang: str = "en",
) -> None:
    """Serve the page on a socket from `bind` until Ctrl-C; the socket is closed after."""
    try:  # from here on, Ctrl-C (even before uvicorn takes over the signal) ends cleanly
        _describe(session, console)
        if not is_loopback(host):
            say(console, f"Listening on {host}: anyone who can reach it can read and annotate")
        bound = listener.getsockname()[1]
        say(console, f"Open {url(host, bound)}  (Ctrl-C to stop)")
        make_server(create_app(session, allowed_hosts(host, bound), lang)).run(sockets=[listener])
    except KeyboardInterrupt:
        pass  # uvicorn shut down gracefully, then re-raised the Ctrl-C it caught
    finally:
        listener.close()
    say(console, f"Stopped; every decision is saved in {session.store.path}")


def say(console: Console, message: str) -> None:
    """Print `message` as it is: paths, labels and names may hold [markup] or :emoji: codes."""
    console.print(Text(message))


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
    if session.suspects:
        say(
            console,
            f"Enter accepts a suggestion at {100 * session.accept_above:g}% confidence or more "
            "(--accept-above); below, pick the label yourself",
        )


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
