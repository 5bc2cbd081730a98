"""Sequence to sequence: input/target pairs, an encoder-decoder (T5, FLAN-T5, mT5, BART) scored
before and after on loss, perplexity and generated answers; the nearest training example's
target as the free baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from peft import TaskType
from rich.console import Console
from torch import nn

from tunesmith.errors import UserError
from tunesmith.evaluate.base_scores import cached_base_scores
from tunesmith.evaluate.forgetting import (
    RepresentationDrift,
    measured_half,
    reference_paragraphs,
    reference_sentences,
)
from tunesmith.evaluate.generation import generation_metrics
from tunesmith.method_registry import Method
from tunesmith.models.resolve import resolve_model
from tunesmith.models.text import load_tokenizer
from tunesmith.recipe import Recipe
from tunesmith.tasks.seq2seq.data import SPLITS, PairSplit, PairSplits, load_seq2seq
from tunesmith.tasks.seq2seq.model import load_seq2seq_model, prepare_tokenizer
from tunesmith.tasks.seq2seq.task import Seq2SeqTask
from tunesmith.trained_run import save_pretrained_model

REFERENCE_SENTENCES = 64
"""Reference sentences fingerprinted at each evaluation (two passes each: a few seconds)."""
REFERENCE_MAX_TOKENS = 128


def refuse_unsupported(recipe: Recipe) -> None:
    """Keys the recipe accepts for generative kinds that seq2seq cannot honour: refused
    rather than silently ignored."""
    if recipe.train.replay:
        raise UserError(
            "train.replay mixes reference text into a causal LM's training; seq2seq has no "
            "target for raw text. Set train.replay: 0 (train.l2_sp or train.layer_decay "
            "guard against forgetting here)"
        )


class Seq2SeqFamily:
    score_start = True
    headline = ("perplexity", "rouge_l", "exact_match", "token_f1")

    def __init__(
        self, recipe: Recipe, device: torch.device, dtype: torch.dtype | None, console: Console
    ) -> None:
        refuse_unsupported(recipe)
        self.recipe = recipe
        splits = load_seq2seq(recipe.data, recipe.train.seed)
        folder = resolve_model(recipe.model)
        self.folder = folder
        self.model = load_seq2seq_model(folder, recipe.model).to(device)
        self.tokenizer = prepare_tokenizer(load_tokenizer(folder))
        self.task = Seq2SeqTask.from_recipe(
            splits, self.tokenizer, self.model, recipe, device, dtype
        )
        self.splits = self.task.splits  # preprocessed (preprocess.unicode), as the model sees
        self.base_answers: list[str] = []
        self.tuned_answers: list[str] = []

    def describe(self, console: Console) -> None:
        sizes = ", ".join(f"{n} {len(self.splits.split(n))}" for n in SPLITS)
        console.print(f"Data ({self.splits.format} pairs): {sizes}")
        console.print(f"Text preprocessing: {self.task.preprocessor.describe()}")
        cut = self.task.truncated["train"]
        limit = self.recipe.preprocess.max_length
        for count, what in ((cut.sources, "inputs"), (cut.targets, "targets")):
            if count:
                console.print(
                    f"[yellow]{count} of {len(self.splits.train)} training {what} are longer "
                    f"than preprocess.max_length={limit} tokens and were truncated"
                )

    def adapt_to(self, method: Method) -> None:
        """Every method trains on the same padded pairs (virtual tokens are added in
        model.py, outside the rows)."""

    def score_before(self, console: Console, split: str = "test") -> dict[str, dict]:
        generated = len(self.task.generation_pairs(split))
        console.print(
            f"Scoring the base model on the {split} split ({len(self.splits.split(split))} pairs, "
            f"{generated} generated answers) ..."
        )
        compute = lambda: self.task.evaluate_answers(self.model, split)  # noqa: E731
        if self.recipe.generation.do_sample:
            base, self.base_answers = compute()
        else:
            inputs = self.task.scoring_inputs(split)
            (base, self.base_answers), hit = cached_base_scores(self.folder, inputs, compute)
            if hit:
                console.print("Base model's test scores and answers: from the cache")
        base["description"] = f"{self.recipe.model} before fine-tuning"
        return {"base": base, "baseline": self._nearest_example_baseline(split)}

    def init_head(self, console: Console) -> None:
        """No head to start: the output layer is pre-trained."""

    def score_after(self, model: nn.Module) -> dict:
        """Test metrics of the tuned model; its answers are kept for generations.jsonl."""
        scores, self.tuned_answers = self.task.evaluate_answers(model, "test")
        return scores

    def test_examples(self) -> None:
        """No per-example results: perplexity is pooled over the test tokens (metrics per
        slice are skipped; the data check still counts each slice's rows)."""
        return None

    def head_parameters(self) -> set[int]:
        return set()  # the output layer is pre-trained (and usually tied to the embeddings)

    def finish(self, model: nn.Module, output: Path) -> dict[str, Any]:
        pairs = self.task.generation_pairs("test")
        rows = [
            {"prompt": p.source, "reference": p.target, "base": base, "fine_tuned": tuned}
            for p, base, tuned in zip(pairs, self.base_answers, self.tuned_answers, strict=True)
        ]
        with (output / "generations.jsonl").open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        cut = self.task.truncated
        return {
            "format": self.splits.format,
            "splits": {name: len(self.splits.split(name)) for name in SPLITS},
            "truncated": {name: cut[name].sources for name in SPLITS},
            "truncated_targets": {name: cut[name].targets for name in SPLITS},
            "samples": rows[: self.recipe.generation.samples],
        }

    def forgetting_measure(self, reference: str) -> RepresentationDrift:
        """Drift (1 - linear CKA) of the mean-pooled encoder and decoder states of reference
        sentences: a fine-tune that rewires what the model does with general text moves
        them, whichever of encoder and decoder it changed."""
        paragraphs = measured_half(reference_paragraphs(reference))
        sentences = reference_sentences(paragraphs, REFERENCE_SENTENCES)
        if len(sentences) < 2:
            raise UserError(
                f"guards.forgetting.reference: {reference} has fewer than two sentences of five "
                "words or more; give a longer reference text, or set guards.forgetting: null"
            )
        limit = min(REFERENCE_MAX_TOKENS, self.recipe.preprocess.max_length)
        nothing = PairSplit([], reference)
        probe = Seq2SeqTask(  # encodes only the sentences it is given
            PairSplits(nothing, nothing, nothing, "input-target"),
            self.tokenizer,
            limit,
            self.task.decoder_start,
            self.task.device,
            self.task.dtype,
            eval_batch_size=self.task.eval_batch_size,
        )
        return RepresentationDrift(lambda m: probe.features(m, sentences).numpy(), self.model)

    def save(self, model: nn.Module, output: Path, adapter: bool) -> Path:
        if adapter:
            mark_seq2seq(model)
        return save_pretrained_model(model, self.tokenizer, output, adapter)

    def _nearest_example_baseline(self, split: str) -> dict:
        """Answer each input of `split` with the target of its most similar training input (TF-IDF
        cosine): what a search box over the training pairs gives, for free."""
        train = self.splits.train.pairs
        test = self.task.generation_pairs(split)
        sources, targets = [p.source for p in train], [p.target for p in train]
        answers = nearest_targets(sources, targets, [p.source for p in test])
        scores = generation_metrics(answers, [p.target for p in test])
        scores["description"] = "nearest training input's target (TF-IDF retrieval)"
        return scores


def nearest_targets(inputs: list[str], targets: list[str], queries: list[str]) -> list[str]:
    """The target of the most similar input for each query (word 1-2 grams; character
    grams where the inputs hold no word of two letters or more, e.g. only symbols)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    try:
        vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))
        known = vectorizer.fit_transform(inputs)
    except ValueError:  # empty vocabulary
        vectorizer = TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=(1, 3))
        known = vectorizer.fit_transform(inputs)
    nearest = (vectorizer.transform(queries) @ known.T).toarray().argmax(axis=1)
    return [targets[i] for i in nearest]


def mark_seq2seq(model: nn.Module) -> None:
    """Write the adapter as peft's seq2seq kind, so AutoPeftModelForSeq2SeqLM and
    PeftModel.from_pretrained load it as one: tunesmith's methods wrap every language model
    as a causal LM. A prefix keeps peft's seq2seq layout, which is how it was trained
    (model.py)."""
    for config in model.peft_config.values():
        config.task_type = TaskType.SEQ_2_SEQ_LM
        if getattr(config.peft_type, "value", "") == "PREFIX_TUNING":
            config.num_transformer_submodules = 2
