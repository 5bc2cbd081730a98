"""The data being annotated: a table of texts, a table of image paths, or an image folder.

Rows are numbered as tunesmith's readers number them (0-based, in file order; a folder in
sorted path order), so the row numbers in a `quality.json` line up with the rows here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from tunesmith.data.images import (
    _SHOWN,
    _absolute,
    _image_column,
    _images_under,
    _is_image,
    _resolve,
    _verify_all,
)
from tunesmith.data.tables import READERS, read_table
from tunesmith.data.text import _as_text
from tunesmith.errors import UserError

FOLDER_IMAGE_COLUMN = "image"
"""The column of image paths in the table made from an image folder (and in its export)."""
FOLDER_LABEL_COLUMN = "label"


@dataclass
class AnnotationData:
    """The rows of DATA: what to show and the label each row came with ("" for none)."""

    path: Path
    """DATA, absolute."""
    kind: Literal["text", "image"]
    table: pd.DataFrame
    """The original table, exported with its label column replaced (a folder: columns image,
    the path relative to the folder, and label)."""
    items: list[str]
    """Per row: the text, or the absolute path of the image."""
    labels: list[str]
    """Per row: the given label as text; "" where the row is still to label."""
    label_column: str
    image_column: str | None = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def is_folder(self) -> bool:
        return self.path.is_dir()


def load_data(
    data: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    image_column: str | None = None,
) -> AnnotationData:
    """Read DATA: a folder is an image folder, a table with `image_column` a table of images,
    any other table a table of texts. Every problem is a UserError naming the file or column."""
    path = Path(_absolute(Path(data).expanduser()))
    if not path.exists():
        raise UserError(
            f"DATA: file or folder not found: {data}; give a {_tables()} table, or an image "
            "folder laid out root/<label>/<image files>"
        )
    if path.is_dir():
        return _load_folder(path)
    frame = read_table(path, role="DATA")
    _require_column(frame, label_column, "--label-column", path)
    labels = _as_text(frame[label_column]).tolist()
    if image_column is None:
        _require_column(frame, text_column, "--text-column", path)
        texts = _as_text(frame[text_column]).tolist()
        return AnnotationData(path, "text", frame, texts, labels, label_column)
    _require_column(frame, image_column, "--image-column", path)
    images = _image_column(frame, image_column, path, "DATA")
    empty = [row for row, value in enumerate(images) if value == ""]
    if empty:
        raise UserError(
            f"DATA: {path}: {len(empty)} row(s) with an empty {image_column!r} "
            f"(0-based rows {_rows(empty)}); fill or remove them"
        )
    paths = [_resolve(value, path.parent) for value in images]
    _check_images(paths, path, in_table=True)
    return AnnotationData(path, "image", frame, paths, labels, label_column, image_column)


def _load_folder(root: Path) -> AnnotationData:
    """root/<label>/**/<image> are labelled; images directly in root are still to label.

    The labelled images come first in the order of `tunesmith.data.images._read_folder`
    (sorted relative paths), so their rows match a `quality.json` written for this folder."""
    labelled = []
    for label_dir in sorted(root.iterdir()):
        if label_dir.is_dir() and not label_dir.name.startswith("."):
            labelled += [
                (image.relative_to(root).as_posix(), str(image), label_dir.name)
                for image in _images_under(label_dir)
            ]
    labelled.sort()
    loose = sorted(_absolute(p) for p in root.iterdir() if _is_image(p) and p.is_file())
    paths = [path for _, path, _ in labelled] + loose
    if not paths:
        raise UserError(
            f"DATA: {root}: no images found; lay the folder out as root/<label>/<image files> "
            "(images directly in root are the ones still to label)"
        )
    _check_images(paths, root, in_table=False)
    labels = [label for _, _, label in labelled] + [""] * len(loose)
    relative = [Path(path).relative_to(root).as_posix() for path in paths]
    table = pd.DataFrame({FOLDER_IMAGE_COLUMN: relative, FOLDER_LABEL_COLUMN: labels})
    return AnnotationData(
        root, "image", table, paths, labels, FOLDER_LABEL_COLUMN, FOLDER_IMAGE_COLUMN
    )


def _check_images(paths: list[str], source: Path, in_table: bool) -> None:
    reasons = _verify_all(paths)
    bad = [i for i, reason in enumerate(reasons) if reason is not None]
    if not bad:
        return
    shown = "; ".join(
        (f"row {i}: " if in_table else "") + f"{paths[i]}: {reasons[i]}" for i in bad[:_SHOWN]
    )
    more = f"; and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    where = f"; relative paths are read from {source.parent}" if in_table else ""
    raise UserError(
        f"DATA: {source}: {len(bad)} image(s) cannot be read: {shown}{more}{where}. "
        "Fix or remove them"
    )


def _require_column(frame: pd.DataFrame, column: str, option: str, path: Path) -> None:
    if column in frame.columns:
        return
    columns = [str(c) for c in frame.columns]
    close = difflib.get_close_matches(column, columns, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    extra = ""
    if option == "--text-column":
        extra = " (or --image-column NAME for a table of image paths)"
    elif option == "--label-column":
        extra = f" (or add a column {column!r}, empty in the rows still to label)"
    raise UserError(
        f"DATA: column {column!r} not found in {path}; {hint}its columns are: "
        f"{', '.join(columns)}. Name the column with {option} NAME{extra}"
    )


def _rows(rows: list[int]) -> str:
    return ", ".join(str(r) for r in rows[:_SHOWN]) + (" ..." if len(rows) > _SHOWN else "")


def _tables() -> str:
    return ", ".join(sorted({kind for kind in READERS.values()}))
