"""Multi-label classification as a `TrainTask`: one sigmoid per label, binary cross-entropy,
texts preprocessed and tokenised once, padded per batch.

The loss of a row is the mean of its labels' binary cross-entropies (as transformers'
`problem_type="multi_label_classification"` computes it), summed over rows as the loop
expects: the loop divides by the rows of an optimizer step, so a step's loss is the mean
over rows and labels whatever the batch size or gradient accumulation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.evaluate.slices import ExampleResults
from tunesmith.models.structure import encoder_of
from tunesmith.models.text import mean_pooled
from tunesmith.tasks.common import TokenisedTextTask, padded_ids
from tunesmith.tasks.multi_label_classification.data import MultiLabelSplits
from tunesmith.tasks.multi_label_classification.metrics import multi_label_metrics
from tunesmith.tasks.multi_label_classification.thresholds import Thresholds, tune
from tunesmith.train.task import Batch


class MultiLabelTask(TokenisedTextTask):
    splits: MultiLabelSplits

    def __init__(
        self,
        splits: MultiLabelSplits,
        *args: Any,
        thresholds: Thresholds | None = None,
        **options: Any,
    ) -> None:
        """The arguments of `TokenisedTextTask`, and `thresholds`: fixed ones (a finished
        run's); None tunes them on the validation split at every evaluation, for the weights
        being evaluated."""
        self.label_names = splits.label_names
        self.thresholds = thresholds
        super().__init__(splits, *args, **options)

    # --- batches -----------------------------------------------------------------------------

    def batch(self, split: str, indices: Sequence[int]) -> Batch:
        targets = self.splits.split(split).targets[list(indices)]
        return self.pad([self.ids[split][i] for i in indices], targets)

    def pad(self, rows: list[list[int]], targets: np.ndarray | None = None) -> Batch:
        """Dynamic padding to the longest row of this batch; targets (B, num_labels)."""
        input_ids, mask = padded_ids(rows, self.pad_id)
        if targets is None:
            targets = np.zeros((len(rows), len(self.label_names)), dtype=np.float32)
        return Batch(
            inputs={"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)},
            targets=torch.as_tensor(targets, dtype=torch.float32).to(self.device),
            items=len(rows),
            tokens=int(mask.sum()),
        )

    # --- loss and metrics --------------------------------------------------------------------

    def loss_sum(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(**batch.inputs).logits.float()  # (B, num_labels)
        targets = batch.targets
        if self.label_smoothing:  # toward 0.5: a 1 becomes 1 - eps/2, a 0 becomes eps/2
            targets = targets * (1 - self.label_smoothing) + self.label_smoothing / 2
        return _row_losses(logits, targets).sum()

    @torch.no_grad()  # not inference_mode: FSDP reuses buffers made here while training
    def evaluate(self, model: nn.Module, split: str, detailed: bool = False) -> dict:
        """Metrics at the run's thresholds: fixed ones, or tuned on validation for these very
        weights (so validation scores are at the thresholds that will be kept)."""
        probabilities, loss = self.scores(model, split)
        if self.thresholds is not None:
            thresholds = self.thresholds
        elif split == "validation":
            thresholds = self._tune_on(probabilities)
        else:
            thresholds = self.tune(model)
        return self._metrics(split, probabilities, loss, thresholds, detailed)

    @torch.no_grad()
    def evaluate_at(
        self, model: nn.Module, split: str, thresholds: Thresholds, detailed: bool = False
    ) -> dict:
        """Metrics at the given thresholds."""
        probabilities, loss = self.scores(model, split)
        return self._metrics(split, probabilities, loss, thresholds, detailed)

    def _metrics(
        self,
        split: str,
        probabilities: np.ndarray,
        loss: float,
        thresholds: Thresholds,
        detailed: bool,
    ) -> dict:
        targets = self.splits.split(split).targets
        predicted = thresholds.apply(probabilities, self.label_names)
        self.outcomes = {**getattr(self, "outcomes", {}), split: predicted}
        metrics = multi_label_metrics(targets, predicted, self.label_names, loss, detailed)
        if detailed:
            metrics["thresholds"] = thresholds.to_dict(self.label_names)
        return metrics

    def example_results(self, split: str) -> ExampleResults | None:
        """The last evaluation of `split`, example by example (for metrics per slice; the
        loss is the split's only: it is not kept per row)."""
        predicted = getattr(self, "outcomes", {}).get(split)
        if predicted is None:
            return None
        examples = self.splits.split(split)
        targets = np.asarray(examples.targets)

        def metrics_of(indices: np.ndarray) -> dict:
            return multi_label_metrics(targets[indices], predicted[indices], self.label_names)

        exact = (targets == predicted).all(axis=1).astype(float)
        return ExampleResults(
            examples.source, examples.rows, metrics_of, {"subset_accuracy": exact}
        )

    def tune(self, model: nn.Module) -> Thresholds:
        """Thresholds tuned on the validation split for `model` as it is now."""
        return self._tune_on(self.scores(model, "validation")[0])

    def _tune_on(self, validation_probabilities: np.ndarray) -> Thresholds:
        targets = self.splits.validation.targets
        return tune(validation_probabilities, targets, self.label_names)

    @torch.no_grad()
    def scores(self, model: nn.Module, split: str) -> tuple[np.ndarray, float]:
        """((N, num_labels) probabilities in row order, mean loss per row) of a split."""
        model.eval()
        targets = self.splits.split(split).targets
        total = 0.0

        def forward(batch: Batch, indices: list[int]) -> torch.Tensor:
            nonlocal total
            logits = model(**batch.inputs).logits.float()
            truth = torch.as_tensor(targets[indices], device=logits.device)
            total += _row_losses(logits, truth).sum().item()
            return torch.sigmoid(logits)

        probabilities = self._map_batches(self.ids[split], forward)
        return probabilities, total / max(len(targets), 1)

    # --- inference and features ----------------------------------------------------------

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Each label's own probability: one sigmoid per label."""
        return torch.sigmoid(logits)

    @torch.no_grad()
    def embed(
        self, model: nn.Module, split: str, indices: Sequence[int] | None = None
    ) -> np.ndarray:
        """Mean-pooled last hidden states of the encoder (the frozen-feature `base`)."""
        rows = range(len(self.ids[split])) if indices is None else indices
        return self.embed_ids(model, [self.ids[split][i] for i in rows])

    @torch.no_grad()  # FSDP: see evaluate
    def embed_ids(self, model: nn.Module, ids: list[list[int]]) -> np.ndarray:
        encoder = encoder_of(model).eval()
        return self._map_batches(
            ids,
            lambda batch, _: mean_pooled(
                encoder(**batch.inputs).last_hidden_state.float(), batch.inputs["attention_mask"]
            ),
        )

    def _no_rows(self) -> np.ndarray:
        return np.zeros((0, len(self.label_names)), dtype=np.float32)


def _row_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B,) each row's binary cross-entropy, averaged over its labels."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(-1)
