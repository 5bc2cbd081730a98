"""What `tunesmith serve` asks of a task kind: a model that answers requests.

A kind's `serving_model(run)` returns a `GenerativeModel` (it writes text: causal-lm,
seq2seq) or a `LabelModel` (it classifies: text, multi-label, images). The server (serve/)
speaks HTTP, validates, queues and batches; the kind only turns inputs into outputs, so
the server never names a task kind.

Generation streams: each request's choice is a `GenerationJob` whose `sink` receives the
new text as it is decoded. `RowWatcher` does that for any transformers `generate` call: it
is a stopping criterion, called after every decoding step with the whole batch, that
decodes each row's new tokens, hands the new text to its sink, and ends the row at its own
token limit, stop string or cancellation while the other rows of the batch go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from transformers import StoppingCriteria

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Sampling:
    """How one choice is decoded. temperature 0 is greedy decoding."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def batch_key(self) -> tuple[float, float]:
        """Jobs with the same key can share one `generate` call (limits and stop strings are
        per row; the sampler is per call)."""
        return (0.0, 1.0) if self.greedy else (self.temperature, self.top_p)

    def generate_options(self) -> dict[str, Any]:
        if self.greedy:
            return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}


class TextSink(Protocol):
    """Where one choice's text goes while it is written (called from the model's thread)."""

    def cancelled(self) -> bool:
        """The client left or its time ran out: stop decoding this row."""
        ...

    def put(self, text: str) -> None:
        """New text, appended to what came before."""
        ...

    def finish(self, reason: FinishReason, tokens: int) -> None:
        """The choice is complete: `tokens` generated, ended by a stop or the limit."""
        ...


@dataclass
class GenerationJob:
    prompt: list[int]
    """The prompt's token ids, as the model reads them (chat template applied)."""
    sampling: Sampling
    sink: TextSink


class GenerativeModel(Protocol):
    """A run that writes text."""

    name: str
    default_max_tokens: int
    """An answer's limit when a request sets none (the run's generation.max_new_tokens)."""

    def chat_prompt(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids of a conversation, the assistant's turn opened (ValueError: a message
        the model cannot take, or a prompt too long for it, with the reason)."""
        ...

    def text_prompt(self, text: str) -> list[int]:
        """Token ids of a plain prompt (/v1/completions; ValueError as for chat_prompt)."""
        ...

    def room(self, prompt_tokens: int) -> int:
        """Most tokens an answer to a prompt of this length may have (the context left)."""
        ...

    def generate(self, jobs: list[GenerationJob]) -> None:
        """Decode every job (all with the same `Sampling.batch_key`) in one batch."""
        ...


class LabelModel(Protocol):
    """A run that classifies."""

    name: str
    inputs: Literal["text", "image"]
    labels: list[str]

    def classify(self, items: Sequence[Any]) -> list[dict[str, Any]]:
        """One prediction per text (str) or image (a binary file object named for messages):
        label (or labels), score and every label's probability. ValueError for an input the
        model cannot read, naming it."""
        ...


@dataclass
class ClassifierServing:
    """A `LabelModel` from a kind's predict function (its preprocessing applied inside)."""

    name: str
    inputs: Literal["text", "image"]
    labels: list[str]
    predict: Callable[[Sequence[Any]], list[dict[str, Any]]]

    def classify(self, items: Sequence[Any]) -> list[dict[str, Any]]:
        return self.predict(items)


@dataclass
class _Row:
    job: GenerationJob
    sent: str = ""
    done: bool = False
    tokens: int = 0


@dataclass
class RowWatcher(StoppingCriteria):
    """Streams and stops each row of one `generate` call (see the module's doc).

    `width` is where the new tokens start in the ids generate passes (the padded prompt
    width); `end_ids` are the tokens that end a turn."""

    tokenizer: Any
    jobs: list[GenerationJob]
    width: int
    end_ids: Sequence[int]
    rows: list[_Row] = field(init=False)

    def __post_init__(self) -> None:
        self.rows = [_Row(job) for job in self.jobs]
        self._ends = set(self.end_ids)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        new = input_ids[:, self.width :].tolist()
        for row, ids in zip(self.rows, new, strict=True):
            if not row.done:
                self._advance(row, ids)
        return torch.tensor([row.done for row in self.rows], device=input_ids.device)

    def flush(self) -> None:
        """After generate returned: rows it ended itself (its own length limit) finish."""
        for row in self.rows:
            if not row.done:
                self._finish(row, "length")

    def _advance(self, row: _Row, ids: list[int]) -> None:
        if row.job.sink.cancelled():
            row.done = True
            return
        ended = bool(ids) and ids[-1] in self._ends
        kept = ids[:-1] if ended else ids
        row.tokens = len(ids)
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        stops = row.job.sampling.stop
        cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
        if cut >= 0:
            self._send(row, text[:cut])
            self._finish(row, "stop")
        elif ended:
            self._send(row, text)
            self._finish(row, "stop")
        elif len(ids) >= row.job.sampling.max_tokens:
            self._send(row, text)
            self._finish(row, "length")
        else:
            self._send(row, _settled(text, stops))

    def _send(self, row: _Row, text: str) -> None:
        """Hand on what is new since the last call (the answer's outer spaces dropped)."""
        text = text.strip()  # as `generate` strips answers; inner spaces wait for more text
        if len(text) > len(row.sent) and text.startswith(row.sent):
            row.job.sink.put(text[len(row.sent) :])
            row.sent = text

    def _finish(self, row: _Row, reason: FinishReason) -> None:
        row.done = True
        row.job.sink.finish(reason, row.tokens)


def _settled(text: str, stops: Sequence[str]) -> str:
    """The part of `text` that later tokens cannot change: without a half-decoded character
    at the end, or an end that could be the start of a stop string."""
    text = text.rstrip("\ufffd")
    hold = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                hold = max(hold, size)
                break
    return text[: len(text) - hold] if hold else text
