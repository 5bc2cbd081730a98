"""The tune folder: the name of every file in it, whether a folder is provably one (so
`--overwrite` never deletes anything that is not ours), resuming, and the lock that keeps
two searches out of one folder.

```
TUNE_DIR/
  .tunesmith-tune    marker (JSON: who wrote it and when)
  study.db           the Optuna study (default storage)
  quality.json       the data check, run once for the whole search
  contenders.json    the cheaper options, scored once on validation
  trials/NNNN/       each trial's run folder (validation only; no test score, no report)
  logs/NNNN.log      each trial's output; logs/worker-K.log each worker's
  trials.csv         every trial: state, values, validation score, guards, cost
  best/              the best trial's complete run folder, scored once on test
  best-recipe.yaml   the chosen recipe, re-runnable with `tunesmith train`
  tune.html          leaderboard, score against cost, parameter importance, contenders
```
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunesmith.errors import UserError
from tunesmith.run_folder import RunFolder, has_marker, staging_path, write_marker
from tunesmith.safe_files import check_output_folder, write_text_atomically


class TuneFolder:
    MARKER = ".tunesmith-tune"
    LOCK = ".lock"
    ASK_LOCK = ".ask-lock"
    STUDY = "study.db"
    QUALITY = RunFolder.QUALITY
    CONTENDERS = "contenders.json"
    TRIALS = "trials"
    LOGS = "logs"
    TRIALS_CSV = "trials.csv"
    BEST = "best"
    BEST_RECIPE = "best-recipe.yaml"
    REPORT = "tune.html"
    ENTRIES = frozenset(
        {MARKER, LOCK, ASK_LOCK, STUDY, QUALITY, CONTENDERS, TRIALS, LOGS, TRIALS_CSV}
        | {BEST, BEST_RECIPE, REPORT, f"{STUDY}-journal"}
    )

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def default_storage(self) -> str:
        return f"sqlite:///{(self.path / self.STUDY).resolve()}"

    def trial_dir(self, number: int) -> Path:
        return self.path / self.TRIALS / f"{number:04d}"

    def log(self, name: str) -> Path:
        (self.path / self.LOGS).mkdir(parents=True, exist_ok=True)
        return self.path / self.LOGS / f"{name}.log"

    # --- identity -------------------------------------------------------------------------

    def is_marked(self) -> bool:
        return has_marker(self.path / self.MARKER, "tunesmith tune")

    def mark(self) -> None:
        write_marker(self.path / self.MARKER, "tunesmith tune")

    def is_tune_folder(self) -> bool:
        """Marked, and nothing in it but what a search writes."""
        if not self.path.is_dir() or not self.is_marked():
            return False
        return {entry.name for entry in self.path.iterdir()} <= self.ENTRIES

    # --- files ----------------------------------------------------------------------------

    def write_json(self, name: str, content: Any) -> Path:
        text = json.dumps(content, indent=2, ensure_ascii=False)
        return write_text_atomically(self.path / name, text + "\n")

    def read_json(self, name: str) -> Any:
        try:
            return json.loads((self.path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def write_text(self, name: str, text: str) -> Path:
        return write_text_atomically(self.path / name, text)

    def replace_best(self, trial_dir: Path) -> Path:
        """best/ becomes a copy of `trial_dir` (a run folder); the old best/ goes only once
        the copy is whole."""
        best = self.path / self.BEST
        staged = staging_path(best, "new")
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(trial_dir, staged, ignore=shutil.ignore_patterns(RunFolder.CHECKPOINTS))
        old = staging_path(best, "old")
        shutil.rmtree(old, ignore_errors=True)
        if best.exists():
            best.rename(old)
        staged.rename(best)
        shutil.rmtree(old, ignore_errors=True)
        return best

    def clear(self) -> None:
        """--overwrite: remove the old search (under the lock, which stays)."""
        for entry in self.path.iterdir():
            if entry.name != self.LOCK:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    # --- one search at a time --------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Held for the whole command: a second `tunesmith tune` on this folder is refused
        (a killed one's lock goes with its process)."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / self.LOCK).open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise UserError(
                    f"{self.path}: another `tunesmith tune` is searching in this folder; wait "
                    "for it, or join it with --workers from that command"
                ) from None
            yield


class AskLock:
    """Serialises starting a trial between the local workers of one folder, so the trial
    count is exact: a worker takes it, checks the count, creates its trial, lets go."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = None

    def acquire(self) -> None:
        import fcntl

        self._handle = self.path.open("a")
        fcntl.flock(self._handle, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._handle is not None:
            import fcntl

            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def prepare_folder(output: Path, overwrite: bool, inputs: list[Path]) -> tuple[TuneFolder, bool]:
    """(the folder, whether it holds a search to resume or, with --overwrite, to remove).
    Checked before any work, and nothing is changed: a folder holding files that is not a
    tune folder is refused."""
    check_output_folder(output, inputs, "--output", "tunes/NAME")
    folder = TuneFolder(output)
    if not output.is_dir() or not any(output.iterdir()):
        return folder, False
    if not folder.is_tune_folder():
        raise UserError(
            f"--output {output} already holds files and is not a tune folder (no "
            f"{TuneFolder.MARKER}, or files a search does not write), so nothing in it is "
            "changed; choose another --output"
        )
    return folder, True
