"""What every classification task shares: cross-entropy with label smoothing, and metrics
streamed batch by batch. Subclasses say how a batch is made (`lengths`, `batch`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.evaluate.metrics import classification_metrics
from tunesmith.progress import track
from tunesmith.train.batching import sorted_batches
from tunesmith.train.device import autocast
from tunesmith.train.task import Batch


class ClassifierTask:
    device: torch.device
    dtype: torch.dtype | None
    eval_batch_size: int
    label_smoothing: float

    def lengths(self, split: str) -> Sequence[int]:
        raise NotImplementedError

    def batch(self, split: str, indices: Sequence[int]) -> Batch:
        raise NotImplementedError

    def split_labels(self, split: str) -> tuple[Sequence[int], list[str]]:
        """(label id of each example, label names) of a split."""
        raise NotImplementedError

    def loss_sum(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(**batch.inputs).logits  # (B, num_labels)
        return F.cross_entropy(
            logits.float(), batch.targets, reduction="sum", label_smoothing=self.label_smoothing
        )

    @torch.no_grad()  # not inference_mode: FSDP reuses buffers made here while training
    def evaluate(self, model: nn.Module, split: str, detailed: bool = False) -> dict:
        model.eval()
        labels, label_names = self.split_labels(split)
        loss_sum, predictions, order = 0.0, [], []
        batches = sorted_batches(self.lengths(split), self.eval_batch_size)
        for indices in track(batches, f"Scoring the {split} split", size=len, unit="rows"):
            batch = self.batch(split, indices)
            with autocast(self.device, self.dtype):
                logits = model(**batch.inputs).logits.float()
            loss_sum += F.cross_entropy(logits, batch.targets, reduction="sum").item()
            predictions.extend(logits.argmax(-1).tolist())
            order.extend(indices)
        y_pred = np.empty(len(labels), dtype=int)
        y_pred[order] = predictions
        return classification_metrics(labels, y_pred, label_names, loss_sum / len(labels), detailed)
