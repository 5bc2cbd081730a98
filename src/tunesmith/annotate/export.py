"""Final labels from the decisions, and the labelled table written out (csv or jsonl)."""

from __future__ import annotations

import os
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tunesmith.annotate.dataset import AnnotationData
from tunesmith.annotate.store import Decision
from tunesmith.errors import UserError

FORMATS = (".csv", ".jsonl")
ANNOTATOR_COLUMN = "annotator"
DECIDED_AT_COLUMN = "annotated_at"


@dataclass(frozen=True)
class FinalLabel:
    label: str
    annotator: str
    """Who gave `label` most recently."""
    decided_at: str
    votes: int
    """Annotators whose latest decision on the row is `label`."""
    voters: int
    """Annotators who decided on the row."""


def final_labels(decisions: Iterable[Decision]) -> dict[int, FinalLabel]:
    """The label of each decided row: a majority vote, ties going to the latest decision.

    Each annotator's latest decision on a row is their one vote (so an annotator who changes
    their mind is counted once, with their new label). The label with the most votes wins; when
    labels tie, the one chosen most recently wins. With a single annotator that is simply their
    latest decision. `annotator` and `decided_at` are those of the winning label's latest vote.
    """
    latest: dict[int, dict[str, Decision]] = {}
    for decision in sorted(decisions, key=lambda d: d.id):
        latest.setdefault(decision.row, {})[decision.annotator] = decision
    finals = {}
    for row, votes in latest.items():
        counts = Counter(d.label for d in votes.values())
        newest = {d.label: d for d in sorted(votes.values(), key=lambda d: d.id)}
        label = max(counts, key=lambda name: (counts[name], newest[name].id))
        winner = newest[label]
        finals[row] = FinalLabel(
            label, winner.annotator, winner.decided_at, counts[label], len(votes)
        )
    return finals


def labelled_table(data: AnnotationData, decisions: Iterable[Decision], out: Path) -> pd.DataFrame:
    """DATA's table with the final labels in its label column (rows nobody decided keep their
    label), and who decided each row and when in `annotator` and `annotated_at` (empty for
    rows without decisions; columns of those names already in DATA are updated, not added).

    Image paths are rewritten relative to `out`'s folder (absolute ones stay absolute), so the
    exported table finds the same images wherever it is written."""
    finals = final_labels(decisions)
    table = data.table.copy()
    labels = [
        finals[row].label if row in finals else given for row, given in enumerate(data.labels)
    ]
    table[data.label_column] = _typed(labels, data.table[data.label_column])
    for column, field in ((ANNOTATOR_COLUMN, "annotator"), (DECIDED_AT_COLUMN, "decided_at")):
        old = table[column] if column in table.columns else pd.Series([None] * len(table))
        table[column] = [
            getattr(finals[row], field) if row in finals else old.iloc[row]
            for row in range(len(table))
        ]
    if data.kind == "image":
        table[data.image_column] = [
            _relative(image, original, out.parent)
            for image, original in zip(data.items, table[data.image_column], strict=True)
        ]
    return table


def export(
    data: AnnotationData,
    decisions: Iterable[Decision],
    out: str | Path,
    *,
    replace: bool = False,
    protected: Mapping[str, Path | None] | None = None,
    option: str = "--export",
) -> Path:
    """Write the labelled table (`labelled_table`) to `out` (.csv or .jsonl), atomically: a
    reader never sees a half-written file, and a failed export leaves an existing file as is.

    `out` is never DATA nor a file of `protected` (what it is -> path), and replaces an existing
    file only with `replace` (--force); see `check_target`. `option` names the setting in
    messages. Annotators who disagree on a row are settled by `final_labels`: each annotator's
    latest decision is one vote, the majority wins, and a tie goes to the most recent decision."""
    out = Path(out).expanduser()
    check_target(out, {"DATA": data.path, **(protected or {})}, replace=replace, option=option)
    table = labelled_table(data, decisions, out)
    # a unique name in the same folder (so the rename is atomic), created with the usual mode
    temporary = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        if out.suffix.lower() == ".csv":
            table.to_csv(temporary, index=False)
        else:
            table.to_json(temporary, orient="records", lines=True, force_ascii=False)
        os.replace(temporary, out)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise UserError(
            f"--export {out}: cannot write it ({error.strerror or error}); choose another place"
        ) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return out


def check_target(
    out: Path, protected: Mapping[str, Path | None], *, replace: bool, option: str = "--export"
) -> None:
    """Refuse an export that would destroy something: DATA's real labels, the decisions, the
    suspects (never, even with `replace`: they are inputs), or an existing file (unless
    `replace`). Same file means the same resolved path, or `os.path.samefile` (a hard link)."""
    if out.suffix.lower() not in FORMATS:
        raise UserError(f"{option} {out}: use a .csv or .jsonl file name")
    for what, path in protected.items():
        if path is not None and _same_file(out, path):
            raise UserError(
                f"{option} {out}: that is {what} ({path}); writing the export there would "
                "replace it; choose another file name"
            )
    if not out.parent.is_dir():
        raise UserError(f"{option} {out}: folder {out.parent} does not exist; create it first")
    if out.is_dir():
        raise UserError(f"{option} {out}: is a folder; give a file name")
    if out.exists() and not replace:
        raise UserError(
            f"{option} {out}: the file exists; add --force to replace it, or choose another name"
        )


def default_export_path(data: AnnotationData, suffix: str) -> Path:
    """Next to DATA: topics.csv -> topics.annotated.csv; a folder images/ -> images.annotated.csv"""
    stem = data.path.name if data.is_folder else data.path.stem
    return data.path.parent / f"{stem}.annotated{suffix}"


def _typed(labels: list[str], original: pd.Series) -> pd.Series:
    """Labels as text, or as integers when DATA's label column was numeric and they all are."""
    if pd.api.types.is_numeric_dtype(original) and not pd.api.types.is_bool_dtype(original):
        try:
            return pd.Series([int(x) if x else None for x in labels], dtype="Int64")
        except ValueError:
            pass
    return pd.Series([x if x else None for x in labels], dtype=object)


def _same_file(first: Path, second: Path) -> bool:
    try:
        if first.resolve() == second.resolve():
            return True
        return first.exists() and second.exists() and os.path.samefile(first, second)
    except (OSError, RuntimeError):  # a symlink loop: replacing the link harms no file
        return False


def _relative(image: str, original: object, folder: Path) -> str:
    if Path(str(original)).expanduser().is_absolute():
        return image
    return Path(os.path.relpath(image, folder)).as_posix()
