"""Dynamic batching: concurrent requests share one model call.

Requests put jobs on a bounded queue (`submit` refuses with `QueueFull` rather than let
waits grow without end: the server answers 429). One model thread takes the oldest job,
waits up to `wait_s` for company, and runs every waiting job that can share its call (the
same `key`: a generation's sampler; classification: one key) up to `max_batch` rows. A
job cancelled while it waited (its client left, its time ran out) is dropped unrun.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Job = TypeVar("Job")


class QueueFull(Exception):
    """The queue holds `limit` rows already."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the server's queue is full ({limit} rows waiting)")
        self.limit = limit


@dataclass(frozen=True)
class BatchOptions:
    max_batch: int = 8
    """Most rows (answers, or inputs to classify) in one model call."""
    max_queue: int = 64
    """Most rows waiting; more are refused with 429."""
    wait_s: float = 0.01
    """How long the oldest job waits for others to join its batch."""


@dataclass
class Entry(Generic[Job]):
    job: Job
    rows: int
    key: Hashable
    cancelled: Callable[[], bool]
    failed: Callable[[BaseException], None]


class Batcher(Generic[Job]):
    """Runs `run(jobs)` on its own thread for batches of compatible queued jobs."""

    def __init__(
        self,
        run: Callable[[list[Job]], Any],
        options: BatchOptions,
        on_batch: Callable[[int], None] = lambda rows: None,
    ) -> None:
        self._run = run
        self.options = options
        self._on_batch = on_batch
        self._queue: deque[Entry[Job]] = deque()
        self._rows = 0
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="tunesmith-model", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Rows waiting (not yet in a model call)."""
        return self._rows

    def submit(self, entries: Sequence[Entry[Job]]) -> None:
        """Queue every entry, or none of them (QueueFull)."""
        rows = sum(e.rows for e in entries)
        with self._ready:
            if self._rows + rows > self.options.max_queue:
                raise QueueFull(self.options.max_queue)
            self._queue.extend(entries)
            self._rows += rows
            self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if not batch:  # every waiting job was cancelled
                continue
            self._on_batch(sum(e.rows for e in batch))
            try:
                self._run([e.job for e in batch])
            except BaseException as error:  # a bug or an out-of-memory: every job hears it
                for entry in batch:
                    entry.failed(error)

    def _next_batch(self) -> list[Entry[Job]] | None:
        with self._ready:
            while not self._queue and not self._closed:
                self._ready.wait()
            if self._closed:
                return None
            deadline = time.monotonic() + self.options.wait_s
            while self._rows < self.options.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(left)
            return self._take()

    def _take(self) -> list[Entry[Job]]:
        """The oldest live job and the live jobs after it with its key, up to max_batch rows."""
        batch: list[Entry[Job]] = []
        kept: deque[Entry[Job]] = deque()
        rows = 0
        while self._queue:
            entry = self._queue.popleft()
            if entry.cancelled():
                self._rows -= entry.rows
                continue
            fits = rows + entry.rows <= self.options.max_batch or not batch
            if fits and (not batch or entry.key == batch[0].key):
                batch.append(entry)
                rows += entry.rows
                self._rows -= entry.rows
            else:
                kept.append(entry)
        self._queue = kept
        return batch
