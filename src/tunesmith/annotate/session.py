"""One annotation session: the data, its label set, the suspects and the decisions so far.

The web app and the command line both go through this class; it holds no state of its own
beyond what is in DATA, quality.json and the SQLite file, so a restart loses nothing.
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.annotate.agreement import Agreement, agreement
from tunesmith.annotate.dataset import AnnotationData, load_data
from tunesmith.annotate.export import FinalLabel, default_export_path, export, final_labels
from tunesmith.annotate.store import Decision, DecisionStore
from tunesmith.annotate.suspects import Suspect, load_suspects
from tunesmith.data.text import sort_labels
from tunesmith.errors import UserError

QUEUES = ("to_label", "suspects", "all")
"""to_label: rows without a label; suspects: rows whose label the model doubts; all: every row.
The first two leave out rows the annotator has already decided."""
ACCEPT_ABOVE = 0.8
"""Default `--accept-above`: Enter takes a suggestion only at this confidence or more; below
it a single key would too often replace a right label (a click or the label's key still can)."""


def check_accept_above(value: float) -> float:
    """--accept-above is a confidence, 0-1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise UserError(
            f"--accept-above {value}: give a confidence between 0 and 1, e.g. 0.8 (Enter then "
            "accepts suggestions of 80% confidence or more)"
        )
    return float(value)


class AnnotationSession:
    def __init__(
        self,
        data: AnnotationData,
        store: DecisionStore,
        labels: list[str] | None = None,
        suspects: dict[int, Suspect] | None = None,
        suspects_path: Path | None = None,
        accept_above: float = ACCEPT_ABOVE,
    ) -> None:
        self.data = data
        self.store = store
        self.suspects = suspects or {}
        self.suspects_path = suspects_path  # their quality.json: an export never writes there
        self.accept_above = check_accept_above(accept_above)
        decided = store.decisions()
        self.labels = label_set(data, labels or [], self.suspects, decided)
        outside = [d.row for d in decided if d.row >= len(data)]
        if outside:
            raise UserError(
                f"--db {store.path}: holds decisions for row {max(outside)}, but {data.path} has "
                f"{len(data)} rows; is it the database of another file? Pass --db NEW.sqlite"
            )

    # --- reading -----------------------------------------------------------------------

    def finals(self) -> dict[int, FinalLabel]:
        return final_labels(self.store.decisions())

    def current_label(self, row: int, finals: dict[int, FinalLabel] | None = None) -> str:
        """The row's label now: its final decided label, else the one it came with."""
        finals = self.finals() if finals is None else finals
        return finals[row].label if row in finals else self.data.labels[row]

    def queue(self, name: str, annotator: str = "") -> list[int]:
        """Rows of queue `name` in the order to show them (suspects: the data check's ranking,
        the likeliest label error first)."""
        if name not in QUEUES:
            raise UserError(f"unknown queue {name!r}; use one of {', '.join(QUEUES)}")
        if name == "all":
            return list(range(len(self.data)))
        mine = {d.row for d in self.store.decisions() if d.annotator == annotator.strip()}
        if name == "to_label":
            return [r for r, label in enumerate(self.data.labels) if not label and r not in mine]
        ranked = sorted(self.suspects.values(), key=lambda s: s.rank)
        return [s.row for s in ranked if s.row not in mine]

    def row(self, row: int, annotator: str = "") -> dict:
        """What the page shows of one row (JSON-ready)."""
        self._check_row(row)
        decisions = self.store.decisions(row)
        suspect = self.suspects.get(row)
        mine = [d for d in decisions if d.annotator == annotator.strip()]
        view = {
            "row": row,
            "kind": self.data.kind,
            "label": self.current_label(row, final_labels(decisions)),
            "given_label": self.data.labels[row],
            "yours": mine[-1].label if mine else None,
            "suspect": None,
            "decisions": [
                {"annotator": d.annotator, "label": d.label, "kind": d.kind, "at": d.decided_at}
                for d in decisions
            ],
        }
        if self.data.kind == "text":
            view["text"] = self.data.items[row]
        else:
            view["image_url"] = f"/api/rows/{row}/image"
            view["image_name"] = Path(self.data.items[row]).name
        if suspect is not None:
            view["suspect"] = {
                "label": suspect.label,
                "suggested": suspect.suggested,
                "confidence": suspect.confidence,
                "enter_accepts": self.enter_accepts(suspect),
                "message": suspect.message,
            }
        return view

    def enter_accepts(self, suspect: Suspect) -> bool:
        """Whether the page's Enter key takes `suspect`'s suggestion: only at a confidence of
        `accept_above` or more (an unknown confidence only when that is 0)."""
        if suspect.suggested is None:
            return False
        if suspect.confidence is None:
            return self.accept_above == 0
        return suspect.confidence >= self.accept_above

    def image_path(self, row: int) -> Path:
        self._check_row(row)
        if self.data.kind != "image":
            raise UserError(f"row {row} is text, not an image")
        return Path(self.data.items[row])

    def progress(self, annotator: str = "") -> dict:
        decisions = self.store.decisions()
        decided = {d.row for d in decisions}
        mine = {d.row for d in decisions if d.annotator == annotator.strip()}
        unlabelled = {r for r, label in enumerate(self.data.labels) if not label}
        counts = {}
        for name, rows in (("to_label", unlabelled), ("suspects", set(self.suspects))):
            counts[name] = {
                "total": len(rows),
                "done": len(rows & decided),
                "yours": len(rows & mine),
            }
        counts["all"] = {"total": len(self.data), "done": len(decided), "yours": len(mine)}
        counts["decisions"] = len(decisions)
        counts["annotators"] = len({d.annotator for d in decisions})
        return counts

    def agreement(self) -> Agreement:
        return agreement(self.store.decisions())

    # --- writing -----------------------------------------------------------------------

    def decide(self, row: int, label: str, annotator: str) -> Decision:
        """Store `annotator`'s label for `row`; a suspect's is a review (kept or changed)."""
        self._check_row(row)
        annotator = annotator.strip()
        if not annotator:
            raise UserError("enter your name (annotator) before the first decision")
        if label not in self.labels:
            raise UserError(f"unknown label {label!r}; the labels are: {', '.join(self.labels)}")
        kind = "label"
        if row in self.suspects:
            kind = "review-keep" if label == self.suspects[row].label else "review-change"
        return self.store.add(row, label, self.current_label(row), annotator, kind)

    def undo(self, annotator: str) -> Decision | None:
        """Take back `annotator`'s latest decision (None when they have none)."""
        return self.store.undo_last(annotator.strip())

    def export(
        self, out: str | Path | None = None, suffix: str = ".csv", force: bool = False
    ) -> Path:
        """Write the labelled table (see `export.labelled_table`) to `out`, which must not exist
        unless `force`; never onto DATA, the decisions database or the suspects file.

        Without `out`: DATA.annotated.csv|jsonl next to DATA (the page's export), which is
        replaced, as that name is ours and the file an earlier export."""
        protected = {
            "the decisions database (--db)": self.store.path,
            "the suspects file (--suspects)": self.suspects_path,
        }
        if out is None:
            target, force, option = default_export_path(self.data, suffix), True, "export"
        else:
            target, option = Path(out), "--export"
        return export(
            self.data,
            self.store.decisions(),
            target,
            replace=force,
            protected=protected,
            option=option,
        )

    def _check_row(self, row: int) -> None:
        if not 0 <= row < len(self.data):
            raise UserError(f"row {row} is not a row of {self.data.path} (0-{len(self.data) - 1})")


def label_set(
    data: AnnotationData,
    extra: list[str],
    suspects: dict[int, Suspect],
    decisions: list[Decision],
) -> list[str]:
    """--labels in their order (so their keys 1-9 are the user's), then the other labels
    found in DATA, in the suggestions and in earlier decisions, sorted."""
    ordered = list(dict.fromkeys(label for label in extra if label))
    found = {label for label in data.labels if label}
    found |= {s.suggested for s in suspects.values() if s.suggested}
    found |= {d.label for d in decisions}
    labels = ordered + sort_labels(found - set(ordered))
    if not labels:
        raise UserError(
            f"DATA: {data.path} has no labels yet; give the label set with --labels a,b,c"
        )
    return labels


def open_session(
    data: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    image_column: str | None = None,
    labels: list[str] | None = None,
    suspects: str | Path | None = None,
    db: str | Path | None = None,
    accept_above: float = ACCEPT_ABOVE,
) -> AnnotationSession:
    """Read DATA and the suspects, and open (or create) the decisions database, by default
    DATA.annotations.sqlite next to DATA. `accept_above`: the confidence from which the page's
    Enter accepts a suggestion."""
    check_accept_above(accept_above)  # before any file is read or created
    loaded = load_data(data, text_column, label_column, image_column)
    found = load_suspects(suspects, loaded.path, loaded.labels) if suspects else {}
    database = Path(db) if db is not None else default_db_path(loaded.path)
    path = Path(suspects).expanduser() if suspects else None
    return AnnotationSession(loaded, DecisionStore(database), labels, found, path, accept_above)


def default_db_path(data: Path) -> Path:
    return data.parent / f"{data.name}.annotations.sqlite"
