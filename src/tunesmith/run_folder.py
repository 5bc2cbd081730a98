"""The one owner of a run folder: the name of every file in it, atomic writes, whether a folder
is provably a tunesmith run, and how `train` replaces one (`--overwrite`) without ever
deleting anything that is not ours.

A run folder is marked at its creation by `.tunesmith-run` (JSON: who wrote it and when).
`--overwrite` replaces only a marked folder (or one written before the marker existed whose
every entry is a run file), and only at the end of a successful run: the new run is trained
in a staging folder beside the old one and the two are swapped, so a refused or failed run
leaves the old one as it was.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tunesmith.errors import UserError
from tunesmith.safe_files import check_output_folder, same_path, write_text_atomically


class RunFolder:
    """A run folder and the names of its files; every command reads and writes through it."""

    MARKER = ".tunesmith-run"
    RECIPE = "recipe.yaml"
    QUALITY = "quality.json"
    ESTIMATE = "estimate.json"
    HISTORY = "history.jsonl"
    METRICS = "metrics.json"
    GENERATIONS = "generations.jsonl"
    REPORT = "report.html"
    CHECKPOINTS = "checkpoints"
    MODEL = "model"
    ADAPTER = "adapter"
    RETRIEVAL = "retrieval"
    """The retrieval indexes of the RAG and few-shot contenders (no pickles: JSON, NumPy
    arrays loaded without pickle, a faiss index)."""
    TENSORBOARD = "tensorboard"
    """`tracking: tensorboard` without a uri: the run's event files (tracking.py)."""
    ENTRIES = frozenset(
        {MARKER, RECIPE, QUALITY, ESTIMATE, HISTORY, METRICS, GENERATIONS, REPORT}
        | {CHECKPOINTS, MODEL, ADAPTER, RETRIEVAL, TENSORBOARD}
    )
    """Everything train writes: a folder holding only these is recognisably a run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    @property
    def weights(self) -> Path:
        """adapter/ for a PEFT run, else model/ (which may be missing in a damaged run)."""
        adapter = self.path / self.ADAPTER
        return adapter if adapter.is_dir() else self.path / self.MODEL

    # --- identity -------------------------------------------------------------------------

    def mark(self) -> None:
        write_marker(self.path / self.MARKER, "tunesmith")

    def is_marked(self) -> bool:
        return has_marker(self.path / self.MARKER, "tunesmith")

    def is_run(self) -> bool:
        """Marked, or (a run from before the marker) a recipe.yaml with task and data and
        nothing but run files beside it."""
        if not self.path.is_dir():
            return False
        if self.is_marked():
            return True
        names = {entry.name for entry in self.path.iterdir()}
        if self.RECIPE not in names or not names <= self.ENTRIES:
            return False
        try:
            recipe = yaml.safe_load((self.path / self.RECIPE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return False
        return isinstance(recipe, dict) and {"task", "data"} <= set(recipe)

    # --- files ----------------------------------------------------------------------------

    def write_json(self, name: str, content: Any) -> Path:
        text = json.dumps(content, indent=2, ensure_ascii=False)
        return write_text_atomically(self.path / name, text + "\n")

    def write_text(self, name: str, text: str) -> Path:
        return write_text_atomically(self.path / name, text)

    def read_json(self, name: str) -> Any:
        """A run file that must be there and whole; a damaged one is a clear error."""
        path = self.path / name
        if not path.is_file():
            raise UserError(f"{path} is missing: {self.damaged_advice()}")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise UserError(f"{path} cannot be read ({error}): {self.damaged_advice()}") from None

    def damaged_advice(self) -> str:
        return (
            f"the run folder {self.path} is incomplete or damaged; restore it from a copy, "
            "or train again (with --output to a new folder)"
        )

    def require_finished(self) -> None:
        """What eval, predict, export, serve and report need: a finished run's files."""
        if not self.path.is_dir():
            raise UserError(f"{self.path}: no such folder; give a run folder written by train")
        if not (self.path / self.RECIPE).is_file():
            raise UserError(
                f"{self.path} is not a tunesmith run folder (no {self.RECIPE}); give RUN_DIR"
            )
        missing = [n for n in (self.METRICS,) if not (self.path / n).is_file()]
        if not (self.path / self.MODEL).is_dir() and not (self.path / self.ADAPTER).is_dir():
            missing.append(f"{self.MODEL}/ or {self.ADAPTER}/")
        if missing:
            checkpoint = (self.path / self.CHECKPOINTS / "last").is_dir()
            hint = (
                "the run did not finish: continue it with `tunesmith train RECIPE --output "
                f"{self.path} --resume`"
                if checkpoint
                else self.damaged_advice()
            )
            raise UserError(f"{self.path} has no {' and no '.join(missing)}: {hint}")


@dataclass
class OutputPlan:
    """Where `train` writes (`work`) and where the run ends up (`final`).

    A fresh run writes straight into `final`. `--overwrite` writes into a staging folder
    beside it and swaps at the end. `--resume` continues in `final`. The staging name is
    fixed, so every process of a distributed run finds the same folder."""

    final: Path
    work: Path
    resume: bool = False
    created: bool = False
    """This command created `work` (so it may remove it when the run fails)."""
    emptied: bool = False
    """`work` was an empty folder before (a failed run empties it again, and leaves it)."""

    @property
    def staged(self) -> bool:
        return self.work != self.final

    def create(self) -> RunFolder:
        """Make the work folder and mark it ours; only once every check has passed."""
        folder = RunFolder(self.work)
        if self.staged and folder.is_marked():
            shutil.rmtree(folder.path)  # our own staging folder from an interrupted overwrite
        if self.resume:  # the run's own folder, checked to be a run: nothing to create
            return folder
        self.emptied = folder.path.is_dir()
        self.created = not self.emptied
        folder.mark()
        return folder

    def abandon(self) -> None:
        """A failed run: remove what this command created; an old run stays as it was."""
        if not RunFolder(self.work).is_marked():
            return
        if self.created:
            shutil.rmtree(self.work, ignore_errors=True)
        elif self.emptied:  # the folder was there, empty: leave it so
            for entry in self.work.iterdir():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    def commit(self) -> Path:
        """The finished run takes its place; with --overwrite the old run goes only now."""
        if not self.staged:
            return self.final
        old = staging_path(self.final, "old")
        if old.exists():
            shutil.rmtree(old)
        if self.final.exists():
            self.final.rename(old)
        self.work.rename(self.final)
        shutil.rmtree(old, ignore_errors=True)
        return self.final


def staging_path(final: Path, kind: str) -> Path:
    return final.parent / f".{final.name}.tunesmith-{kind}"


def plan_output(
    output: Path, *, resume: bool, overwrite: bool, inputs: list[Path] = ()
) -> OutputPlan:
    """Check the run folder before any work: a folder holding anything is refused unless the
    user asked to resume it or to overwrite it, and it is a run; it may never be or hold one
    of the run's inputs (the recipe, data, a local model), and it must be writable."""
    output = Path(output)
    check_output_folder(output, inputs, "output folder", "runs/NAME")
    holds_files = output.is_dir() and any(output.iterdir())
    if resume:
        if not output.is_dir():
            raise UserError(f"--resume: {output} does not exist; give the interrupted run's folder")
        if not RunFolder(output).is_run():
            raise UserError(f"--resume: {output} is not a tunesmith run folder")
        return OutputPlan(output, output, resume=True)
    if not holds_files:
        return OutputPlan(output, output)
    if not overwrite:
        raise UserError(
            f"output folder {output} already holds files; choose another with --output, "
            "add --overwrite to replace the run in it, or --resume to continue an interrupted run"
        )
    if not RunFolder(output).is_run():
        raise UserError(
            f"--overwrite: {output} is not a tunesmith run folder (no {RunFolder.MARKER}, and "
            "it holds files a run does not write), so nothing in it is replaced; choose "
            "another output folder"
        )
    staging = staging_path(output, "new")
    if staging.exists() and not RunFolder(staging).is_marked():
        raise UserError(
            f"--overwrite stages the new run in {staging}, which exists and is not ours; "
            "move it away first"
        )
    return OutputPlan(output, staging)


def fresh_folder(base: Path) -> Path:
    """`base` when it is free (missing or empty), else base-2, base-3, ...: never a folder
    that holds anything."""
    candidate, number = base, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def inputs_of(recipe: Any) -> list[Path]:
    """The files and folders a run reads, which its output may never touch: the recipe file,
    data files and folders, the knowledge source (data.documents), and a local model folder."""
    paths = [getattr(recipe, "source", None)]
    paths += [getattr(recipe.data, split, None) for split in ("train", "validation", "test")]
    paths += [getattr(recipe.data, key, None) for key in ("documents", "questions")]
    model = Path(str(recipe.model or ""))
    if recipe.model and not str(recipe.model).startswith("builtin:") and model.exists():
        paths.append(model)
    return [Path(p) for p in paths if p]


def same_recipe_changes(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two recipe mappings."""
    changed = []
    for key in sorted(set(saved) | set(current), key=str):
        a, b = saved.get(key), current.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changed += same_recipe_changes(a, b, name + ".")
        elif a != b:
            changed.append(name)
    return changed


def write_marker(marker: Path, tool: str) -> None:
    """Stamp `marker`'s folder as made by `tool` (this version, now); the folder is made."""
    from tunesmith.version import __version__

    marker.parent.mkdir(parents=True, exist_ok=True)
    stamp = {"tool": tool, "version": __version__, "created": _now()}
    write_text_atomically(marker, json.dumps(stamp) + "\n")


def has_marker(marker: Path, tool: str) -> bool:
    """Whether `marker` is a stamp written by `write_marker` for `tool`."""
    try:
        stamp = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(stamp, dict) and stamp.get("tool") == tool


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


__all__ = ["OutputPlan", "RunFolder", "fresh_folder", "inputs_of", "plan_output", "same_path"]
