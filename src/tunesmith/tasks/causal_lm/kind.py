"""Causal LMs with a finished run: load it (base + adapter, or the full model), score it on
loss, perplexity and generated answers, answer prompts, export."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from rich.console import Console
from transformers import AutoModelForCausalLM

from tunesmith.data.causal import LMSplit, LMSplits, load_causal_lm, load_lm_file, read_prompts
from tunesmith.data.quality import KindChecks, QualityReport, run_checks, tokenizer_counter
from tunesmith.data.quality.items import CheckData
from tunesmith.models.causal_lm import load_causal_lm as load_model
from tunesmith.models.causal_lm import prepare_tokenizer
from tunesmith.models.resolve import resolve_model
from tunesmith.models.text import load_tokenizer
from tunesmith.recipe import Recipe
from tunesmith.run_folder import RunFolder
from tunesmith.tasks.causal_lm.family import CausalLMFamily
from tunesmith.tasks.causal_lm.task import CausalLMTask, render
from tunesmith.tasks.common import placed, save_transformers
from tunesmith.trained_run import TrainedRun


def prepare(
    recipe: Recipe, device: torch.device, dtype: torch.dtype | None, console: Console
) -> CausalLMFamily:
    return CausalLMFamily(recipe, device, dtype, console)


def load_run(folder: Path, recipe: Recipe, device: torch.device | None) -> TrainedRun:
    adapter, full = folder / RunFolder.ADAPTER, folder / RunFolder.MODEL
    if adapter.is_dir():
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_model(resolve_model(recipe.model)), adapter)
        weights = adapter
    else:
        model, weights = AutoModelForCausalLM.from_pretrained(full), full
    tokenizer = prepare_tokenizer(load_tokenizer(weights))
    return TrainedRun(folder, recipe, model.to(device or "cpu").eval(), tokenizer)


def run_task(run: TrainedRun, splits: LMSplits) -> CausalLMTask:
    device, dtype = placed(run)
    return CausalLMTask.from_recipe(splits, run.tokenizer, run.recipe, device, dtype)


def evaluate_run(run: TrainedRun, data: str | None) -> dict:
    if data is None:
        splits = load_causal_lm(run.recipe.data, run.recipe.train.seed)
    else:
        fmt = None if run.recipe.data.format == "auto" else run.recipe.data.format
        test = load_lm_file(data, run.recipe.data, role="--data", format=fmt)
        empty = LMSplit([], test.source)
        splits = LMSplits(empty, empty, test, format=_format_of(test))
    metrics = run_task(run, splits).evaluate(run.model, "test", detailed=True)
    metrics["examples"] = len(splits.test)
    metrics["source"] = splits.test.source
    return metrics


def _format_of(split: LMSplit) -> str:
    """'text' when the file holds raw text, else an instruction format (scored by generation)."""
    return "text" if split.examples and split.examples[0].messages is None else "chat"


def predict_run(
    run: TrainedRun, inputs: list[str], text_column: str | None, max_new_tokens: int | None
) -> list[dict]:
    prompts = read_prompts(inputs, run.recipe.data)
    if max_new_tokens is not None:
        run.recipe.generation.max_new_tokens = max_new_tokens
    empty = LMSplit([], "")
    task = run_task(run, LMSplits(empty, empty, empty, format="chat"))
    answers = task.generate(run.model, prompts)
    return [
        {"prompt": messages[-1]["content"], "response": answer}
        for messages, answer in zip(prompts, answers, strict=True)
    ]


def export(model: torch.nn.Module, run: TrainedRun, folder: Path) -> None:
    save_transformers(model, run, folder)


def check_data(recipe: Recipe, console: Console, label_issues: bool | None) -> QualityReport:
    return run_checks(recipe, KindChecks("instructions", count_tokens), console, label_issues)


def count_tokens(recipe: Recipe, data: CheckData) -> Callable[[Sequence[str]], list[int]]:
    """Tokens as training sees them: with the chat template's own tokens for instruction
    data (raw text is cut into chunks and is not counted against max_length)."""
    if data.format == "text":
        return tokenizer_counter(recipe)
    tokenizer = prepare_tokenizer(load_tokenizer(resolve_model(recipe.model)))
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    rendered = render(tokenizer, messages, prompt=False)
    overhead = len(tokenizer(rendered)["input_ids"]) - len(tokenizer("x\ny")["input_ids"])
    return tokenizer_counter(recipe, overhead, tokenizer)
