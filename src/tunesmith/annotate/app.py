"""The web app: one static page (static/) and a small JSON API over an AnnotationSession."""

from __future__ import annotations

from dataclasses import asdict
from functools import cache
from pathlib import Path

import jinja2
from babel.messages.extract import extract
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from tunesmith import i18n
from tunesmith.annotate.export import FORMATS
from tunesmith.annotate.session import QUEUES, AnnotationSession
from tunesmith.errors import UserError
from tunesmith.local_server.guard import AllowedHosts, HostGuard, loopback_hosts

STATIC = Path(__file__).parent / "static"


@cache
def script_messages() -> tuple[str, ...]:
    """The strings app.js shows, t("...") (the same extraction as `make messages`)."""
    with (STATIC / "app.js").open("rb") as handle:
        found = extract("javascript", handle, keywords={"t": None}, comment_tags=())
        return tuple(dict.fromkeys(message for _line, message, _comments, _context in found))


def render_page(lang: str) -> str:
    """index.html in `lang`: its own text translated, and the script's strings handed to
    app.js (#messages) in the same catalogue."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(STATIC), autoescape=True, extensions=["jinja2.ext.i18n"]
    )
    env.install_gettext_callables(i18n._, i18n.ngettext, newstyle=True)
    with i18n.language(lang):
        messages = {text: i18n._(text) for text in script_messages()}
        messages = {text: local for text, local in messages.items() if local != text}
        return env.get_template("index.html").render(lang=lang, messages=messages)


class DecisionIn(BaseModel):
    row: int
    label: str
    annotator: str


class UndoIn(BaseModel):
    annotator: str


class ExportIn(BaseModel):
    format: str = "csv"


def create_app(
    session: AnnotationSession, allowed: AllowedHosts | None = None, lang: str = "en"
) -> FastAPI:
    """A user's mistake (no name, an unknown label) answers 400 with the message to show.
    `lang`: the page's language (tunesmith.i18n.LANGUAGES).

    Requests whose Host is not in `allowed` (default: the loopback names on any port), and
    changes whose Origin is another site, answer 403 (see guard.py: DNS rebinding)."""
    app = FastAPI(title="tunesmith annotate", docs_url=None, redoc_url=None)
    app.add_middleware(HostGuard, allowed=allowed or loopback_hosts())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    page = render_page(i18n.check_language(lang))

    @app.exception_handler(UserError)
    async def user_error(_: Request, error: UserError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/info")
    def info() -> dict:
        data = session.data
        return {
            "data": str(data.path),
            "kind": data.kind,
            "rows": len(data),
            "labels": session.labels,
            "queues": list(QUEUES),
            "suspects": len(session.suspects),
            "accept_above": session.accept_above,
            "db": str(session.store.path),
            "export_format": "jsonl" if data.path.suffix.lower() in (".jsonl", ".json") else "csv",
        }

    @app.get("/api/queue")
    def queue(name: str = "to_label", annotator: str = "") -> dict:
        return {"queue": name, "rows": session.queue(name, annotator)}

    @app.get("/api/rows/{row}")
    def row(row: int, annotator: str = "") -> dict:
        return session.row(row, annotator)

    @app.get("/api/rows/{row}/image")
    def image(row: int) -> FileResponse:
        return FileResponse(session.image_path(row))

    @app.get("/api/progress")
    def progress(annotator: str = "") -> dict:
        return session.progress(annotator)

    @app.post("/api/decisions")
    def decide(decision: DecisionIn) -> dict:
        stored = session.decide(decision.row, decision.label, decision.annotator)
        return {"decision": asdict(stored), "progress": session.progress(decision.annotator)}

    @app.post("/api/undo")
    def undo(request: UndoIn) -> dict:
        undone = session.undo(request.annotator)
        return {
            "decision": asdict(undone) if undone else None,
            "progress": session.progress(request.annotator),
        }

    @app.get("/api/agreement")
    def agreement() -> dict:
        return asdict(session.agreement())

    @app.post("/api/export")
    def export(request: ExportIn) -> dict:
        """Always to DATA.annotated.csv|jsonl, which it may replace (its own earlier export)."""
        suffix = "." + request.format.lower().lstrip(".")
        if suffix not in FORMATS:
            raise UserError(f"export format {request.format!r}: use csv or jsonl")
        path = session.export(suffix=suffix)
        return {"path": str(path), "rows": len(session.data)}

    return app
