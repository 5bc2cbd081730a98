"""Every annotation decision, in SQLite: committed one by one, so a crash or restart loses none."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tunesmith.errors import UserError

KINDS = ("label", "review-keep", "review-change")
"""label: a label given to a row; review-keep / review-change: a suspect's label kept or
replaced."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    row INTEGER NOT NULL,
    label TEXT NOT NULL,
    previous_label TEXT NOT NULL,
    annotator TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('label', 'review-keep', 'review-change'))
);
CREATE INDEX IF NOT EXISTS decisions_by_row ON decisions (row);
"""
_COLUMNS = "id, row, label, previous_label, annotator, decided_at, kind"


@dataclass(frozen=True)
class Decision:
    id: int
    """Increases with every decision (never reused), so it orders decisions in time."""
    row: int
    """0-based row of DATA."""
    label: str
    previous_label: str
    """The row's label just before this decision ("" for none)."""
    annotator: str
    decided_at: str
    """UTC, ISO 8601."""
    kind: str


class DecisionStore:
    """Decisions in one SQLite file; safe to share between the web server's threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            with self._db:
                self._db.executescript(_SCHEMA)
        except sqlite3.Error as error:
            raise UserError(
                f"--db {self.path}: cannot open it as an annotations database ({error}); "
                "pass another file with --db PATH"
            ) from None

    def add(
        self,
        row: int,
        label: str,
        previous_label: str,
        annotator: str,
        kind: str,
        decided_at: str | None = None,
    ) -> Decision:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        when = decided_at or datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT INTO decisions (row, label, previous_label, annotator, decided_at, kind)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (row, label, previous_label, annotator, when, kind),
            )
        return Decision(cursor.lastrowid, row, label, previous_label, annotator, when, kind)

    def undo_last(self, annotator: str) -> Decision | None:
        """Delete `annotator`'s latest decision and return it (None when they have none)."""
        with self._lock, self._db:
            found = self._db.execute(
                f"SELECT {_COLUMNS} FROM decisions WHERE annotator = ? ORDER BY id DESC LIMIT 1",
                (annotator,),
            ).fetchone()
            if found is None:
                return None
            self._db.execute("DELETE FROM decisions WHERE id = ?", (found[0],))
        return Decision(*found)

    def decisions(self, row: int | None = None) -> list[Decision]:
        """All decisions (or one row's), oldest first."""
        query = f"SELECT {_COLUMNS} FROM decisions"
        args: tuple = ()
        if row is not None:
            query, args = query + " WHERE row = ?", (row,)
        with self._lock:
            found = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [Decision(*values) for values in found]

    def close(self) -> None:
        with self._lock:
            self._db.close()
