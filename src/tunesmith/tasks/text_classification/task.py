"""Text classification as a `TrainTask`: preprocessed and tokenised once, padded per batch,
metrics streamed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from tunesmith.data.text import TextSplits
from tunesmith.models.structure import encoder_of
from tunesmith.models.text import mean_pooled
from tunesmith.tasks.classification import ClassifierTask
from tunesmith.tasks.common import TokenisedTextTask, padded_ids
from tunesmith.train.task import Batch


class TextClassificationTask(TokenisedTextTask, ClassifierTask):
    """One label per text: cross-entropy and streamed metrics from `ClassifierTask`, the
    tokenised texts from `TokenisedTextTask`."""

    splits: TextSplits

    def batch(self, split: str, indices: Sequence[int]) -> Batch:
        labels = self.splits.split(split).labels
        return self.pad([self.ids[split][i] for i in indices], [labels[i] for i in indices])

    def pad(self, rows: list[list[int]], labels: Sequence[int] | None = None) -> Batch:
        """Dynamic padding: to the longest row of this batch, not to max_length."""
        input_ids, mask = padded_ids(rows, self.pad_id)
        targets = torch.tensor(labels if labels is not None else [-1] * len(rows))
        return Batch(
            inputs={"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)},
            targets=targets.to(self.device),
            items=len(rows),
            tokens=int(mask.sum()),
        )

    def split_labels(self, split: str) -> tuple[Sequence[int], list[str]]:
        return self.splits.split(split).labels, self.splits.label_names

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities: one softmax over the labels."""
        return torch.softmax(logits, -1)

    @torch.inference_mode()
    def embed(
        self, model: nn.Module, split: str, indices: Sequence[int] | None = None
    ) -> np.ndarray:
        """Mean-pooled last hidden states of the encoder (the frozen-feature `base`)."""
        encoder = encoder_of(model).eval()
        rows = range(len(self.ids[split])) if indices is None else indices
        return self._map_batches(
            [self.ids[split][i] for i in rows],
            lambda batch, _: mean_pooled(
                encoder(**batch.inputs).last_hidden_state.float(), batch.inputs["attention_mask"]
            ),
        )
