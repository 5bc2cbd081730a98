"""Writing a user's files safely: an output is never an input, an existing file is replaced
only when the user asked (`--force`), and every write is a temporary file renamed into place,
so a crash or a full disk never leaves a half-written file where a good one was."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from tunesmith.errors import UserError


def same_path(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same file or folder (links, `..` and case on disk included)."""
    a, b = Path(a).expanduser(), Path(b).expanduser()
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """Whether `path` is `folder` or lies somewhere below it."""
    path, folder = Path(path).expanduser().resolve(), Path(folder).expanduser().resolve()
    return path == folder or folder in path.parents


def nearest_existing(path: Path) -> Path:
    """The path itself, or its closest ancestor that exists."""
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_folder(
    output: Path, inputs: Iterable[str | Path], what: str, example: str
) -> None:
    """`output` (a folder a command will write, named `what` in messages) is neither one of
    `inputs` nor holds one nor lies inside an input folder, is not a file, and can be
    written; `example` is the kind of folder to suggest (runs/NAME)."""
    for item in inputs:
        if is_inside(item, output) or (is_inside(output, item) and Path(item).is_dir()):
            where = "holds" if is_inside(item, output) else "is inside"
            raise UserError(
                f"{what} {output} {where} {item}, an input of this command; choose a folder "
                f"of its own (e.g. {example})"
            )
    if output.exists() and not output.is_dir():
        raise UserError(f"{what} {output} is a file; choose a folder name")
    check_writable_folder(output, what)


def check_writable_folder(folder: Path, what: str) -> None:
    """`folder` (or the folder that would hold it) can be written, checked by writing: a
    read-only mount, a file where a folder should be, or missing rights are found before any
    work instead of after it."""
    anchor = nearest_existing(folder)
    if anchor.exists() and not anchor.is_dir():
        raise UserError(
            f"{what} {folder}: {anchor} is a file, not a folder; choose another output folder"
        )
    probe = anchor / f".tunesmith-write-test-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        probe.write_bytes(b"")
    except OSError as error:
        raise UserError(
            f"{what} {folder}: cannot write in {anchor} ({error.strerror or error}); choose a "
            "folder you can write to"
        ) from None
    probe.unlink(missing_ok=True)


def check_output_file(
    output: Path, what: str, *, inputs: Iterable[str | Path] = (), force: bool = False
) -> Path:
    """Refuse an output file that is one of the command's inputs, or lies inside an input
    folder, or exists already without `force`, or whose folder is missing or read-only."""
    output = Path(output).expanduser()
    for item in inputs:
        if same_path(output, item) or (Path(item).is_dir() and is_inside(output, item)):
            raise UserError(
                f"{what} {output} is also an input of this command ({item}); writing it would "
                "destroy the input. Choose another file name"
            )
    if output.is_dir():
        raise UserError(f"{what} {output} is a folder; give a file name, e.g. {output}/out.csv")
    if not output.parent.is_dir():
        raise UserError(f"{what} {output}: folder {output.parent} does not exist; create it first")
    if output.exists() and not force:
        raise UserError(
            f"{what} {output} already exists; add --force to replace it, or choose another name"
        )
    check_writable_folder(output.parent, what)
    return output


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(temporary)` on a new file beside `path`, then rename it to `path`: readers
    see the old file or the new one, never a part. The temporary file is removed on failure."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write it ({error.strerror or error})") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_text_atomically(path: Path, text: str) -> Path:
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def fingerprint(path: str | Path) -> str | None:
    """A SHA-256 of a file's bytes, or of a folder's file names and bytes (an image folder);
    None when nothing is there. Two fingerprints differ when the data differs."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_file():
        _hash_file(path, digest)
    elif path.is_dir():
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(item.relative_to(path).as_posix().encode() + b"\0")
            _hash_file(item, digest)
    else:
        return None
    return digest.hexdigest()


def _hash_file(path: Path, digest: hashlib._Hash) -> None:
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
