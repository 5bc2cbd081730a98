"""Causal LMs with a finished run: load it (base + adapter, or the full model), score it on
loss, perplexity and generated answers, answer prompts, export."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from rich.console import Console
from transformers import AutoModelForCausalLM

from tunesmith.data.causal import (
    LMExample,
    LMSplit,
    LMSplits,
    load_causal_lm,
    load_lm_file,
    read_prompts,
)
from tunesmith.data.quality import KindChecks, QualityReport, run_checks, tokenizer_counter
from tunesmith.data.quality.items import CheckData
from tunesmith.errors import UserError
from tunesmith.models.causal_lm import load_causal_lm as load_model
from tunesmith.models.causal_lm import prepare_tokenizer
from tunesmith.models.resolve import resolve_model
from tunesmith.models.text import load_tokenizer
from tunesmith.recipe import Recipe
from tunesmith.run_folder import RunFolder
from tunesmith.tasks.causal_lm.contenders import ContenderRun, Contenders, summarise
from tunesmith.tasks.causal_lm.family import CausalLMFamily, read_questions, training_documents
from tunesmith.tasks.causal_lm.serving import ChatServing
from tunesmith.tasks.causal_lm.task import CausalLMTask, render
from tunesmith.tasks.common import is_peft_model, placed, prefix_caveat, save_transformers
from tunesmith.tasks.registry import ExportDetails
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
    splits = _scored_splits(run, data)
    metrics = run_task(run, splits).evaluate(run.model, "test", detailed=True)
    metrics["examples"] = len(splits.test)
    metrics["source"] = splits.test.source
    return metrics


def _scored_splits(run: TrainedRun, data: str | None) -> LMSplits:
    """The run's own splits, or `data` as the test split."""
    if data is None:
        return load_causal_lm(run.recipe.data, run.recipe.train.seed)
    fmt = None if run.recipe.data.format == "auto" else run.recipe.data.format
    test = load_lm_file(data, run.recipe.data, role="--data", format=fmt)
    empty = LMSplit([], test.source)
    return LMSplits(empty, empty, test, format=_format_of(test))


def compare_run(run: TrainedRun, data: str | None, compare: list[str]) -> dict:
    """The contenders in `compare` beside the tuned model, on the run's test prompts (or
    `data`), with the run's own retrieval index when it still fits the knowledge source."""
    splits = _scored_splits(run, data)
    recipe = run.recipe.model_copy(update={"compare": compare})
    if splits.format == "text" and not recipe.data.questions:
        raise UserError(
            f"--compare: {splits.test.source} is raw text; the contenders answer questions, "
            "so give --data a file of questions with answers"
        )
    train = splits if data is None else load_causal_lm(run.recipe.data, run.recipe.train.seed)
    task = run_task(run, splits)
    own = None
    if train.format == "text" and not recipe.data.documents:  # a domain run's own texts
        own = training_documents(train.train)
    contenders = Contenders(task, recipe, train.train.examples, own)
    contenders.open(run.folder / RunFolder.RETRIEVAL, Console(stderr=True))
    if splits.format == "text":
        examples = read_questions(recipe)
    else:
        examples = task.generation_examples("test")
    if "few-shot" in compare and not contenders.pairs:
        raise UserError("--compare: few-shot needs question/answer training pairs")
    references = [ex.messages[-1]["content"] for ex in examples]
    runs: dict[str, ContenderRun] = {}
    with _base_model(run) as base:
        for name in ("base", "few-shot", "rag"):
            if name in compare:
                runs[name] = _contender(name, contenders, base, examples)
    for name in ("fine-tuned", "fine-tuned+rag"):
        if name == "fine-tuned" or name in compare:
            runs[name] = _contender(name, contenders, run.model, examples)
    scores, verdict = summarise(runs, references)
    rag = runs.get("rag") or runs.get("fine-tuned+rag")
    result = {"examples": len(examples), "source": splits.test.source, "contenders": scores}
    result["verdict"] = verdict
    if contenders.indexes:
        result["retrieval"] = contenders.retrieval_summary(rag.retrieved if rag else [], examples)
    return result


def _contender(
    name: str, contenders: Contenders, model: torch.nn.Module, examples: list
) -> ContenderRun:
    if name in ("base", "fine-tuned"):
        return contenders.answer_plain(name, model, examples)
    return contenders.run(name, model, examples)


@contextmanager
def _base_model(run: TrainedRun) -> Iterator[torch.nn.Module]:
    """The untuned model: the run's own with its adapter switched off, or loaded again
    beside a fully fine-tuned one."""
    if hasattr(run.model, "disable_adapter"):
        with run.model.disable_adapter():
            yield run.model
        return
    device = next(run.model.parameters()).device
    yield load_model(resolve_model(run.recipe.model)).to(device).eval()


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


def answer_with_retrieval(
    run: TrainedRun, inputs: list[str], max_new_tokens: int | None
) -> list[dict]:
    """The tuned model's answers with the run's retrieval (the fine-tuned+rag contender):
    each prompt led by the passages its question retrieves, which are returned with it."""
    prompts = read_prompts(inputs, run.recipe.data)
    splits = load_causal_lm(run.recipe.data, run.recipe.train.seed)  # the training pairs
    recipe = run.recipe.model_copy(update={"compare": ["fine-tuned+rag"]})
    task = run_task(run, splits)
    contenders = Contenders(task, recipe, splits.train.examples)
    contenders.open(run.folder / RunFolder.RETRIEVAL, Console(stderr=True))
    unanswered = {"role": "assistant", "content": ""}
    examples = [LMExample(row=i, messages=[*p, unanswered]) for i, p in enumerate(prompts)]
    limit = max_new_tokens or recipe.generation.max_new_tokens
    answered = contenders.run("fine-tuned+rag", run.model, examples, answer_tokens=limit)
    return [
        {
            "prompt": messages[-1]["content"],
            "response": answer,
            "passages": [{"source": h.passage.source, "text": h.passage.text} for h in hits],
        }
        for messages, answer, hits in zip(prompts, answered.answers, answered.passages, strict=True)
    ]


def serving_model(run: TrainedRun, retrieval: bool | None) -> ChatServing:
    if retrieval is None:
        verdict = RunFolder(run.folder).read_json(RunFolder.METRICS).get("verdict") or {}
        retrieval = verdict.get("cheapest_within_noise") == "fine-tuned+rag"
    return ChatServing(run, retrieval)


def export(model: torch.nn.Module, run: TrainedRun, folder: Path) -> ExportDetails:
    """A transformers causal LM (or its PEFT adapter) with the run's tokenizer and chat
    template, and generation_config.json holding `tunesmith predict`'s decoding (greedy unless
    generation.do_sample, max_new_tokens, the end-of-turn tokens), so a plain `generate`
    answers as predict does."""
    import copy

    adapter = is_peft_model(model)
    empty = LMSplit([], "")
    task = run_task(run, LMSplits(empty, empty, empty, format="chat"))
    generation = copy.deepcopy((model.get_base_model() if adapter else model).generation_config)
    settings = run.recipe.generation
    sampling = (
        {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p}
        if settings.do_sample
        else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    )
    generation.update(
        max_new_tokens=settings.max_new_tokens,
        eos_token_id=task.stop_ids(model),
        pad_token_id=task.pad_id,
        **sampling,
    )
    if adapter:
        save_transformers(model, run, folder)
        generation.save_pretrained(folder)
    else:
        model.generation_config = generation
        save_transformers(model, run, folder)
    preprocess = run.recipe.preprocess
    return ExportDetails(
        loader=_chat_loader(adapter, run.recipe.data.system_prompt, preprocess.unicode),
        inputs='prompts = ["Your first question", "and another one"]',
        preprocessing=(
            "Each prompt is rendered with the tokenizer's chat template (saved with it), the "
            "assistant's turn opened"
            + (
                ", after Unicode NFKC (the loading lines apply it)"
                if preprocess.unicode == "nfkc"
                else ""
            )
            + f"; a prompt longer than {preprocess.max_length} tokens keeps its last "
            f"{preprocess.max_length}. Answers are decoded as generation_config.json says "
            f"({'sampled' if settings.do_sample else 'greedy'}, at most "
            f"{settings.max_new_tokens} new tokens, ending at the end-of-turn token)."
        )
        + prefix_caveat(run.recipe.method.name),
        files={
            "generation_config.json": "the decoding `tunesmith predict` uses (and its stop tokens)",
            "tokenizer.json, tokenizer_config.json": "the tokenizer, with the chat template",
        },
        adapter=adapter,
    )


def _chat_loader(adapter: bool, system_prompt: str | None, unicode: str | None) -> str:
    """The model card's lines that answer `prompts` with the export, without tunesmith."""
    nfkc = unicode == "nfkc"
    system = (system_prompt or "").strip()
    if system and nfkc:
        import unicodedata

        system = unicodedata.normalize("NFKC", system)
    lines = ["import torch"] + (["import unicodedata"] if nfkc else [])
    if adapter:
        lines += [
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig",
            "",
            "tokenizer = AutoTokenizer.from_pretrained(folder)  # with the run's chat template",
            "model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), "
            "folder).eval()",
            "generation = GenerationConfig.from_pretrained(folder)  # the run's decoding",
        ]
    else:
        lines += [
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            "tokenizer = AutoTokenizer.from_pretrained(folder)  # with the run's chat template",
            "model = AutoModelForCausalLM.from_pretrained(folder).eval()",
        ]
    content = 'unicodedata.normalize("NFKC", prompt)' if nfkc else "prompt"
    messages = '{"role": "user", "content": ' + content + "}"
    if system:
        messages = '{"role": "system", "content": ' + json.dumps(system) + "}, " + messages
    lines += [
        "answers = []",
        "for prompt in prompts:",
        f"    messages = [{messages}]",
        "    inputs = tokenizer.apply_chat_template(",
        '        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True',
        "    )",
        "    with torch.no_grad():",
        "        output = model.generate(**inputs"
        + (", generation_config=generation)" if adapter else ")  # generation_config.json"),
        '    new_tokens = output[0, inputs["input_ids"].shape[1] :]',
        "    answers.append(tokenizer.decode(new_tokens, skip_special_tokens=True).strip())",
    ]
    return "\n".join(lines) + "\n"


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
