"""Helpers the task kinds share when they score or predict with a finished run: placing the
model, checking the labels, reading texts given on the command line, one row per prediction."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from tunesmith.data.tables import READERS, read_table
from tunesmith.errors import UserError
from tunesmith.progress import track
from tunesmith.train.device import resolve_device, resolve_precision
from tunesmith.trained_run import TrainedRun


def placed(run: TrainedRun) -> tuple[torch.device, torch.dtype | None]:
    """Move the run's model to its device; (device, autocast dtype) as the recipe says."""
    device = resolve_device(run.recipe.train.device)
    run.model.to(device)
    return device, resolve_precision(run.recipe.train.precision, device)


def check_same_labels(run: TrainedRun, label_names: list[str], what: str) -> None:
    if label_names != run.label_names:
        raise UserError(
            f"{run.recipe.data.train} no longer has the labels the run was trained on; "
            f"give the {what} to score with --data"
        )


def note_fallbacks(count: int, what: str) -> None:
    if count:
        Console(stderr=True).print(
            f"[yellow]{count} {what} hold nothing but stop words; they were kept normalised, "
            "with their stop words"
        )


def read_text_inputs(inputs: list[str], text_column: str) -> list[str]:
    """Each input is a file (one text per row or line) when such a file exists, else a text."""
    texts: list[str] = []
    for item in inputs:
        path = Path(item)
        if len(item) < 4096 and path.is_file():
            if path.suffix.lower() == ".txt":
                texts.extend(line for line in path.read_text().splitlines() if line.strip())
                continue
            if path.suffix.lower() not in READERS:
                raise UserError(
                    f"{path}: use .txt (one text per line), csv, jsonl, json or parquet"
                )
            frame = read_table(path, role="INPUT")
            if text_column not in frame.columns:
                raise UserError(
                    f"{path}: no column {text_column!r}; its columns are "
                    f"{', '.join(map(str, frame.columns))}. Pass --text-column NAME"
                )
            texts.extend(frame[text_column].fillna("").astype(str).tolist())
        else:
            texts.append(item)
    if not texts:
        raise UserError("predict: nothing to predict; give texts or files of texts")
    return texts


def label_rows(key: str, items: list[str], probabilities: np.ndarray, names: list[str]) -> list:
    """One prediction per item: the most likely label, its probability and every label's."""
    return [
        {
            key: item,
            "label": names[int(np.argmax(row))],
            "score": float(row.max()),
            "probabilities": {name: float(p) for name, p in zip(names, row, strict=True)},
        }
        for item, row in zip(items, probabilities, strict=True)
    ]


def encode_texts(
    tokenizer: Any, texts: Sequence[str], max_length: int
) -> tuple[list[list[int]], int]:
    """Token ids cut to max_length, and how many texts were cut (texts already
    preprocessed)."""
    if not texts:
        return [], 0
    ids = tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
    too_long = sum(len(row) > max_length for row in ids)
    if too_long:
        ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return ids, too_long


def padded_ids(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic padding to the longest row of this batch, not to max_length: (input_ids,
    attention_mask), each (B, T)."""
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return input_ids, mask


def load_sequence_classifier(folder: Path, model: str) -> tuple[torch.nn.Module, Path]:
    """A finished classifier run's model (base `model` + adapter/, or model/) and the folder
    its weights and tokenizer came from."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from tunesmith.models.resolve import resolve_model
    from tunesmith.run_folder import RunFolder

    adapter, full = folder / RunFolder.ADAPTER, folder / RunFolder.MODEL
    if not adapter.is_dir():
        return AutoModelForSequenceClassification.from_pretrained(full), full
    from peft import PeftModel

    config = AutoConfig.from_pretrained(adapter)
    # the head's shape follows this run's labels; its weights come from the adapter
    base = AutoModelForSequenceClassification.from_pretrained(
        resolve_model(model), config=config, ignore_mismatched_sizes=True
    )
    return PeftModel.from_pretrained(base, adapter), adapter


def content_digest(value: Any) -> str:
    """A SHA-256 of a JSON-serialisable value (rows of token ids, prompts): a short stand-in
    for it in a cache key."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(value, default=str).encode()).hexdigest()


ANSWER_SLACK = 8
"""Generated tokens allowed past the longest reference answer (see `answer_budget`)."""


def answer_budget(max_new_tokens: int, reference_lengths: Sequence[int]) -> int:
    """New tokens allowed when answers are scored against references: generation's
    max_new_tokens, but no more than the longest reference (plus ANSWER_SLACK). A longer
    answer cannot match it, and an untuned model that never stops would cost minutes."""
    return min(max_new_tokens, max(reference_lengths, default=1) + ANSWER_SLACK)


@torch.no_grad()  # not inference_mode: FSDP reuses buffers made here while training
def token_loss_metrics(task: Any, model: torch.nn.Module, split: str) -> dict:
    """Loss per scored token (Batch.items) and its perplexity over a split, for the kinds
    that write text (causal-lm, seq2seq); NaN for a split with nothing to score."""
    from tunesmith.train.batching import sorted_batches
    from tunesmith.train.device import autocast

    model.eval()
    total, count = 0.0, 0
    batches = sorted_batches(task.lengths(split), task.eval_batch_size)
    for indices in track(batches, f"Scoring the {split} split", size=len, unit="rows"):
        batch = task.batch(split, indices)
        with autocast(task.device, task.dtype):
            total += task.loss_sum(model, batch).item()
        count += batch.items
    if not count:
        return {"loss": float("nan"), "perplexity": float("nan")}
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}


def save_transformers(model: torch.nn.Module, run: TrainedRun, folder: Path) -> None:
    """A transformers model folder with the run's tokenizer (and chat template)."""
    model.save_pretrained(folder)
    run.tokenizer.save_pretrained(folder)
