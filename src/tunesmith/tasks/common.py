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


def refuse_retrieval(run: TrainedRun, retrieval: bool | None) -> None:
    """--rag on a kind that answers without retrieval."""
    if retrieval:
        raise UserError(f"--rag: {run.recipe.task} runs answer without retrieval")


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


def save_transformers(
    model: torch.nn.Module, run: TrainedRun, folder: Path, max_length: int | None = None
) -> None:
    """A transformers model folder with the run's tokenizer (and chat template); for a peft
    model, its adapter (PEFT format) with the tokenizer. `max_length`: the saved tokenizer's
    `model_max_length`, so `truncation=True` cuts inputs where the run does."""
    model.save_pretrained(folder)
    tokenizer = run.tokenizer
    if max_length is not None:
        import copy

        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(folder)


def is_peft_model(model: Any) -> bool:
    """True for a peft model (an adapter that `export` was not asked to merge)."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def prefix_caveat(method: str) -> str:
    """What a generative export's card must say of a prefix-tuning adapter ("" otherwise)."""
    if method != "prefix":
        return ""
    return (
        " Prefix tuning: peft 0.21's own `generate` loses the prefix on transformers 5 (its "
        "forward is right), so the loading lines answer without it; `tunesmith predict` "
        "passes the prefix as a pre-filled cache and answers with it."
    )


PREPROCESS_SETTINGS = "preprocess.json"
"""A text classifier export's text preprocessing (settings, word lists, what the tokenizer
already does)."""
NORMALISATION_PROBES = (
    "ＡＢＣ　テスト ｶﾀｶﾅ Ｆｏｏｔｂａｌｌ",
    "Hello WORLD ① ﬁle Ⅻ",
    "café Straße",
)
"""Texts an export's folded tokenizer must read exactly as the run's preprocessing + tokenizer
do (full-width, half-width, compatibility characters, case)."""


def export_text_classifier(
    model: torch.nn.Module, run: TrainedRun, folder: Path, tail: str
) -> tuple[str, str, dict[str, str]]:
    """The shared part of a text classifier's export: the model (or adapter, with the config
    holding the run's labels), its tokenizer with the run's Unicode NFKC and lowercasing
    folded into its normalizer and `model_max_length` set to the run's max_length (so plain
    `AutoTokenizer` reads texts as `tunesmith predict` does), and preprocess.json (plus
    preprocess.py where stop words are removed, which no normalizer can do).

    Returns the loader (the lines that load the folder and tokenise `texts`, then `tail`, the
    kind's lines from `logits` to predictions), the preprocessing prose and the files
    written."""
    from tunesmith.models.portable import TEXT_PREPROCESS_FILE
    from tunesmith.models.portable import source as portable_source

    save_transformers(model, run, folder)
    adapter = is_peft_model(model)
    if adapter:  # the head's size and label names, for the base model the adapter goes on
        model.get_base_model().config.save_pretrained(folder)
    preprocessor = TextPreprocessor.from_config(run.recipe.preprocess)
    max_length = int(run.recipe.preprocess.max_length)
    folded = _fold_into_tokenizer(run.tokenizer, preprocessor, folder, max_length)
    needs_prepare = preprocessor.removes_words or (preprocessor.normalises and not folded)
    normalising = ["nfkc"] * (preprocessor.unicode == "nfkc") + ["lowercase"] * bool(
        preprocessor.lowercase
    )
    settings = preprocessor.portable_settings() | {
        "in_tokenizer": normalising if folded else [],
        "needs_prepare": needs_prepare,
        "max_length": max_length,
    }
    (folder / PREPROCESS_SETTINGS).write_text(json_text(settings), encoding="utf-8")
    files = {
        "tokenizer.json, tokenizer_config.json": "the tokenizer, doing the run's normalisation",
        PREPROCESS_SETTINGS: "the text preprocessing of training (settings and word lists)",
    }
    if needs_prepare:
        import shutil

        shutil.copy(portable_source(TEXT_PREPROCESS_FILE), folder / TEXT_PREPROCESS_FILE)
        files[TEXT_PREPROCESS_FILE] = (
            "`prepare(text)`: the preprocessing the tokenizer cannot do (stop words), "
            "standard library only (janome for Japanese)"
        )
    loader = _text_classifier_loader(adapter, needs_prepare) + tail
    return loader, _text_preprocessing_prose(preprocessor, folded, needs_prepare, max_length), files


def json_text(value: Any) -> str:
    """`value` as indented JSON text, non-ASCII kept, ending with a newline."""
    import json

    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def _fold_into_tokenizer(
    tokenizer: Any, preprocessor: TextPreprocessor, folder: Path, max_length: int
) -> bool:
    """Put NFKC and lowercasing in front of the saved tokenizer's normalizer (a fast
    tokenizer's backend) and save it with `model_max_length = max_length`; True when the
    reloaded tokenizer then reads the probes exactly as preprocessing + the run's tokenizer
    do. A tokenizer class that rebuilds its normalizer from its settings on loading (BERT's,
    in transformers 5) is saved as the generic PreTrainedTokenizerFast, which keeps
    tokenizer.json as it is."""
    import copy
    import json

    from tokenizers import normalizers
    from transformers import AutoTokenizer

    steps = ([normalizers.NFKC()] if preprocessor.unicode == "nfkc" else []) + (
        [normalizers.Lowercase()] if preprocessor.lowercase else []
    )
    saved = copy.deepcopy(tokenizer)
    saved.model_max_length = max_length
    backend = getattr(saved, "backend_tokenizer", None)
    if not steps or backend is None:
        saved.save_pretrained(folder)
        return not steps
    existing = backend.normalizer
    backend.normalizer = normalizers.Sequence(steps + ([existing] if existing else []))
    saved.save_pretrained(folder)
    probes = list(NORMALISATION_PROBES)
    normalise = TextPreprocessor(unicode=preprocessor.unicode, lowercase=preprocessor.lowercase)
    expected = tokenizer(normalise.apply(probes))["input_ids"]

    def reads_alike() -> bool:
        reloaded = AutoTokenizer.from_pretrained(folder)
        return reloaded(probes)["input_ids"] == expected

    if reads_alike():
        return True
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json_text(config), encoding="utf-8")
    return reads_alike()


def _text_classifier_loader(adapter: bool, needs_prepare: bool) -> str:
    """The model card's lines that load a text classifier export and turn `texts` into
    `logits` without tunesmith."""
    if adapter:
        lines = [
            "import torch",
            "from peft import PeftModel",
            "from transformers import AutoConfig, AutoModelForSequenceClassification, "
            "AutoTokenizer",
            "",
            "tokenizer = AutoTokenizer.from_pretrained(folder)",
            "config = AutoConfig.from_pretrained(folder)  # the base model's, with this run's "
            "labels",
            "model = AutoModelForSequenceClassification.from_pretrained(",
            "    base, config=config, ignore_mismatched_sizes=True  # the head comes from the "
            "adapter",
            ")",
            "model = PeftModel.from_pretrained(model, folder).eval()",
        ]
    else:
        lines = [
            "import torch",
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
            "",
            "tokenizer = AutoTokenizer.from_pretrained(folder)  # NFKC/lowercase in its normalizer",
            "model = AutoModelForSequenceClassification.from_pretrained(folder).eval()",
        ]
    if needs_prepare:
        lines += [
            "",
            "import sys",
            "sys.path.insert(0, folder)",
            "from preprocess import prepare  # stop words, as in training (preprocess.json)",
            "texts = [prepare(text) for text in texts]",
        ]
    lines += [
        "",
        "with torch.no_grad():",
        '    inputs = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")',
        "    logits = model(**inputs).logits",
    ]
    return "\n".join(lines) + "\n"


def _text_preprocessing_prose(
    preprocessor: TextPreprocessor, folded: bool, needs_prepare: bool, max_length: int
) -> str:
    steps = preprocessor.describe()
    parts = [f"Training read every text after this preprocessing: {steps}."]
    if preprocessor.normalises:
        named = " and ".join(
            ["Unicode NFKC"] * (preprocessor.unicode == "nfkc")
            + ["lowercasing"] * bool(preprocessor.lowercase)
        )
        parts.append(
            f"{named} live in the saved tokenizer (in front of its normalizer), so "
            "`AutoTokenizer` applies them: full-width ＡＢＣ reads as ABC, half-width ｶﾀｶﾅ as "
            "カタカナ."
            if folded
            else f"This tokenizer has no normalizer to hold {named}, so `prepare` applies it."
        )
    if preprocessor.removes_words:
        parts.append(
            "Stop-word removal cannot live in a tokenizer: call `prepare(text)` from "
            "`preprocess.py` (its word lists are in `preprocess.json`) before tokenising, as "
            "the loading lines below do; a text left empty keeps its normalised form."
        )
    elif not needs_prepare:
        parts.append("Nothing else happens outside the saved tokenizer.")
    parts.append(
        f"Texts are cut to {max_length} tokens, as in training: the tokenizer's "
        "`model_max_length`, applied by `truncation=True`."
    )
    return " ".join(parts)


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
