"""Experiment tracking (the recipe's `tracking`): each run recorded in MLflow or TensorBoard
through the libraries' own APIs, beside the run folder, which stays the record tunesmith
itself reads.

One interface, `Tracker`: `start(params)`, `log_metrics(metrics, step)` at every evaluation,
`log_final(metrics)`, `log_artifacts(files)`, `end(status)`; the `none` backend is the
interface doing nothing, so the training code never asks which backend it has.

Two promises:
- **Refused before work.** `plan_tracking` resolves the destination (--tracking-uri, the
  recipe, MLflow's environment, the default) and checks it where that is cheap: an MLflow
  server that does not answer, a store path that is not an SQLite file, a log folder that
  cannot be written are a UserError (exit 2) before any model is loaded.
- **Never costs a run.** Once training is under way a failing tracker prints one warning
  and records nothing more; the run goes on and its folder is complete.

mlflow and torch.utils.tensorboard are imported only when a run is tracked (mlflow alone
takes about a second), so commands that do not track start as fast as before.
"""

from __future__ import annotations

import getpass
import json
import math
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from tunesmith.errors import UserError
from tunesmith.recipe import TrackingConfig
from tunesmith.run_folder import RunFolder, fresh_folder
from tunesmith.safe_files import check_writable_folder

FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"
"""How a run ends, in MLflow's words: it finished; a bug or a refusal stopped it; it was
stopped on purpose (Ctrl-C, a pruned or skipped trial of a search)."""

PARENT_RUN_ATTR = "tracking_parent_run_id"
"""The study's user attribute holding a search's MLflow run: workers (local or on other
machines) and a resumed search make their trials children of that one run."""

MAX_PARAM_VALUE = 6000
"""MLflow's limit on a parameter's value (longer ones are cut, marked with ...)."""
MAX_KEY = 250
"""MLflow's limit on a parameter's or metric's name."""
SERVER_TIMEOUT_S = 5.0
"""How long the check before work waits for a tracking server to answer."""
SQLITE_HEADER = b"SQLite format 3\x00"


# --- where runs are recorded ------------------------------------------------------------


@dataclass(frozen=True)
class Tracking:
    """Where runs are recorded: the recipe's `tracking` with --tracking-uri applied,
    resolved (MLflow URIs made absolute, so the printed command works from any folder)."""

    backend: str = "none"
    """none, mlflow or tensorboard."""
    uri: str | None = None
    """mlflow: the tracking URI; tensorboard: the log folder holding one subfolder per run
    (None: each run's RUN/tensorboard)."""
    experiment: str = "tunesmith"
    """mlflow: the experiment."""
    parent_run_id: str | None = None
    """mlflow: a search's run; the runs opened from here are its children (nested runs)."""
    group: str | None = None
    """tensorboard with a uri: the subfolder of `uri` holding a search's trials."""

    @property
    def enabled(self) -> bool:
        return self.backend != "none"

    def child(self, parent_run_id: str | None, group: str) -> Tracking:
        """Where a search's trials are recorded: nested under its run (MLflow), one
        subfolder each under `uri`/`group` (TensorBoard)."""
        return replace(self, parent_run_id=parent_run_id, group=group)

    def check(self) -> None:
        """Refuse a destination that cannot work, before any work; cheap checks only (no
        import of mlflow, nothing left behind): a server is asked once, with a short
        timeout."""
        if self.backend == "tensorboard" and self.uri is not None:
            check_writable_folder(Path(self.uri), "tracking.uri (the TensorBoard log folder)")
        if self.backend != "mlflow" or self.uri is None:
            return
        if self.uri.startswith(("http://", "https://")):
            _check_server(self.uri)
        elif self.uri.startswith("sqlite:///"):
            _check_sqlite(Path(self.uri.removeprefix("sqlite:///")))
        elif self.uri.startswith("file:"):
            check_writable_folder(Path(self.uri.removeprefix("file://")), "tracking.uri")

    def open(self, console: Console, name: str, folder: Path) -> Tracker:
        """The tracker of one run called `name` whose run folder is `folder` (where the
        TensorBoard events go without a uri); nothing is recorded before `start`."""
        if self.backend == "mlflow":
            return MlflowTracker(self, console, name)
        if self.backend == "tensorboard":
            if self.uri is None:
                log_dir = folder / RunFolder.TENSORBOARD
            else:  # a folder of its own, never another run's: name, name-2, ...
                log_dir = fresh_folder(Path(self.uri, self.group or "", name))
            return TensorBoardTracker(console, log_dir)
        return Tracker()

    def open_search(
        self, console: Console, name: str, trials: Path, resume_run_id: str | None
    ) -> Tracker:
        """The tracker of a whole `tunesmith tune` search called `name`, whose trials' run
        folders are in `trials` (each trial: `child`). MLflow: one run, reopened when the
        search resumes; TensorBoard has no nesting, so the search itself records nothing
        there and says where its trials' folders are."""
        if self.backend == "mlflow":
            return MlflowTracker(self, console, name, resume_run_id=resume_run_id)
        if self.backend == "tensorboard":
            return SearchBoard(Path(self.uri, name) if self.uri else trials)
        return Tracker()


def plan_tracking(config: TrackingConfig, uri_option: str | None = None) -> Tracking:
    """The recipe's `tracking` with --tracking-uri, resolved and checked (a UserError names
    the key and the fix)."""
    uri = uri_option or config.uri
    if config.backend == "none":
        if uri_option:
            raise UserError(
                f"--tracking-uri {shown_uri(uri_option)}: the recipe's tracking is none; say "
                "where to record with tracking: mlflow or tensorboard (or --set tracking=mlflow)"
            )
        return Tracking()
    if config.backend == "mlflow":
        uri = mlflow_uri(uri)
    elif uri is not None:
        uri = str(Path(uri.removeprefix("file://")).expanduser().absolute())
    tracking = Tracking(config.backend, uri, config.experiment)
    tracking.check()
    return tracking


def mlflow_uri(uri: str | None) -> str:
    """The MLflow tracking URI: the one given, else $MLFLOW_TRACKING_URI, else MLflow's
    own default, an SQLite store `mlflow.db` in the working directory (where `mlflow ui`
    looks first). A local path (or a relative sqlite:/// one) is made absolute; a path
    without a scheme is an SQLite file, since MLflow 3 refuses its old folder store."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    if uri.startswith("sqlite:///"):
        path = uri.removeprefix("sqlite:///")
        return uri if path.startswith("/") else f"sqlite:///{Path(path).absolute()}"
    if "://" in uri or uri.startswith(("databricks", "file:")):
        return uri
    path = Path(uri).expanduser().absolute()
    if path.is_dir():
        raise UserError(
            f"tracking.uri {uri}: a folder; MLflow 3 records in a database: give a file such "
            f"as {path / 'mlflow.db'} (or sqlite:///..., or a server's http://host:port)"
        )
    return f"sqlite:///{path}"


def shown_uri(uri: str) -> str:
    """A URI as printed and recorded: a password in it (http://user:secret@host) masked;
    MLflow takes credentials from MLFLOW_TRACKING_USERNAME / _PASSWORD instead."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", uri)


def _check_server(uri: str) -> None:
    """Something answers at `uri`: any HTTP answer (one that wants a login is a server
    there) or a TLS handshake (a certificate MLflow may be told to accept,
    MLFLOW_TRACKING_INSECURE_TLS) will do; only silence is refused."""
    import ssl

    health = re.sub(r"//[^/@]*@", "//", uri.rstrip("/")) + "/health"  # no credentials sent
    try:
        with urllib.request.urlopen(health, timeout=SERVER_TIMEOUT_S):
            pass
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        if isinstance(reason, ssl.SSLError):
            return
        raise UserError(
            f"tracking.uri {shown_uri(uri)}: no MLflow tracking server answers there "
            f"({reason}); start it (`mlflow server --port 5000`), correct --tracking-uri or "
            "tracking.uri, or train untracked with --set tracking=none"
        ) from None


def _check_sqlite(path: Path) -> None:
    """An existing store must be an SQLite database (a user's other file is never touched);
    a new one needs a folder that can be written."""
    if path.is_dir():
        raise UserError(f"tracking.uri sqlite:///{path}: a folder; name a file, e.g. mlflow.db")
    if path.is_file():
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
        if head and head != SQLITE_HEADER:
            raise UserError(
                f"tracking.uri sqlite:///{path}: the file exists and is not an SQLite "
                "database, so it is left alone; name a new file (e.g. mlflow.db) or an "
                "existing MLflow store"
            )
        return
    check_writable_folder(path.parent, "tracking.uri (the folder of the MLflow store)")


# --- what is recorded -------------------------------------------------------------------


def flatten_params(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """The resolved recipe as MLflow parameters: dotted keys (`train.learning_rate`), values
    as the recipe writes them (null, true, lists as JSON), each within MLflow's limits."""
    params: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{_name(key)}"
        if isinstance(value, Mapping) and value:
            params |= flatten_params(value, name + ".")
            continue
        if isinstance(value, str):
            text = shown_uri(value) if "://" in value else value
        else:
            text = json.dumps(value, ensure_ascii=False, default=str)
        if len(text) > MAX_PARAM_VALUE:
            text = text[: MAX_PARAM_VALUE - 3] + "..."
        params[name[:MAX_KEY]] = text
    return params


def numbers(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a nested mapping (metrics.json, a history line) under dotted,
    sanitised names: `fine_tuned.accuracy`, `phase_seconds.training`. Flags (true/false),
    texts and lists (a confusion matrix) are not metrics."""
    found: dict[str, float] = {}
    for key, value in mapping.items():
        name = f"{prefix}{_name(key)}"
        if isinstance(value, Mapping):
            found |= numbers(value, name + ".")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found[name[:MAX_KEY]] = float(value)
    return found


def _name(key: Any) -> str:
    """One part of a parameter or metric name in the characters MLflow takes (letters,
    digits, _ - . space :); a slash would make a label a path, so it becomes _ too."""
    return re.sub(r"[^\w\-. :]", "_", str(key)) or "_"


def history_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """A history line's metrics: everything numeric but the step it is logged at."""
    return {k: v for k, v in numbers(record).items() if k != "step"}


# --- the trackers -----------------------------------------------------------------------


class Tracker:
    """The interface, and the `none` backend: every call records nothing. The training
    code calls the same methods whatever the backend."""

    backend = "none"
    run_id: str | None = None
    """MLflow's id of the run (None for the other backends)."""

    def start(self, params: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> None:
        """Open the run and record its parameters (the resolved recipe, flattened)."""

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """One evaluation's numbers (a history line) at optimizer step `step`."""

    def log_final(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """The final numbers (metrics.json's numeric leaves, dotted), at the last step."""

    def log_artifacts(self, files: Iterable[Path]) -> None:
        """Files of the finished run (metrics.json, report.html, ...); missing ones skipped."""

    def end(self, status: str = FINISHED) -> None:
        """Close the run as FINISHED, FAILED or KILLED; later calls do nothing."""

    def where(self, moved: tuple[Path, Path] | None = None) -> str | None:
        """One line saying where the run was recorded and how to open it (None: nowhere).
        `moved`: (staging folder, final folder) of a run folder swapped into place."""
        return None

    @contextmanager
    def recording(self, stopped: tuple[type[BaseException], ...] = ()) -> Iterator[Tracker]:
        """Ends the run however the block ends: FINISHED, KILLED for Ctrl-C or one of
        `stopped` (a pruned trial), else FAILED; the exception goes on."""
        try:
            yield self
        except BaseException as error:
            self.end(KILLED if isinstance(error, (KeyboardInterrupt, *stopped)) else FAILED)
            raise
        self.end(FINISHED)


NO_TRACKING = Tracker()


class _Guarded(Tracker):
    """A real backend: each call goes through `_guard`, so the first failure (a server
    that went away, a full disk) is one warning, after which nothing more is recorded."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = False
        self.ended = False
        self.broken: str | None = None

    def _guard(self, what: str, action: Any, *args: Any) -> None:
        if self.broken or self.ended or (what != "start" and not self.started):
            return
        try:
            action(*args)
        except Exception as error:  # tracking must never end a training run
            message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            self.broken = f"{type(error).__name__}: {message}"
            self.console.print(
                f"[yellow]Tracking ({self.backend}) failed to {what}: {escape(self.broken)}; "
                "the run goes on without it (its run folder is complete)",
                highlight=False,
            )

    def start(self, params: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> None:
        self._guard("start", self._start, flatten_params(params), dict(tags or {}))
        self.started = self.broken is None

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        self._guard("record an evaluation", self._log, history_metrics(metrics), step)

    def log_final(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self._guard("record the final metrics", self._final, numbers(metrics), step or 0)

    def log_artifacts(self, files: Iterable[Path]) -> None:
        present = [Path(f) for f in files if Path(f).is_file()]
        self._guard("record the artifacts", self._artifacts, present)

    def end(self, status: str = FINISHED) -> None:
        self._guard("end the run", self._end, status)
        self.ended = True

    def _start(self, params: dict[str, str], tags: dict[str, str]) -> None:
        raise NotImplementedError

    def _log(self, metrics: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def _final(self, metrics: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def _artifacts(self, files: list[Path]) -> None:
        raise NotImplementedError

    def _end(self, status: str) -> None:
        raise NotImplementedError


class MlflowTracker(_Guarded):
    """An MLflow run through `MlflowClient` (no global active run: a search's run stays
    open while its trials' runs are written, from any thread or process)."""

    backend = "mlflow"

    def __init__(
        self,
        tracking: Tracking,
        console: Console,
        name: str,
        resume_run_id: str | None = None,
    ) -> None:
        super().__init__(console)
        self.tracking = tracking
        self.name = name
        self.resume_run_id = resume_run_id
        self.client: Any = None
        self.experiment_id: str | None = None

    def _start(self, params: dict[str, str], tags: dict[str, str]) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient
        from mlflow.utils.mlflow_tags import (
            MLFLOW_PARENT_RUN_ID,
            MLFLOW_RUN_NAME,
            MLFLOW_SOURCE_NAME,
            MLFLOW_SOURCE_TYPE,
            MLFLOW_USER,
        )

        _quiet_mlflow(self.tracking.uri or "")
        self.client = MlflowClient(tracking_uri=self.tracking.uri)
        self.experiment_id = _experiment(self.client, self.tracking)
        if self.resume_run_id and self._reopen(self.resume_run_id):
            return  # its parameters were recorded when it started
        every = {
            MLFLOW_RUN_NAME: self.name,
            MLFLOW_SOURCE_NAME: "tunesmith",
            MLFLOW_SOURCE_TYPE: "LOCAL",
            MLFLOW_USER: _user(),
            **tags,
        }
        if self.tracking.parent_run_id:
            every[MLFLOW_PARENT_RUN_ID] = self.tracking.parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=self.name, tags=every)
        self.run_id = run.info.run_id
        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes 100 parameters a batch
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def _reopen(self, run_id: str) -> bool:
        """A resumed search's own run, RUNNING again; False when this store lacks it."""
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return False
        if run.info.experiment_id != self.experiment_id:
            return False
        self.run_id = run_id
        self.client.update_run(run_id, status="RUNNING")
        return True

    def _log(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, _finite(v), now, step) for k, v in metrics.items()]
        for start in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[start : start + 1000])

    def _final(self, metrics: dict[str, float], step: int) -> None:
        self._log(metrics, step)

    def _artifacts(self, files: list[Path]) -> None:
        for path in files:
            self.client.log_artifact(self.run_id, str(path))

    def _end(self, status: str) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)

    def where(self, moved: tuple[Path, Path] | None = None) -> str | None:
        if self.run_id is None or self.broken:
            return None
        uri = shown_uri(self.tracking.uri or "")
        if uri.startswith(("http://", "https://")):
            link = f"{uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"
            return f"MLflow: run {self.name} in experiment {self.tracking.experiment!r}: {link}"
        return (
            f"MLflow: run {self.name} ({self.run_id}) in experiment "
            f"{self.tracking.experiment!r} of {uri}; browse it with: mlflow ui "
            f"--backend-store-uri {uri}"
        )


def _experiment(client: Any, tracking: Tracking) -> str:
    """The experiment's id, made when missing (with its artifacts beside a local store)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(tracking.experiment)
    if found is None:
        try:
            return client.create_experiment(
                tracking.experiment, artifact_location=_artifact_root(tracking)
            )
        except MlflowException:  # another worker made it first
            found = client.get_experiment_by_name(tracking.experiment)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        raise ValueError(
            f"experiment {tracking.experiment!r} was deleted; restore it (`mlflow experiments "
            "restore`) or choose another tracking.experiment"
        )
    return found.experiment_id


def _artifact_root(tracking: Tracking) -> str | None:
    """A local SQLite store keeps its experiments' artifacts beside it, in mlartifacts/
    (MLflow's own default is a folder of the working directory, wherever that is); a
    server or another store decides for itself."""
    uri = tracking.uri or ""
    if not uri.startswith("sqlite:///"):
        return None
    folder = Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts"
    safe = re.sub(r"[^\w.-]", "_", tracking.experiment).lstrip(".") or "experiment"
    return (folder / safe).as_uri()


def _quiet_mlflow(uri: str) -> None:
    """MLflow's INFO lines (creating the database tables) hide ours; and a server that went
    away must not hold training for minutes of retries (MLflow's default: 7, backing off),
    unless the user chose the retries."""
    import logging

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if uri.startswith(("http://", "https://")):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _finite(value: float) -> float:
    """MLflow stores NaN; an infinite value is stored as the largest float of its sign."""
    if math.isinf(value):
        return math.copysign(1.7976931348623157e308, value)
    return value


class TensorBoardTracker(_Guarded):
    """Event files in one folder through `torch.utils.tensorboard.SummaryWriter`: scalars
    by step, the parameters as text and in the HParams dashboard (with the final metrics,
    so runs and trials compare side by side), the small text artifacts as text."""

    backend = "tensorboard"
    TEXT_ARTIFACT_LIMIT = 200_000
    """Larger artifacts (report.html) are named, not copied: they stay in the run folder."""

    def __init__(self, console: Console, log_dir: Path) -> None:
        super().__init__(console)
        self.log_dir = log_dir
        self.writer: Any = None
        self.params: dict[str, str] = {}

    def _start(self, params: dict[str, str], tags: dict[str, str]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.params = params
        self.writer.add_text("params", _code(f"{k}: {v}" for k, v in params.items()))
        self.writer.add_text("tags", _code(f"{k}: {v}" for k, v in tags.items()))
        self.writer.flush()

    def _log(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, global_step=step)
        self.writer.flush()

    def _final(self, metrics: dict[str, float], step: int) -> None:
        from torch.utils.tensorboard.summary import hparams

        shown = {k: v for k, v in metrics.items() if ".per_class." not in k}
        experiment, start, end = hparams(_hparam_values(self.params), shown)
        for summary in (experiment, start, end):
            self.writer.file_writer.add_summary(summary, step)
        self._log(metrics, step)

    def _artifacts(self, files: list[Path]) -> None:
        for path in files:
            size = path.stat().st_size
            if path.suffix in (".json", ".yaml", ".jsonl", ".csv") and (
                size <= self.TEXT_ARTIFACT_LIMIT
            ):
                text = path.read_text(encoding="utf-8")
                self.writer.add_text(f"artifacts/{path.name}", _code(text.splitlines()))
            else:
                self.writer.add_text(f"artifacts/{path.name}", f"{path.name}: {size:,} bytes")
        self.writer.flush()

    def _end(self, status: str) -> None:
        self.writer.add_text("status", status)
        self.writer.close()

    def where(self, moved: tuple[Path, Path] | None = None) -> str | None:
        if not self.started or self.broken:
            return None
        log_dir = self.log_dir
        if moved is not None and log_dir.is_relative_to(moved[0]):
            log_dir = moved[1] / log_dir.relative_to(moved[0])
        return f"TensorBoard: tensorboard --logdir {log_dir}"


def _code(lines: Iterable[str]) -> str:
    """Text shown as written in TensorBoard's markdown: every line indented as code."""
    return "\n".join(f"    {line}" for line in lines)


def _hparam_values(params: dict[str, str]) -> dict[str, Any]:
    """HParams takes numbers, flags and texts: a parameter that reads as one is one."""
    values: dict[str, Any] = {}
    for key, text in params.items():
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if value is None or isinstance(value, list | dict):
            value = text
        values[key] = value
    return values


class SearchBoard(Tracker):
    """A search under TensorBoard, which has no nested runs: its trials each write a
    folder; this says where they are."""

    backend = "tensorboard"

    def __init__(self, trials: Path) -> None:
        self.trials = trials

    def where(self, moved: tuple[Path, Path] | None = None) -> str | None:
        return f"TensorBoard (one run per trial): tensorboard --logdir {self.trials}"
