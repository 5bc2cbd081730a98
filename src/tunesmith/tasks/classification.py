"""What every classification task shares: cross-entropy with label smoothing, and metrics
streamed batch by batch. Subclasses say how a batch is made (`lengths`, `batch`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.evaluate.metrics import classification_metrics
from tunesmith.evaluate.slices import ExampleResults
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
        losses, predictions, order = [], [], []
        batches = sorted_batches(self.lengths(split), self.eval_batch_size)
        for indices in track(batches, f"Scoring the {split} split", size=len, unit="rows"):
            batch = self.batch(split, indices)
            with autocast(self.device, self.dtype):
                logits = model(**batch.inputs).logits.float()
            losses.extend(F.cross_entropy(logits, batch.targets, reduction="none").tolist())
            predictions.extend(logits.argmax(-1).tolist())
            order.extend(indices)
        y_pred = np.empty(len(labels), dtype=int)
        y_pred[order] = predictions
        example_loss = np.empty(len(labels), dtype=float)
        example_loss[order] = losses
        self.outcomes = {**getattr(self, "outcomes", {}), split: (y_pred, example_loss)}
        loss = float(example_loss.sum()) / len(labels)
        return classification_metrics(labels, y_pred, label_names, loss, detailed)

    def example_results(
        self, split: str, source: str, rows: Sequence[int]
    ) -> ExampleResults | None:
        """The last evaluation of `split`, example by example (for metrics per slice)."""
        outcome = getattr(self, "outcomes", {}).get(split)
        if outcome is None:
            return None
        y_pred, example_loss = outcome
        labels, label_names = self.split_labels(split)
        y_true = np.asarray(labels)

        def metrics_of(indices: np.ndarray) -> dict:
            return classification_metrics(
                y_true[indices], y_pred[indices], label_names, float(example_loss[indices].mean())
            )

        correct = (y_true == y_pred).astype(float)
        return ExampleResults(source, rows, metrics_of, {"accuracy": correct, "loss": example_loss})
