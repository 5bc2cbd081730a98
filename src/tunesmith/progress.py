"""Progress bars for every phase that can take more than a couple of seconds.

`track` shows a bar over a loop (scoring a split, generating answers, encoding texts for a
baseline). While a bar is already on screen (the training bar, during a validation pass)
it adds a line under that bar instead of opening a second live display, which rich
refuses. Bars vanish when their loop ends: the lines a command prints stay readable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

TABLE_WIDTH = 80
"""The terminal width every table tunesmith prints fits (estimate, the train summary)."""

Item = TypeVar("Item")

_SHOWN: list[Progress] = []
_SILENT: list[bool] = []


def silence() -> None:
    """No bars from here on in this process: a server answers requests for hours, and a bar
    per batch would flood its log (it reports per request instead)."""
    _SILENT.append(True)


"""The bars on screen now, innermost last."""


class _Count(ProgressColumn):
    """ "12/40 rows"; nothing for a phase (no total)."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return Text(f"{task.completed:.0f}/{task.total:.0f} {task.fields.get('unit', '')}")


class _Time(ProgressColumn):
    """Time left of a counted loop; time so far of a phase."""

    def __init__(self) -> None:
        super().__init__()
        self._left, self._spent = TimeRemainingColumn(), TimeElapsedColumn()

    def render(self, task: Task) -> Text:
        return (self._spent if task.total is None else self._left).render(task)


def columns() -> tuple:
    """Title, bar, done/total with its unit, time (left, or spent in a phase), and a free
    `info` field."""
    return (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        _Count(),
        _Time(),
        TextColumn("{task.fields[info]}"),
    )


@contextmanager
def phase(description: str, console: Console | None = None) -> Iterator[None]:
    """A line with a pulsing bar and the time spent while a phase of a command runs (the
    data check, scoring the base model); the loops inside it add their bars under it."""
    if _SILENT:
        yield
        return
    if _SHOWN:
        task = _SHOWN[-1].add_task(description, total=None, unit="", info="")
        try:
            yield
        finally:
            _SHOWN[-1].remove_task(task)
        return
    progress = Progress(SpinnerColumn(), *columns(), console=console, transient=True)
    with shown(progress):
        progress.add_task(description, total=None, unit="", info="")
        yield


@contextmanager
def shown(progress: Progress) -> Iterator[Progress]:
    """Start `progress` and let `track` add its lines under it until the block ends."""
    with progress:
        _SHOWN.append(progress)
        try:
            yield progress
        finally:
            _SHOWN.remove(progress)


def track(
    items: Sequence[Item],
    description: str,
    size: Callable[[Item], int] = lambda item: 1,
    unit: str = "",
    console: Console | None = None,
) -> Iterator[Item]:
    """Yield `items` while a bar titled `description` counts `size(item)` of `unit` each
    (e.g. the rows of each batch)."""
    if _SILENT:
        yield from items
        return
    total = sum(size(item) for item in items)
    if _SHOWN:
        yield from _counted(_SHOWN[-1], items, description, size, unit, total)
        return
    progress = Progress(*columns(), console=console, transient=True)
    with shown(progress):
        yield from _counted(progress, items, description, size, unit, total)


def _counted(
    progress: Progress,
    items: Iterable[Item],
    description: str,
    size: Callable[[Item], int],
    unit: str,
    total: int,
) -> Iterator[Item]:
    task = progress.add_task(description, total=total, unit=unit, info="")
    try:
        for item in items:
            yield item
            progress.advance(task, size(item))
    finally:
        progress.remove_task(task)


def short_model_name(model: str) -> str:
    """A model as a terminal table names it: a local folder by its last part
    ('/tmp/pytest-1/tiny-bert0' -> 'tiny-bert0'); a hub id ('org/name') or a builtin
    name as it is."""
    text = str(model)
    local = text.startswith(("/", ".", "~")) or "\\" in text or text.count("/") > 1
    return Path(text.rstrip("/\\")).name or text if local else text
