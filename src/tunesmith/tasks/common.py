"""Helpers the task kinds share when they score or predict with a finished run: placing the
model, checking the labels, reading texts given on the command line, one row per prediction;
and `TokenisedTextTask`, the preprocessed and tokenised texts the text classifier kinds
(single- and multi-label) train on."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from rich.console import Console

from tunesmith.data.tables import READERS, read_table
from tunesmith.data.text import SPLITS
from tunesmith.data.text_preprocess import TextPreprocessor
from tunesmith.errors import UserError
from tunesmith.progress import track
from tunesmith.recipe import Recipe, TrainConfig
from tunesmith.train.batching import sorted_batches
from tunesmith.train.device import autocast, resolve_device, resolve_precision
from tunesmith.train.task import Batch
from tunesmith.trained_run import TrainedRun

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

BASE_MAX_TRAIN = 10_000
"""The frozen-feature `base` fits on at most this many training rows (embedding is costly)."""


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
    return cut_to_length(tokenizer, texts, token_ids(tokenizer, texts), max_length)


def token_ids(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Each text's token ids, uncut."""
    return tokenizer(list(texts), truncation=False, verbose=False)["input_ids"] if texts else []


def cut_to_length(
    tokenizer: Any, texts: Sequence[str], ids: list[list[int]], max_length: int
) -> tuple[list[list[int]], int]:
    """`ids` (the texts' uncut token ids) with each row longer than max_length tokenised
    again, cut by the tokenizer (which keeps its closing special tokens); and how many were
    cut."""
    long_rows = [i for i, row in enumerate(ids) if len(row) > max_length]
    if not long_rows:
        return ids, 0
    cut = tokenizer([texts[i] for i in long_rows], truncation=True, max_length=max_length)
    ids = list(ids)
    for i, row in zip(long_rows, cut["input_ids"], strict=True):
        ids[i] = row
    return ids, len(long_rows)


def auto_length(tokenizer: Any, lengths: Sequence[int], model_limit: int | None) -> int:
    """`max_length: auto` for (preprocessed training) texts of these token lengths, within
    what the model and its tokenizer read."""
    from tunesmith.data.lengths import auto_max_length

    limits = [model_limit, getattr(tokenizer, "model_max_length", None)]
    known = [n for n in limits if isinstance(n, int) and 0 < n < 10**6]
    return auto_max_length(list(lengths), min(known) if known else None)


def classifier_eval_batch_size(train: TrainConfig) -> int:
    """A classifier's evaluation batch: the recipe's, else twice the training batch (no
    gradients to keep) and at least 32."""
    return train.eval_batch_size or max(32, train.batch_size * 2)


def model_length_limit(recipe: Recipe) -> int | None:
    """The recipe's model's position limit, from its config.json (None: it does not say)."""
    from tunesmith.models.limits import model_position_limit
    from tunesmith.models.resolve import resolve_model

    return model_position_limit(resolve_model(recipe.model))


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


TextTask = TypeVar("TextTask", bound="TokenisedTextTask")
T = TypeVar("T")


class TokenisedTextTask:
    """What the text classifier kinds share as a `TrainTask`: every split's texts
    preprocessed and tokenised once (so the baseline reads what the model reads), padded per
    batch, scored in length-sorted batches. Subclasses say how a batch carries its labels
    (`pad`) and how logits become probabilities (`probabilities`)."""

    def __init__(
        self,
        splits: Any,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int | str,
        device: torch.device,
        dtype: torch.dtype | None,
        eval_batch_size: int = 64,
        label_smoothing: float = 0.0,
        preprocessor: TextPreprocessor | None = None,
        length_limit: int | None = None,
    ) -> None:
        """`splits` has `split(name).texts`; `preprocessor` (the recipe's text preprocessing,
        none by default) applies to every text the model sees: the splits here, and the texts
        given to `predict_proba`. `max_length` "auto": chosen from the training texts
        (data/lengths.py), at most `length_limit` (the model's position limit)."""
        self.splits = splits
        self.tokenizer = tokenizer
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
        uncut = {name: token_ids(tokenizer, self.texts[name]) for name in SPLITS}
        self.max_length = (
            auto_length(tokenizer, [len(row) for row in uncut["train"]], length_limit)
            if max_length == "auto"
            else max_length
        )
        for name in SPLITS:
            self.ids[name], self.truncated[name] = cut_to_length(
                tokenizer, self.texts[name], uncut[name], self.max_length
            )

    @classmethod
    def from_recipe(
        cls: type[TextTask],
        splits: Any,
        tokenizer: PreTrainedTokenizerBase,
        recipe: Recipe,
        device: torch.device,
        dtype: torch.dtype | None,
    ) -> TextTask:
        """The task training builds: the recipe's max_length, batch sizes, label smoothing
        and text preprocessing."""
        train = recipe.train
        task = cls(
            splits,
            tokenizer,
            recipe.preprocess.max_length,
            device,
            dtype,
            eval_batch_size=classifier_eval_batch_size(train),
            label_smoothing=train.label_smoothing,
            preprocessor=TextPreprocessor.from_config(recipe.preprocess),
            length_limit=model_length_limit(recipe),
        )
        recipe.preprocess.max_length = task.max_length  # auto resolved: the run keeps it
        return task

    @classmethod
    def for_run(cls: type[TextTask], run: TrainedRun, splits: Any, **options: Any) -> TextTask:
        """The task for a finished run, with the run's own text preprocessing (from its
        recipe.yaml), so texts are prepared exactly as in training; `options` go to the
        subclass (e.g. the run's thresholds)."""
        device, dtype = placed(run)
        return cls(
            splits,
            run.tokenizer,
            run.recipe.preprocess.max_length,
            device,
            dtype,
            preprocessor=TextPreprocessor.from_config(run.recipe.preprocess),
            **options,
        )

    def encode(self, texts: Sequence[str]) -> tuple[list[list[int]], int]:
        """Token ids cut to max_length, and how many texts were cut."""
        return encode_texts(self.tokenizer, texts, self.max_length)

    def lengths(self, split: str) -> list[int]:
        return [len(row) for row in self.ids[split]]

    def pad(self, rows: list[list[int]]) -> Batch:
        """A batch of token-id rows (no labels: targets as the subclass fills them in)."""
        raise NotImplementedError

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, num_labels) probabilities from (B, num_labels) float logits."""
        raise NotImplementedError

    @torch.inference_mode()
    def predict_proba(self, model: torch.nn.Module, texts: Sequence[str]) -> np.ndarray:
        """(N, num_labels) probabilities of raw `texts` (preprocessed here as in training),
        in their order."""
        model.eval()
        prepared, self.fallbacks["predict"] = self.preprocessor.apply_counted(texts)
        ids, _ = self.encode(prepared)
        return self._map_batches(
            ids, lambda batch, _: self.probabilities(model(**batch.inputs).logits.float())
        )

    def _map_batches(
        self, ids: list[list[int]], forward: Callable[[Batch, list[int]], torch.Tensor]
    ) -> np.ndarray:
        """Run `forward(batch, its row indices)` over length-sorted batches of `ids`; rows
        come back in input order."""
        out: np.ndarray | None = None
        batches = sorted_batches([len(row) for row in ids], self.eval_batch_size)
        for chunk in track(batches, "Running the model over texts", size=len, unit="texts"):
            with autocast(self.device, self.dtype):
                result = forward(self.pad([ids[i] for i in chunk]), chunk).float().cpu().numpy()
            if out is None:
                out = np.zeros((len(ids), *result.shape[1:]), dtype=np.float32)
            out[chunk] = result
        return out if out is not None else self._no_rows()

    def _no_rows(self) -> np.ndarray:
        """What `_map_batches` gives for no rows at all."""
        return np.zeros((0, 0), dtype=np.float32)


def frozen_split_features(
    task: Any, model: torch.nn.Module, scored: str = "test"
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each split's frozen embedding (`task.embed`) for the `base` probe, `scored` under
    "test" (see `scored_splits`), and the training rows embedded: at most BASE_MAX_TRAIN,
    drawn with a fixed seed so runs compare."""
    train_rows = np.arange(len(task.splits.train))
    if len(train_rows) > BASE_MAX_TRAIN:
        train_rows = np.random.default_rng(0).choice(train_rows, BASE_MAX_TRAIN, replace=False)
    features = {"train": task.embed(model, "train", train_rows)}
    features |= scored_splits(lambda name: task.embed(model, name), scored, ("validation",))
    return features, train_rows


def scored_splits(
    compute: Callable[[str], T], scored: str = "test", names: Sequence[str] = SPLITS[:2]
) -> dict[str, T]:
    """compute(name) for each of `names` (train and validation), and under "test" the split
    the cheaper options are scored on: test after training, validation while `tunesmith
    tune` searches (which never reads test). A split is computed once."""
    values = {name: compute(name) for name in names}
    values["test"] = values[scored] if scored in values else compute(scored)
    return values


def note_truncated_training_texts(console: Console, task: TokenisedTextTask) -> None:
    """Say how many training texts preprocess.max_length cut (none: say nothing)."""
    cut = task.truncated["train"]
    if cut:
        console.print(
            f"[yellow]{cut} of {len(task.splits.train)} training texts are longer than "
            f"preprocess.max_length={task.max_length} tokens and were truncated"
        )


def with_test_details(metrics: dict, task: TokenisedTextTask) -> dict:
    """`tunesmith eval`'s metrics with the test split's size, source and stop-word
    fallbacks (and a note of the fallbacks on stderr)."""
    test = task.splits.test
    metrics["examples"] = len(test)
    metrics["source"] = test.source
    metrics["stop_word_fallbacks"] = task.fallbacks["test"]
    note_fallbacks(task.fallbacks["test"], "texts")
    return metrics
