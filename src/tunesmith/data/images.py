"""Labelled images for classification: find, verify, open and split the recipe's images.

`data.train` (and validation/test) is either a folder `root/<label>/<image files>` (any depth
inside each label folder) or a table (csv, tsv, jsonl, json, parquet) with an image-path
column (`data.image_column`) and a label column (`data.label_column`). Every image is checked
when loading, so a corrupt file stops the run before any training, with its name.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from tunesmith.data.split import split_frames
from tunesmith.data.tables import READERS, read_table
from tunesmith.data.text import (
    _as_text,
    _check_known_labels,
    label_cells,
    require_column,
    sort_labels,
)
from tunesmith.errors import UserError
from tunesmith.recipe import DataConfig

SPLITS = ("train", "validation", "test")
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
_SHOWN = 10  # bad files named in a message; the rest are counted


@dataclass
class ImageExamples:
    """One split: absolute image paths, label ids and where each came from.

    `rows` is the 0-based row in `source` as read (a folder: the index in sorted file order).
    `skipped` ("path: reason") is only filled by `load_labelled_images`; the splits of a recipe
    report theirs in `ImageSplits.skipped`."""

    paths: list[str]
    labels: list[int]
    rows: list[int]
    source: str
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class ImageSplits:
    train: ImageExamples
    validation: ImageExamples
    test: ImageExamples
    label_names: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """ "path: reason" of every image dropped because of data.skip_bad."""

    def split(self, name: str) -> ImageExamples:
        return getattr(self, name)


def load_image_classification(data: DataConfig, seed: int) -> ImageSplits:
    """Read and verify the images the recipe names; split `train` where validation/test are
    not given (stratified and seeded, like text classification)."""
    frames: dict[str, pd.DataFrame] = {}
    skipped: list[str] = []
    for name in SPLITS:
        path = getattr(data, name)
        if path is not None:
            frames[name], bad = _read_labelled_images(data, path, f"data.{name}")
            skipped.extend(bad)

    train = frames["train"]
    train_labels = train["label"].tolist()
    label_names = sort_labels(set(train_labels))
    if len(label_names) < 2:
        where = (
            "is the only label folder with images"
            if Path(data.train).is_dir()
            else f"is the only label in column {data.label_column!r}"
        )
        raise UserError(
            f"data.train: {data.train} has a single class: {label_names[0]!r} {where}; "
            "a classifier needs at least two classes. Add images of the other classes "
            "(a folder root/<label>/ per class)"
        )
    for name in ("validation", "test"):
        if name in frames:
            _check_known_labels(
                frames[name], label_names, getattr(data, name), f"data.{name}", data
            )

    frames = split_frames(frames, data, seed)

    label_ids = {label: i for i, label in enumerate(label_names)}
    examples = {}
    for name in SPLITS:
        frame = frames[name]
        if len(frame) == 0:
            raise UserError(
                f"data: the {name} split is empty; {data.train} has {len(train)} usable "
                f"images. Give data.{name} a file or folder, or raise data.{name}_size"
            )
        examples[name] = _examples(frame, label_ids, getattr(data, name) or data.train)
    return ImageSplits(**examples, label_names=label_names, skipped=skipped)


def load_labelled_images(
    path: str, data: DataConfig, label_names: list[str], role: str = "--data"
) -> ImageExamples:
    """One extra labelled folder or table (e.g. `tunesmith eval --data`) in a trained model's
    labels; images dropped by data.skip_bad are in the result's `skipped`."""
    frame, skipped = _read_labelled_images(data, path, role)
    _check_known_labels(frame, label_names, path, role, data)
    label_ids = {label: i for i, label in enumerate(label_names)}
    examples = _examples(frame, label_ids, path)
    examples.skipped = skipped
    return examples


def read_image_inputs(inputs: list[str], data: DataConfig) -> list[str]:
    """Absolute image paths for `predict`: each input is an image file, a folder (every image
    inside, recursive, sorted) or a table (csv, tsv, jsonl, json, parquet) whose
    `data.image_column` holds image paths (relative ones are read from the table's folder).
    The images themselves are not opened here (`open_image` names a bad one)."""
    paths: list[str] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = _images_under(path)
            if not found:
                raise UserError(f"INPUT: {path}: no images in this folder; {_accepted()}")
            paths.extend(str(p) for p in found)
        elif path.is_file():
            suffix = path.suffix.lower()
            if suffix in READERS:
                frame = read_table(path, role="INPUT")
                require_column(frame, data.image_column, "image_column", path)
                column = _image_column(frame, data.image_column, path, "INPUT")
                for row, value in enumerate(column):
                    if value == "":
                        raise UserError(
                            f"INPUT: {path}: row {row} has an empty {data.image_column!r}; "
                            "fill or remove it"
                        )
                    image = _resolve(value, path.parent)
                    if not os.path.isfile(image):
                        raise UserError(
                            f"INPUT: {path}: row {row} (0-based): image not found: {image}; "
                            f"relative paths are read from {path.parent}"
                        )
                    paths.append(image)
            elif suffix in IMAGE_SUFFIXES:
                paths.append(_absolute(path))
            else:
                raise UserError(
                    f"INPUT: {path}: unsupported file type {path.suffix!r}; give an image "
                    f"({', '.join(IMAGE_SUFFIXES)}), a folder of images, or a "
                    f"{', '.join(sorted(READERS))} file with an image-path column"
                )
        else:
            raise UserError(f"INPUT: file or folder not found: {item}")
    if not paths:
        raise UserError("predict: nothing to predict; give images, folders or tables of images")
    return paths


def open_image(path: str | Path) -> Image.Image:
    """The image at `path` as RGB, upright (EXIF orientation applied).

    Palette, grayscale, 16-bit, CMYK and other modes are converted; transparency is
    composited on white. A missing, corrupt or unreadable file is a UserError naming it."""
    try:
        with Image.open(path) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
            if upright is None or upright is image:
                upright = image.copy()  # detached from the file
            return _to_rgb(upright)
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, ...
        raise UserError(
            f"{path}: cannot read this image ({_reason(error)}); replace or remove it"
        ) from None


# --- reading ---------------------------------------------------------------------------


def _read_labelled_images(data: DataConfig, path: str, role: str) -> tuple[pd.DataFrame, list[str]]:
    """A frame with columns row, path (absolute), label of readable images, and the
    "path: reason" of the unreadable ones skipped (an error unless data.skip_bad)."""
    source = Path(path).expanduser()
    if source.is_dir():
        frame = _read_folder(source, role)
    elif source.exists() or source.suffix.lower() in READERS:
        frame = _read_table(data, source, role)
    else:
        raise UserError(
            f"{role}: not found: {path}; give a folder root/<label>/<image files> or a "
            f"{', '.join(sorted(READERS))} file with {data.image_column!r} and "
            f"{data.label_column!r} columns"
        )

    reasons = _verify_all(frame["path"].tolist())
    bad = [i for i, reason in enumerate(reasons) if reason is not None]
    if not bad:
        return frame, []
    in_table = not source.is_dir()
    if not data.skip_bad:
        shown = "; ".join(
            (f"row {frame['row'].iloc[i]}: " if in_table else "")
            + f"{frame['path'].iloc[i]}: {reasons[i]}"
            for i in bad[:_SHOWN]
        )
        more = f"; and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
        raise UserError(
            f"{role}: {path}: {len(bad)} image(s) cannot be read: {shown}{more}. "
            "Fix or remove them, or set data.skip_bad: true to skip them"
        )
    skipped = [f"{frame['path'].iloc[i]}: {reasons[i]}" for i in bad]
    frame = frame.drop(index=frame.index[bad])
    if len(frame) == 0:
        raise UserError(f"{role}: {path}: none of its {len(bad)} image(s) can be read")
    return frame, skipped


def _read_folder(root: Path, role: str) -> pd.DataFrame:
    """`root/<label>/**/<image>`: rows in sorted path order; hidden files and folders and
    files of other types are ignored, and so are label folders without images."""
    records = []
    base = _absolute(root)  # the image paths are absolute and normalised: a/../b is b
    for label_dir in sorted(root.iterdir()):
        if label_dir.name.startswith(".") or not label_dir.is_dir():
            continue
        for image in _images_under(label_dir):
            relative = Path(os.path.relpath(image, base)).as_posix()
            records.append((relative, str(image), label_dir.name))
    if not records:
        loose = [p.name for p in root.iterdir() if _is_image(p) and p.is_file()]
        hint = (
            f" ({len(loose)} image(s) lie directly in it: move them into one folder per class)"
            if loose
            else ""
        )
        raise UserError(
            f"{role}: {root}: no images in label folders{hint}; the layout is "
            f"root/<label>/<image files>; {_accepted()}"
        )
    records.sort()
    return pd.DataFrame(
        {
            "row": np.arange(len(records)),
            "path": [path for _, path, _ in records],
            "label": [label for _, _, label in records],
        }
    )


def _read_table(data: DataConfig, path: Path, role: str) -> pd.DataFrame:
    frame = read_table(path, role=role)
    for key in ("image_column", "label_column"):
        require_column(frame, getattr(data, key), key, path)
    images = _image_column(frame, data.image_column, path, role)
    out = pd.DataFrame(
        {
            "row": np.arange(len(frame)),
            "path": images,
            "label": label_cells(frame, data.label_column, path, role),
        }
    )
    empty = out.index[(out["path"] == "") | (out["label"] == "")]
    if len(empty) and not data.drop_empty:
        shown = ", ".join(str(r) for r in empty[:_SHOWN]) + (" ..." if len(empty) > _SHOWN else "")
        raise UserError(
            f"{role}: {path}: {len(empty)} row(s) with an empty "
            f"{data.image_column!r} or {data.label_column!r} (0-based rows {shown}); "
            "fill or remove them, or set data.drop_empty: true to skip them"
        )
    out = out.drop(index=empty)
    if len(out) == 0:
        raise UserError(f"{role}: {path}: every row is empty")
    out["path"] = [_resolve(value, path.parent) for value in out["path"]]
    return out


def _image_column(frame: pd.DataFrame, column: str, path: Path, role: str) -> pd.Series:
    """The column as stripped path strings; embedded image bytes are refused by name."""
    values = frame[column]
    embedded = values.map(lambda v: isinstance(v, (bytes, bytearray, dict))).to_numpy()
    if embedded.any():
        row = int(np.flatnonzero(embedded)[0])
        raise UserError(
            f"{role}: {path}: column {column!r} holds image data, not paths (row {row}); "
            "tunesmith reads image files: save the images and put their paths in the column"
        )
    return _as_text(values)


def _images_under(folder: Path) -> list[Path]:
    """Image files anywhere under `folder` (symlinks followed once), sorted; hidden ignored."""
    found = []
    seen = set()
    for current, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(current)
        if real in seen:  # a symlink cycle
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES):
                found.append(Path(_absolute(Path(current) / name)))
    return sorted(found)


def _is_image(path: Path) -> bool:
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def _accepted() -> str:
    return f"accepted image suffixes: {', '.join(IMAGE_SUFFIXES)}"


def _resolve(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return _absolute(path if path.is_absolute() else base / path)


def _absolute(path: Path) -> str:
    return os.path.normpath(os.path.abspath(path))


def _examples(frame: pd.DataFrame, label_ids: dict[str, int], source: str) -> ImageExamples:
    return ImageExamples(
        paths=frame["path"].tolist(),
        labels=[label_ids[label] for label in frame["label"]],
        rows=[int(r) for r in frame["row"]],
        source=str(source),
    )


# --- checking and converting ------------------------------------------------------------


def _verify_all(paths: list[str]) -> list[str | None]:
    """None for each readable image, else why not. Threads overlap the file reads."""
    if len(paths) < 64:
        return [_verify(p) for p in paths]
    with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1))) as pool:
        return list(pool.map(_verify, paths, chunksize=32))


def _verify(path: str) -> str | None:
    """A cheap check (header and, for some formats, checksums) without decoding pixels."""
    if not os.path.isfile(path):
        return "file not found" if not os.path.exists(path) else "not a file"
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, ...
        return _reason(error)
    return None


def _reason(error: Exception) -> str:
    if isinstance(error, FileNotFoundError):
        return "file not found"
    if isinstance(error, Image.UnidentifiedImageError):
        return "not an image file Pillow can read"
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image).astype(np.float32) / 257.0  # 16-bit range to 8-bit
        return _gray_to_rgb(values)
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float32))
        if values.size and values.max() <= 1.0:
            values = values * 255.0  # a float image in [0, 1]
        return _gray_to_rgb(values)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("L", "RGB") and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")  # 1, L, CMYK, YCbCr, LAB, HSV, RGBX, ...


def _gray_to_rgb(values: np.ndarray) -> Image.Image:
    gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")
