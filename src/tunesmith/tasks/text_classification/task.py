"""Text classification as a `TrainTask`: preprocessed and tokenised once, padded per batch,
metrics streamed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from tunesmith.data.text import SPLITS, TextSplits
from tunesmith.data.text_preprocess import TextPreprocessor
from tunesmith.models.structure import encoder_of
from tunesmith.models.text import mean_pooled
from tunesmith.progress import track
from tunesmith.tasks.classification import ClassifierTask
from tunesmith.tasks.common import encode_texts, padded_ids
from tunesmith.train.batching import sorted_batches
from tunesmith.train.device import autocast
from tunesmith.train.task import Batch


class TextClassificationTask(ClassifierTask):
    def __init__(
        self,
        splits: TextSplits,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        device: torch.device,
        dtype: torch.dtype | None,
        eval_batch_size: int = 64,
        label_smoothing: float = 0.0,
        preprocessor: TextPreprocessor | None = None,
    ) -> None:
        """`preprocessor` (the recipe's text preprocessing, none by default) applies to every
        text the model sees: the splits here, and the texts given to `predict_proba`."""
        self.splits = splits
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.device = device
        self.dtype = dtype
        self.eval_batch_size = eval_batch_size
        self.label_smoothing = label_smoothing
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.preprocessor = preprocessor or TextPreprocessor(unicode="none")
        self.texts: dict[str, list[str]] = {}
        """Each split's texts as the model sees them (preprocessed); the baseline reads them."""
        self.fallbacks: dict[str, int] = {}
        """Texts per split (and in the last `predict_proba` call, "predict") that stop-word
        removal would have emptied, kept normalised instead."""
        self.truncated: dict[str, int] = {}
        self.ids: dict[str, list[list[int]]] = {}
        for name in SPLITS:
            self.texts[name], self.fallbacks[name] = self.preprocessor.apply_counted(
                splits.split(name).texts, progress=f"Preprocessing the {name} texts"
            )
            self.ids[name], self.truncated[name] = self.encode(self.texts[name])

    def encode(self, texts: Sequence[str]) -> tuple[list[list[int]], int]:
        """Token ids cut to max_length, and how many texts were cut."""
        return encode_texts(self.tokenizer, texts, self.max_length)

    def lengths(self, split: str) -> list[int]:
        return [len(row) for row in self.ids[split]]

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

    @torch.inference_mode()
    def predict_proba(self, model: nn.Module, texts: Sequence[str]) -> np.ndarray:
        """(N, num_labels) class probabilities of raw `texts` (preprocessed here as in
        training), in their order."""
        model.eval()
        prepared, self.fallbacks["predict"] = self.preprocessor.apply_counted(texts)
        ids, _ = self.encode(prepared)
        return self._map_batches(
            ids, lambda batch: torch.softmax(model(**batch.inputs).logits.float(), -1)
        )

    @torch.inference_mode()
    def embed(
        self, model: nn.Module, split: str, indices: Sequence[int] | None = None
    ) -> np.ndarray:
        """Mean-pooled last hidden states of the encoder (the frozen-feature `base`)."""
        encoder = encoder_of(model).eval()
        rows = range(len(self.ids[split])) if indices is None else indices
        return self._map_batches(
            [self.ids[split][i] for i in rows],
            lambda batch: mean_pooled(
                encoder(**batch.inputs).last_hidden_state.float(), batch.inputs["attention_mask"]
            ),
        )

    def _map_batches(
        self, ids: list[list[int]], forward: Callable[[Batch], torch.Tensor]
    ) -> np.ndarray:
        """Run `forward` over length-sorted batches of `ids`; rows come back in input order."""
        out: np.ndarray | None = None
        batches = sorted_batches([len(row) for row in ids], self.eval_batch_size)
        for chunk in track(batches, "Running the model over texts", size=len, unit="texts"):
            with autocast(self.device, self.dtype):
                result = forward(self.pad([ids[i] for i in chunk])).float().cpu().numpy()
            if out is None:
                out = np.zeros((len(ids), *result.shape[1:]), dtype=np.float32)
            out[chunk] = result
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)
