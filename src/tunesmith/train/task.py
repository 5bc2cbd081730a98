"""What the training loop needs from a task family (text classification, causal LM, vision)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn


@dataclass
class Batch:
    inputs: dict[str, torch.Tensor]
    """Keyword arguments of the model's forward, on the training device."""
    targets: torch.Tensor
    items: int
    """Examples in the batch: the loss is normalised by the items of an optimizer step."""
    tokens: int
    """Non-padding tokens (equal to items for images), for throughput."""
    examples: int | None = None
    """Examples in the batch when `items` counts something else (a causal LM normalises by
    scored tokens); None: same as items."""

    @property
    def samples(self) -> int:
        return self.items if self.examples is None else self.examples


class TrainTask(Protocol):
    eval_batch_size: int
    """Rows per batch when scoring a split (the estimate prices evaluations with it)."""

    def lengths(self, split: str) -> Sequence[int]:
        """Cost of each example (tokens), for length-grouped batching."""
        ...

    def batch(self, split: str, indices: Sequence[int]) -> Batch: ...

    def loss_sum(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Loss summed (not averaged) over the batch's items."""
        ...

    def evaluate(self, model: nn.Module, split: str, detailed: bool = False) -> dict:
        """Metrics on a split, streamed batch by batch (no logits kept)."""
        ...
