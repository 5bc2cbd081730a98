"""Sequence to sequence as a `TrainTask`: the encoder reads the input, the decoder learns the
target by teacher forcing; loss and perplexity per target token, and generated answers
scored with ROUGE-L, exact match and token F1.

Every pair is tokenised once, up front. The target ends with the end-of-sequence token (the
model must learn to stop); the decoder reads the target shifted right behind the model's
start token, so `labels[j]` is what it must write after reading `decoder_input_ids[..j]`.
Padding is -100 in the labels and never scored; the loop divides the summed loss by the
scored tokens of a step (`Batch.items`), as for a causal LM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedTokenizerBase

from tunesmith.data.text_preprocess import TextPreprocessor
from tunesmith.evaluate.generation import generation_metrics
from tunesmith.methods.merged_lora import lora_merged
from tunesmith.progress import track
from tunesmith.recipe import GenerationConfig, Recipe
from tunesmith.tasks.common import answer_budget, content_digest, token_loss_metrics
from tunesmith.tasks.seq2seq import model as seq2seq
from tunesmith.tasks.seq2seq.data import SPLITS, Pair, PairSplit, PairSplits
from tunesmith.train.batching import sorted_batches
from tunesmith.train.device import autocast
from tunesmith.train.task import Batch

IGNORE = -100


@dataclass
class Encoded:
    source: list[int]
    """Encoder input ids (with the tokenizer's special tokens), at most max_length."""
    target: list[int]
    """Labels: the target's ids ending with end-of-sequence, at most max_length."""


@dataclass
class Truncation:
    """How many inputs and targets of a split were cut at preprocess.max_length."""

    sources: int = 0
    targets: int = 0


class Seq2SeqTask:
    def __init__(
        self,
        splits: PairSplits,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        decoder_start: int,
        device: torch.device,
        dtype: torch.dtype | None,
        *,
        eval_batch_size: int = 16,
        generation: GenerationConfig | None = None,
        preprocessor: TextPreprocessor | None = None,
    ) -> None:
        """`preprocessor` (preprocess.unicode; none by default) normalises inputs and targets
        alike, so references are scored in the form the model learnt to write."""
        self.preprocessor = preprocessor or TextPreprocessor(unicode="none")
        self.splits = _preprocessed(splits, self.preprocessor)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.decoder_start = decoder_start
        self.device = device
        self.dtype = dtype
        self.eval_batch_size = eval_batch_size
        self.generation = generation or GenerationConfig()
        self.pad_id = tokenizer.pad_token_id
        self.truncated: dict[str, Truncation] = {}
        self.rows: dict[str, list[Encoded]] = {}
        for name in SPLITS:
            split = self.splits.split(name)
            self.rows[name], self.truncated[name] = self._encode(split.sources, split.targets)

    @classmethod
    def from_recipe(
        cls,
        splits: PairSplits,
        tokenizer: PreTrainedTokenizerBase,
        model: nn.Module,
        recipe: Recipe,
        device: torch.device,
        dtype: torch.dtype | None,
    ) -> Seq2SeqTask:
        return cls(
            splits,
            tokenizer,
            recipe.preprocess.max_length,
            seq2seq.decoder_start_id(model, tokenizer),
            device,
            dtype,
            eval_batch_size=recipe.train.eval_batch_size or recipe.train.batch_size,
            generation=recipe.generation,
            # unicode only: lowercase and stop words are refused for generative kinds
            preprocessor=TextPreprocessor(unicode=recipe.preprocess.unicode),
        )

    # -- encoding -----------------------------------------------------------------------

    def encode_sources(self, texts: Sequence[str]) -> tuple[list[list[int]], int]:
        """Encoder ids of each text (preprocessed first), and how many were cut."""
        if not texts:
            return [], 0
        ids = self.tokenizer([self.preprocessor(t) for t in texts], verbose=False)["input_ids"]
        return self._limited(ids)

    def _encode(self, sources: list[str], targets: list[str]) -> tuple[list[Encoded], Truncation]:
        if not sources:
            return [], Truncation()
        source_ids, cut_sources = self._limited(self.tokenizer(sources, verbose=False)["input_ids"])
        target_ids = self.tokenizer(text_target=targets, verbose=False)["input_ids"]
        target_ids, cut_targets = self._limited(target_ids)
        rows = [Encoded(s, t) for s, t in zip(source_ids, target_ids, strict=True)]
        return rows, Truncation(cut_sources, cut_targets)

    def _limited(self, rows: list[list[int]]) -> tuple[list[list[int]], int]:
        """Each row ending with end-of-sequence (added where the tokenizer does not add it)
        and cut to max_length with the end-of-sequence kept; and how many were cut."""
        eos = self.tokenizer.eos_token_id
        out, cut = [], 0
        for ids in rows:
            if not ids or ids[-1] != eos:
                ids = [*ids, eos]
            if len(ids) > self.max_length:
                ids, cut = [*ids[: self.max_length - 1], eos], cut + 1
            out.append(ids)
        return out, cut

    # -- batches ------------------------------------------------------------------------

    def lengths(self, split: str) -> list[int]:
        return [len(row.source) + len(row.target) for row in self.rows[split]]

    def batch(self, split: str, indices: Sequence[int]) -> Batch:
        return self.collate([self.rows[split][i] for i in indices])

    def collate(self, rows: list[Encoded]) -> Batch:
        """Right-padded encoder inputs and decoder rows; the decoder needs no mask: it is
        causal, so no real position ever sees the padding after it."""
        source_width = max(len(row.source) for row in rows)
        target_width = max(len(row.target) for row in rows)
        input_ids = torch.full((len(rows), source_width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), source_width), dtype=torch.long)
        decoder_ids = torch.full((len(rows), target_width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), target_width), IGNORE, dtype=torch.long)
        for r, row in enumerate(rows):
            input_ids[r, : len(row.source)] = torch.tensor(row.source)
            mask[r, : len(row.source)] = 1
            labels[r, : len(row.target)] = torch.tensor(row.target)
            decoder_ids[r, : len(row.target)] = torch.tensor([self.decoder_start, *row.target[:-1]])
        inputs = {"input_ids": input_ids, "attention_mask": mask, "decoder_input_ids": decoder_ids}
        scored = int((labels != IGNORE).sum())
        return Batch(
            inputs={k: v.to(self.device) for k, v in inputs.items()},
            targets=labels.to(self.device),
            items=scored,
            tokens=int(mask.sum()) + scored,
            examples=len(rows),
        )

    def loss_sum(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Cross-entropy summed over the target tokens (the loop divides by their count)."""
        logits = seq2seq.forward(model, batch.inputs).logits  # (B, T, V)
        scored = batch.targets != IGNORE
        return F.cross_entropy(logits[scored].float(), batch.targets[scored], reduction="sum")

    # -- evaluation ---------------------------------------------------------------------

    def evaluate(self, model: nn.Module, split: str, detailed: bool = False) -> dict:
        """Loss and perplexity per target token; `detailed` adds the scores of generated
        answers (ROUGE-L, exact match, token F1)."""
        if detailed:
            return self.evaluate_answers(model, split)[0]
        return self._loss_metrics(model, split)

    def evaluate_answers(self, model: nn.Module, split: str) -> tuple[dict, list[str]]:
        """The detailed metrics and the answers to `generation_pairs(split)` they rest on."""
        out = self._loss_metrics(model, split)
        pairs = self.generation_pairs(split)
        answers = self.generate(model, [p.source for p in pairs], self.answer_budget(split))
        out.update(generation_metrics(answers, [p.target for p in pairs]))
        out["generated"] = len(answers)
        return out, answers

    def scoring_inputs(self, split: str) -> dict:
        """Everything besides the model that decides `evaluate_answers(model, split)`: the
        key of the base model's cached scores (evaluate/base_scores.py)."""
        pairs = self.generation_pairs(split)
        return {
            "kind": "seq2seq",
            "rows": content_digest([[row.source, row.target] for row in self.rows[split]]),
            "pairs": content_digest([[p.source, p.target] for p in pairs]),
            "generation": self.generation.model_dump(),
            "batch_size": self.eval_batch_size,
            "dtype": str(self.dtype),
            "device": self.device.type,
        }

    def _loss_metrics(self, model: nn.Module, split: str) -> dict:
        return token_loss_metrics(self, model, split)

    def generation_pairs(self, split: str) -> list[Pair]:
        """The pairs scored by generation: the first generation.max_examples of the split."""
        pairs = self.splits.split(split).pairs
        limit = self.generation.max_examples
        return pairs[:limit] if limit else pairs

    def answer_budget(self, split: str) -> int:
        """New tokens for answers scored against this split's references (`answer_budget`)."""
        count = len(self.generation_pairs(split))
        lengths = [len(row.target) for row in self.rows[split][:count]]
        return answer_budget(self.generation.max_new_tokens, lengths)

    @torch.no_grad()  # not inference_mode: FSDP reuses buffers made here while training
    def generate(
        self, model: nn.Module, sources: Sequence[str], max_new_tokens: int | None = None
    ) -> list[str]:
        """Answers to the input texts, in order: batched, greedy unless generation.do_sample."""
        model.eval()
        encoded, _ = self.encode_sources(sources)
        limit = max_new_tokens or self.generation.max_new_tokens
        settings = seq2seq.generation_settings(model, self.generation, limit, self.pad_id)
        answers = [""] * len(encoded)
        batches = sorted_batches([len(ids) for ids in encoded], self.generation.batch_size)
        with lora_merged(model):  # one product per layer while decoding
            for chunk in track(batches, "Generating answers", size=len, unit="answers"):
                width = max(len(encoded[i]) for i in chunk)
                input_ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for r, i in enumerate(chunk):
                    input_ids[r, : len(encoded[i])] = torch.tensor(encoded[i])
                    mask[r, : len(encoded[i])] = 1
                with autocast(self.device, self.dtype):
                    output = seq2seq.generate(
                        model, input_ids.to(self.device), mask.to(self.device), settings
                    )
                texts = self.tokenizer.batch_decode(output, skip_special_tokens=True)
                for i, text in zip(chunk, texts, strict=True):
                    answers[i] = text.strip()
        return answers

    @torch.no_grad()
    def features(self, model: nn.Module, texts: Sequence[str]) -> torch.Tensor:
        """(N, 2 D) mean-pooled encoder states and decoder states of each text, the decoder
        reading the text itself: a fingerprint of what the whole model does with general
        text (the forgetting measure compares it before and after training)."""
        model.eval()
        encoded, _ = self.encode_sources(texts)
        rows = [Encoded(ids, ids) for ids in encoded]
        pooled: dict[int, torch.Tensor] = {}
        batches = sorted_batches([len(r.source) for r in rows], self.eval_batch_size)
        for chunk in track(batches, "Running the model over texts", size=len, unit="texts"):
            batch = self.collate([rows[i] for i in chunk])
            with autocast(self.device, self.dtype):
                result = seq2seq.forward(model, batch.inputs, output_hidden_states=True)
            source_mask = batch.inputs["attention_mask"]
            encoder = result.encoder_last_hidden_state[:, -source_mask.shape[1] :]  # no prompts
            decoder = result.decoder_hidden_states[-1]
            both = torch.cat(
                [_mean(encoder, source_mask), _mean(decoder, batch.targets != IGNORE)], dim=1
            )
            pooled.update(zip(chunk, both.float().cpu(), strict=True))
        return torch.stack([pooled[i] for i in range(len(rows))])


def _mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the vectors where `mask` is set: (B, T, D), (B, T) -> (B, D)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


def _preprocessed(splits: PairSplits, preprocessor: TextPreprocessor) -> PairSplits:
    """The splits with inputs and targets preprocessed (new pairs; the given ones kept)."""
    if preprocessor.is_identity:
        return splits

    def prepared(split: PairSplit) -> PairSplit:
        pairs = [Pair(p.row, preprocessor(p.source), preprocessor(p.target)) for p in split.pairs]
        return PairSplit(pairs, split.file)

    parts = {name: prepared(splits.split(name)) for name in SPLITS}
    return PairSplits(**parts, format=splits.format)
