"""Causal LMs: instruction/chat data or raw text, a decoder with its chat template, scored
before and after on loss, perplexity and generated answers; a retrieval baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from tunesmith.data.causal import (
    LMExample,
    LMSplit,
    LMSplits,
    document_names,
    load_causal_lm,
    load_lm_file,
)
from tunesmith.data.documents import Document
from tunesmith.data.text import SPLITS
from tunesmith.evaluate.base_scores import cached_base_scores
from tunesmith.evaluate.forgetting import (
    LanguageModelPerplexity,
    measured_half,
    reference_paragraphs,
    replay_half,
)
from tunesmith.evaluate.generation import generation_metrics
from tunesmith.method_registry import Method
from tunesmith.models.causal_lm import load_causal_lm as load_model
from tunesmith.models.causal_lm import prepare_tokenizer
from tunesmith.models.resolve import resolve_model
from tunesmith.models.text import load_tokenizer
from tunesmith.recipe import Recipe
from tunesmith.run_folder import RunFolder
from tunesmith.tasks.causal_lm.contenders import (
    ContenderRun,
    Contenders,
    generation_rows,
    summarise,
)
from tunesmith.tasks.causal_lm.task import Answers, CausalLMTask
from tunesmith.trained_run import save_pretrained_model

REFERENCE_PARAGRAPHS = 24
"""Reference paragraphs measured at each evaluation (about 4,000 tokens: a few seconds)."""


def with_replay(splits: LMSplits, recipe: Recipe) -> LMSplits:
    """train.replay: add raw-text examples from the reference's unmeasured half, so that
    they make up that share of the training examples (cycled when the reference is short)."""
    share = recipe.train.replay
    if not share:
        return splits
    reference = recipe.guards.forgetting.reference  # validated: set when replay is
    paragraphs = replay_half(reference_paragraphs(reference))
    count = round(share / (1 - share) * len(splits.train))
    extra = [LMExample(row=-1 - i, text=paragraphs[i % len(paragraphs)]) for i in range(count)]
    train = LMSplit(splits.train.examples + extra, splits.train.source)
    return LMSplits(train, splits.validation, splits.test, splits.format)


class CausalLMFamily:
    score_start = True
    headline = ("perplexity", "rouge_l", "exact_match", "token_f1")

    def __init__(
        self, recipe: Recipe, device: torch.device, dtype: torch.dtype | None, console: Console
    ) -> None:
        self.recipe = recipe
        self.splits = with_replay(load_causal_lm(recipe.data, recipe.train.seed), recipe)
        folder = resolve_model(recipe.model)
        self.folder = folder
        self.tokenizer = prepare_tokenizer(load_tokenizer(folder))
        self.model = load_model(folder).to(device)
        self.task = CausalLMTask.from_recipe(self.splits, self.tokenizer, recipe, device, dtype)
        self.splits = self.task.splits  # preprocessed (preprocess.unicode), as the model sees them
        self.base_answers: list[str] = []
        self.tuned: Answers | None = None
        """The tuned model's test answers (score_after), written by finish."""
        self.runs: dict[str, ContenderRun] = {}
        """Every contender's test answers (base, few-shot, rag, fine-tuned, ...)."""
        self.contenders: Contenders | None = None
        self.questions: list[LMExample] = []
        """What the contenders answer: the test split's prompts, or data.questions (a
        domain adaptation run)."""
        if not self.task.is_text:
            self.questions = self.task.generation_examples("test")
            if set(recipe.compare or ()) - {"base", "fine-tuned"}:  # documents read now
                self.contenders = Contenders(self.task, recipe, self.splits.train.examples)
        elif recipe.data.questions:
            self.questions = read_questions(recipe)
            own = None if recipe.data.documents else training_documents(self.splits.train)
            self.contenders = Contenders(self.task, recipe, [], own)
        if not self.task.rows["train"]:
            from tunesmith.errors import UserError

            raise UserError(
                f"data.train: {self.splits.train.source}: no example keeps a response token "
                f"within preprocess.max_length={recipe.preprocess.max_length}; raise max_length"
            )

    def describe(self, console: Console) -> None:
        sizes = ", ".join(f"{n} {len(self.splits.split(n))}" for n in SPLITS)
        rows = len(self.task.rows["train"])
        console.print(f"Data ({self.splits.format}): {sizes}; {rows} training rows")
        console.print(f"Text preprocessing: {self.task.preprocessor.describe()}")
        limit = self.recipe.preprocess.max_length
        cut = self.task.truncated["train"]
        if cut:
            console.print(
                f"[yellow]{cut} of {len(self.splits.train)} training examples are longer than "
                f"preprocess.max_length={limit} tokens and were truncated"
            )
        lost = self.task.unscored["train"]
        if lost:
            console.print(
                f"[yellow]{lost} training examples have no response left within {limit} "
                "tokens (the prompt fills the window) and are skipped"
            )

    def adapt_to(self, method: Method) -> None:
        """Packing already follows the method (CausalLMTask.from_recipe)."""

    def score_before(self, console: Console, split: str = "test") -> dict[str, dict]:
        rows = len(self.splits.split(split))
        generated = 0 if self.task.is_text else len(self.task.generation_examples(split))
        console.print(
            f"Scoring the base model on the {split} split ({rows} examples"
            + (f", {generated} generated answers" if generated else "")
            + ") ..."
        )
        if self.task.is_text:
            base = self.task.evaluate(self.model, split, detailed=True)
        else:
            base, self.base_answers = self._base_answers(console, split)
        base["description"] = f"{self.recipe.model} before fine-tuning"
        scores = {"base": base}
        if not self.task.is_text:
            scores["baseline"] = self._retrieval_baseline(split)
            self.runs = {"base": self._as_run("base", base, self.base_answers, split)}
        elif self.questions and split == "test":
            console.print(f"Answering {len(self.questions)} questions (data.questions) ...")
            self.runs = {"base": self.contenders.answer_plain("base", self.model, self.questions)}
        elif set(self.recipe.compare or ()) - {"base", "fine-tuned"}:
            console.print(
                "[yellow]compare: the contenders answer questions, and data.format text has "
                "none: only the base and fine-tuned models are compared (on perplexity). "
                "Give data.questions to compare continued pre-training with RAG"
            )
        if split == "test":  # a search compares on validation without them
            self._score_contenders(console, ("few-shot", "rag"), self.model)
        return scores

    def _as_run(self, name: str, metrics: dict, answers: list[str], split: str) -> ContenderRun:
        """The base or fine-tuned model's answers as a contender (cost from their metrics)."""
        examples = self.task.generation_examples(split)
        tokens = [
            min(len(ids), self.task.max_length)
            for ids in self.task.encode([ex.messages[:-1] for ex in examples])
        ]
        seconds = metrics.get("seconds_per_answer", 0.0) * len(answers)
        return ContenderRun(name, answers, tokens, seconds)

    def _score_contenders(self, console: Console, names: tuple[str, ...], model: nn.Module) -> None:
        """The recipe's contenders among `names`, on the test prompts, with `model`."""
        wanted = [name for name in names if name in (self.recipe.compare or ())]
        if not wanted:
            return
        if self.contenders is None:
            return
        if not self.contenders.indexes:
            self.contenders.open(None, console)
        if "few-shot" in wanted and not self.contenders.pairs:
            console.print("[yellow]compare: few-shot needs question/answer training pairs")
            wanted.remove("few-shot")
        for name in wanted:
            console.print(f"Scoring the {name} contender on {len(self.questions)} prompts ...")
            self.runs[name] = self.contenders.run(name, model, self.questions)

    def _base_answers(self, console: Console, split: str) -> tuple[dict, list[str]]:
        """The base model's metrics and answers on `split`; from the cache when this model
        has answered these prompts with these settings before."""

        def compute() -> tuple[dict, list[str]]:
            metrics, answers = self.task.evaluate_answers(self.model, split)
            return metrics, answers.answers

        if self.recipe.generation.do_sample:
            return compute()
        scores, hit = cached_base_scores(self.folder, self.task.scoring_inputs(split), compute)
        if hit:
            console.print("Base model's test scores and answers: from the cache")
        return scores

    def score_after(self, model: nn.Module) -> dict:
        """Test metrics of the tuned model; its answers are kept for generations.jsonl."""
        if self.task.is_text:
            if self.questions:
                self.runs["fine-tuned"] = self.contenders.answer_plain(
                    "fine-tuned", model, self.questions
                )
                self._score_contenders(Console(), ("fine-tuned+rag",), model)
            return self.task.evaluate(model, "test", detailed=True)
        scores, self.tuned = self.task.evaluate_answers(model, "test")
        self.runs["fine-tuned"] = self._as_run("fine-tuned", scores, self.tuned.answers, "test")
        self._score_contenders(Console(), ("fine-tuned+rag",), model)
        return scores

    def init_head(self, console: Console) -> None:
        """The head starts as the model made it (random, or none for an LLM)."""

    def test_examples(self) -> None:
        """No per-example results: perplexity is pooled over the test tokens (metrics per
        slice are skipped; the data check still counts each slice's rows)."""
        return None

    def head_parameters(self) -> set[int]:
        return set()

    def finish(self, model: nn.Module, output: Path) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "format": self.splits.format,
            "splits": {name: len(self.splits.split(name)) for name in SPLITS},
            "truncated": self.task.truncated,
            "unscored": self.task.unscored,
        }
        if not self.questions:
            return extra
        prompts = [_prompt_text(ex.messages[:-1]) for ex in self.questions]
        references = [ex.messages[-1]["content"] for ex in self.questions]
        pairs = self.contenders.pairs if self.contenders is not None else []
        rows = generation_rows(self.runs, prompts, references, pairs)
        with (output / RunFolder.GENERATIONS).open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        extra["samples"] = rows[: self.recipe.generation.samples]
        extra["contenders"], extra["verdict"] = summarise(self.runs, references)
        if self.task.is_text:
            extra["questions"] = {"source": self.recipe.data.questions, "count": len(rows)}
        if self.contenders is not None and self.contenders.indexes:
            self.contenders.save(output / RunFolder.RETRIEVAL)
            rag = self.runs.get("rag") or self.runs.get("fine-tuned+rag")
            hits = rag.retrieved if rag is not None else []
            extra["retrieval"] = self.contenders.retrieval_summary(hits, self.questions)
        return extra

    def forgetting_measure(self, reference: str) -> LanguageModelPerplexity:
        paragraphs = measured_half(reference_paragraphs(reference))[:REFERENCE_PARAGRAPHS]
        split = LMSplit([LMExample(row=i, text=p) for i, p in enumerate(paragraphs)], reference)
        task = CausalLMTask(
            LMSplits(split, split, split, "text"),
            self.tokenizer,
            min(256, self.recipe.preprocess.max_length or 256),
            self.task.device,
            self.task.dtype,
            eval_batch_size=self.task.eval_batch_size,
            chunk_overlap=0,
            preprocessor=self.task.preprocessor,
        )
        return LanguageModelPerplexity(task)

    def save(self, model: nn.Module, output: Path, adapter: bool) -> Path:
        return save_pretrained_model(model, self.tokenizer, output, adapter)

    def _retrieval_baseline(self, split: str) -> dict:
        """Answer each prompt of `split` with the training answer of its most similar training
        prompt (TF-IDF cosine): what a search box over the data would give, for free."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        train = [ex for ex in self.splits.train.examples if ex.messages is not None]  # no replay
        test = self.task.generation_examples(split)
        vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1)
        train_matrix = vectorizer.fit_transform([_prompt_text(ex.messages[:-1]) for ex in train])
        test_matrix = vectorizer.transform([_prompt_text(ex.messages[:-1]) for ex in test])
        nearest = (test_matrix @ train_matrix.T).toarray().argmax(axis=1)
        answers = [train[i].messages[-1]["content"] for i in nearest]
        scores = generation_metrics(answers, [ex.messages[-1]["content"] for ex in test])
        scores["description"] = "nearest training prompt's answer (TF-IDF retrieval)"
        return scores


def read_questions(recipe: Recipe) -> list[LMExample]:
    """data.questions as question/answer examples (the first generation.max_examples)."""
    from tunesmith.errors import UserError

    path = recipe.data.questions
    questions = load_lm_file(path, recipe.data, role="data.questions", format="auto")
    if not questions.examples or questions.examples[0].messages is None:
        raise UserError(
            f"data.questions: {path} holds raw text; give questions with their answers "
            "(prompt/response, alpaca instruction/output or chat messages)"
        )
    limit = recipe.generation.max_examples
    return questions.examples[:limit] if limit else questions.examples


def training_documents(split: LMSplit) -> list[Document]:
    """A domain run's training texts as the knowledge source of its RAG contenders."""
    names = document_names(split)
    return [Document(name, ex.text or "") for name, ex in zip(names, split.examples, strict=True)]


def _prompt_text(messages: list[dict[str, str]]) -> str:
    """The user's side of a prompt as plain text (system messages left out)."""
    return "\n".join(m["content"] for m in messages if m["role"] != "system")
