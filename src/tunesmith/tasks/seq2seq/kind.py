"""Sequence to sequence with a finished run: load it (base + adapter, or the full model), score
it on loss, perplexity and generated answers, answer inputs, export, check data."""

from __future__ import annotations

from pathlib import Path

import torch
from rich.console import Console
from transformers import AutoModelForSeq2SeqLM

from tunesmith.data.quality import QualityReport
from tunesmith.errors import UserError
from tunesmith.models.resolve import resolve_model
from tunesmith.models.text import load_tokenizer
from tunesmith.recipe import Recipe
from tunesmith.run_folder import RunFolder
from tunesmith.tasks.common import is_peft_model, placed, prefix_caveat, save_transformers
from tunesmith.tasks.registry import ExportDetails
from tunesmith.tasks.seq2seq.data import (
    PairSplit,
    PairSplits,
    load_seq2seq,
    read_pairs,
    read_sources,
)
from tunesmith.tasks.seq2seq.family import Seq2SeqFamily
from tunesmith.tasks.seq2seq.model import load_seq2seq_model, prepare_tokenizer
from tunesmith.tasks.seq2seq.quality import seq2seq_checks
from tunesmith.tasks.seq2seq.serving import Seq2SeqServing
from tunesmith.tasks.seq2seq.task import Seq2SeqTask
from tunesmith.trained_run import TrainedRun


def prepare(
    recipe: Recipe, device: torch.device, dtype: torch.dtype | None, console: Console
) -> Seq2SeqFamily:
    return Seq2SeqFamily(recipe, device, dtype, console)


def load_run(folder: Path, recipe: Recipe, device: torch.device | None) -> TrainedRun:
    adapter, full = folder / RunFolder.ADAPTER, folder / RunFolder.MODEL
    if adapter.is_dir():
        from peft import PeftModel

        base = load_seq2seq_model(resolve_model(recipe.model), recipe.model)
        model, weights = PeftModel.from_pretrained(base, adapter), adapter
    else:
        model, weights = AutoModelForSeq2SeqLM.from_pretrained(full), full
    tokenizer = prepare_tokenizer(load_tokenizer(weights))
    return TrainedRun(folder, recipe, model.to(device or "cpu").eval(), tokenizer)


def run_task(run: TrainedRun, splits: PairSplits) -> Seq2SeqTask:
    device, dtype = placed(run)
    return Seq2SeqTask.from_recipe(splits, run.tokenizer, run.model, run.recipe, device, dtype)


def evaluate_run(run: TrainedRun, data: str | None) -> dict:
    if data is None:
        splits = load_seq2seq(run.recipe.data, run.recipe.train.seed)
    else:
        read = read_pairs(data, run.recipe.data, role="--data")
        empty = PairSplit([], read.file)
        splits = PairSplits(empty, empty, PairSplit(read.pairs, read.file), read.format)
    metrics = run_task(run, splits).evaluate(run.model, "test", detailed=True)
    metrics["examples"] = len(splits.test)
    metrics["source"] = splits.test.file
    return metrics


def predict_run(
    run: TrainedRun, inputs: list[str], text_column: str | None, max_new_tokens: int | None
) -> list[dict]:
    sources = read_sources(inputs, run.recipe.data, text_column)
    empty = PairSplit([], "")
    task = run_task(run, PairSplits(empty, empty, empty, "input-target"))
    answers = task.generate(run.model, sources, max_new_tokens)
    return [
        {"prompt": source, "response": answer}
        for source, answer in zip(sources, answers, strict=True)
    ]


def serving_model(run: TrainedRun, retrieval: bool | None) -> Seq2SeqServing:
    if retrieval:
        raise UserError("--rag: seq2seq runs answer without retrieval")
    return Seq2SeqServing(run)


def export(model: torch.nn.Module, run: TrainedRun, folder: Path) -> ExportDetails:
    """A transformers encoder-decoder (or its PEFT adapter) with its tokenizer (cutting inputs
    at the run's max_length) and generation_config.json holding `tunesmith predict`'s
    decoding, so a plain `generate` answers as predict does."""
    from tunesmith.tasks.seq2seq.model import generation_settings

    adapter = is_peft_model(model)
    empty = PairSplit([], "")
    task = run_task(run, PairSplits(empty, empty, empty, "input-target"))
    decoding = run.recipe.generation
    generation = generation_settings(model, decoding, decoding.max_new_tokens, task.pad_id)
    max_length = int(run.recipe.preprocess.max_length)
    if adapter:
        save_transformers(model, run, folder, max_length)
        generation.save_pretrained(folder)
    else:
        model.generation_config = generation
        save_transformers(model, run, folder, max_length)
    nfkc = run.recipe.preprocess.unicode == "nfkc"
    if adapter:
        load = [
            "from peft import PeftModel",
            "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, GenerationConfig",
            "",
            "tokenizer = AutoTokenizer.from_pretrained(folder)",
            "model = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(base), "
            "folder).eval()",
            "generation = GenerationConfig.from_pretrained(folder)  # the run's decoding",
        ]
    else:
        load = [
            "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer",
            "",
            "tokenizer = AutoTokenizer.from_pretrained(folder)",
            "model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()",
        ]
    lines = ["import torch", *(["import unicodedata"] if nfkc else []), *load, ""]
    if nfkc:
        lines.append('texts = [unicodedata.normalize("NFKC", text) for text in texts]')
    lines += [
        "with torch.no_grad():",
        '    inputs = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")',
        "    output = model.generate(**inputs"
        + (", generation_config=generation)" if adapter else ")  # generation_config.json"),
        "answers = [text.strip() for text in tokenizer.batch_decode(output, "
        "skip_special_tokens=True)]",
    ]
    return ExportDetails(
        loader="\n".join(lines) + "\n",
        inputs='texts = ["The first text to rewrite", "and another one"]',
        preprocessing=(
            ("Inputs are read after Unicode NFKC (the loading lines apply it); " if nfkc else "")
            + f"an input is cut to {max_length} tokens, its end-of-sequence token kept (the "
            "tokenizer's `model_max_length`, applied by `truncation=True`). Answers are "
            "decoded as generation_config.json says "
            f"({'sampled' if decoding.do_sample else 'greedy'}, one beam, at most "
            f"{decoding.max_new_tokens} new tokens)."
        )
        + prefix_caveat(run.recipe.method.name),
        files={
            "generation_config.json": "the decoding `tunesmith predict` uses",
            "tokenizer.json, tokenizer_config.json": "the tokenizer",
        },
        adapter=adapter,
    )


def check_data(recipe: Recipe, console: Console, label_issues: bool | None) -> QualityReport:
    """The checks that fit pairs (label issues do not apply: there are no labels)."""
    return seq2seq_checks(recipe)
