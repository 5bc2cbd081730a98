"""The few-shot and RAG contenders of a causal LM run (evaluate/contenders.py says what
they are): their prompts in the model's chat template, their answers, what each costs.

The knowledge source is data.documents cut into passages, else the training pairs
themselves (each pair one passage); few-shot prompts draw on the training pairs. Both
indexes live in the run folder (`retrieval/documents`, `retrieval/pairs`) and are reused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from torch import nn

from tunesmith.data.causal import LMExample, Message
from tunesmith.data.documents import Document, Passage, chunk_documents, read_documents
from tunesmith.evaluate.contenders import (
    VERDICT_METRIC,
    fit_passages,
    pair_passage,
    per_prompt_scores,
    rag_question,
    verdict,
)
from tunesmith.evaluate.generation import generation_metrics
from tunesmith.evaluate.retrieval import Hit, Retriever, open_retriever, recall_at_k
from tunesmith.recipe import Recipe
from tunesmith.tasks.causal_lm.task import CausalLMTask

PAIRS, DOCUMENTS = "pairs", "documents"


@dataclass
class ContenderRun:
    """One contender's answers to the scored prompts, and their cost."""

    name: str
    answers: list[str]
    prompt_tokens: list[int]
    seconds: float
    passages: list[list[Hit]] = field(default_factory=list)
    """rag: the passages put in each prompt (after fitting the budget)."""
    retrieved: list[list[Hit]] = field(default_factory=list)
    """rag: the top_k passages retrieval found for each prompt (before fitting)."""
    shots: list[list[int]] = field(default_factory=list)
    """few-shot: the training pairs (indexes into the pairs) put in each prompt."""

    def metrics(self, references: list[str]) -> dict:
        scores = generation_metrics(self.answers, references)
        scores["generated"] = len(self.answers)
        if self.answers:
            scores["seconds_per_answer"] = round(self.seconds / len(self.answers), 4)
            scores["prompt_tokens"] = round(sum(self.prompt_tokens) / len(self.answers), 1)
        return scores


class Contenders:
    """Builds the indexes once and runs few-shot, rag and fine-tuned+rag on a task's
    generation prompts."""

    def __init__(
        self,
        task: CausalLMTask,
        recipe: Recipe,
        train: list[LMExample],
        documents: list[Document] | None = None,
    ) -> None:
        """`documents`: the knowledge source when data.documents is unset (a domain run's
        own training texts); else the training pairs are. data.documents is read here,
        before any work, so a bad file stops the run before it starts."""
        self.task = task
        self.recipe = recipe
        self.config = recipe.retrieval
        self.pairs = [ex for ex in train if ex.messages is not None and ex.row >= 0]
        self.pair_passages = [
            Passage(i, f"train row {ex.row}", pair_passage(_question(ex.messages), _answer(ex)))
            for i, ex in enumerate(self.pairs)
        ]
        self.indexes: dict[str, Retriever] = {}
        self.source = "training pairs"
        self.documents = 0
        self.document_passages: list[Passage] = []
        if {"rag", "fine-tuned+rag"} & set(recipe.compare or ()) and (self._docs or documents):
            if self._docs:
                documents = read_documents(self._docs)
            self.source = self._docs or "the training documents"
            self.documents = len(documents)
            self.document_passages = chunk_documents(
                documents, self.config.chunk_size, self.config.chunk_overlap
            )

    # -- indexes ------------------------------------------------------------------------

    def open(self, folder: Path | None, console: Console) -> None:
        """Build (or, from `folder`, reuse) the indexes the recipe's contenders need."""
        wanted = set(self.recipe.compare or ())
        rag = {"rag", "fine-tuned+rag"} & wanted
        if self.pairs and ("few-shot" in wanted or (rag and not self.document_passages)):
            self.indexes[PAIRS] = self._open(PAIRS, self.pair_passages, folder, console)
        if rag and self.document_passages:
            self.indexes[DOCUMENTS] = self._open(DOCUMENTS, self.document_passages, folder, console)

    @property
    def _docs(self) -> str | None:
        return self.recipe.data.documents

    def _open(
        self, name: str, passages: list[Passage], folder: Path | None, console: Console
    ) -> Retriever:
        what = "the training pairs" if name == PAIRS else self.source
        if folder is None:
            retriever = Retriever.build(passages, self.config)
        else:
            retriever = open_retriever(folder / name, passages, self.config)
        state = "reused" if retriever.reused else f"built in {retriever.build_seconds:.1f} s"
        console.print(
            f"Retrieval index of {what}: {len(passages)} passages, {self.config.ranking} "
            f"ranking ({state})"
        )
        return retriever

    def save(self, folder: Path) -> None:
        for name, retriever in self.indexes.items():
            if not retriever.reused:
                retriever.save(folder / name)

    @property
    def knowledge(self) -> Retriever:
        return self.indexes[DOCUMENTS if self.document_passages else PAIRS]

    # -- contenders ---------------------------------------------------------------------

    def run(
        self,
        name: str,
        model: nn.Module,
        examples: list[LMExample],
        answer_tokens: int | None = None,
    ) -> ContenderRun:
        """`name` (few-shot, rag or fine-tuned+rag) answering the examples' prompts with
        `model`, in at most `answer_tokens` (default: what the references need)."""
        prompts = [ex.messages[:-1] for ex in examples]
        references = [ex.messages[-1]["content"] for ex in examples]
        answer = answer_tokens or self.task.answer_budget(references)
        budget = self.prompt_budget(model, answer)
        questions = [_question(p) for p in prompts]
        passages: list[list[Hit]] = []
        retrieved: list[list[Hit]] = []
        shots: list[list[int]] = []
        if name == "few-shot":
            hits = self.indexes[PAIRS].search(questions, self.config.shots + 1)
            shots = [self._shots(h, q) for h, q in zip(hits, questions, strict=True)]
            assembled = [self._few_shot(p, s, budget) for p, s in zip(prompts, shots, strict=True)]
            shots = [kept for _, kept in assembled]
            prompts = [messages for messages, _ in assembled]
        else:
            hits = retrieved = self.knowledge.search(questions, self.config.top_k)
            assembled = [self._rag(p, h, budget) for p, h in zip(prompts, hits, strict=True)]
            prompts = [messages for messages, _ in assembled]
            passages = [kept for _, kept in assembled]
        tokens = [len(ids) for ids in self.task.encode(prompts)]
        started = time.perf_counter()
        answers = self.task.generate(model, prompts, answer, max_prompt_tokens=budget)
        seconds = time.perf_counter() - started
        return ContenderRun(name, answers, tokens, seconds, passages, retrieved, shots)

    def answer_plain(self, name: str, model: nn.Module, examples: list[LMExample]) -> ContenderRun:
        """The base or fine-tuned contender: the question alone."""
        prompts = [ex.messages[:-1] for ex in examples]
        references = [ex.messages[-1]["content"] for ex in examples]
        tokens = [min(len(ids), self.task.max_length) for ids in self.task.encode(prompts)]
        started = time.perf_counter()
        answers = self.task.generate(model, prompts, self.task.answer_budget(references))
        return ContenderRun(name, answers, tokens, time.perf_counter() - started)

    def prompt_budget(self, model: nn.Module, answer_tokens: int) -> int:
        """Tokens a prompt may take: retrieval.max_prompt_tokens within the model's context,
        less the answer's."""
        context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        limit = min(self.config.max_prompt_tokens, context or self.config.max_prompt_tokens)
        return max(limit - answer_tokens, 16)

    def _tokens(self, messages: list[Message]) -> int:
        return len(self.task.encode([messages])[0])

    def _shots(self, hits: list[Hit], question: str) -> list[int]:
        """The most similar training pairs, the question's own pair (a duplicate in the
        training data) left out."""
        chosen = [
            h.passage.id
            for h in hits
            if _question(self.pairs[h.passage.id].messages).strip() != question.strip()
        ]
        return chosen[: self.config.shots]

    def _few_shot(
        self, prompt: list[Message], shots: list[int], budget: int
    ) -> tuple[list[Message], list[int]]:
        """The prompt led by the shots as earlier turns, as many as fit the budget (the
        least similar dropped first)."""
        system = [m for m in prompt if m["role"] == "system"]
        rest = [m for m in prompt if m["role"] != "system"]
        kept = list(shots)
        while True:
            turns = [m for i in kept for m in _as_turns(self.pairs[i].messages)]
            messages = [*system, *turns, *rest]
            if not kept or self._tokens(messages) <= budget:
                return messages, kept
            kept.pop()

    def rag_prompt(self, prompt: list[Message], budget: int) -> tuple[list[Message], list[Hit]]:
        """One prompt led by the passages its last question retrieves (serve's requests)."""
        hits = self.knowledge.search([_question(prompt)], self.config.top_k)[0]
        return self._rag(prompt, hits, budget)

    def _rag(
        self, prompt: list[Message], hits: list[Hit], budget: int
    ) -> tuple[list[Message], list[Hit]]:
        """The prompt with its last user turn led by the passages that fit the budget."""
        last = max(i for i, m in enumerate(prompt) if m["role"] == "user")
        question = prompt[last]["content"]

        def with_passages(texts: list[str]) -> list[Message]:
            turn = {**prompt[last], "content": rag_question(question, texts)}
            return [*prompt[:last], turn, *prompt[last + 1 :]]

        texts = fit_passages(
            [h.passage.text for h in hits], lambda t: self._tokens(with_passages(t)), budget
        )
        kept = [
            Hit(Passage(h.passage.id, h.passage.source, text), h.score)
            for h, text in zip(hits, texts, strict=False)
        ]
        return with_passages(texts), kept

    # -- summary --------------------------------------------------------------------------

    def retrieval_summary(self, hits: list[list[Hit]], examples: list[LMExample]) -> dict:
        """What the knowledge source was, what the index cost, and recall@k where the
        data names each question's document (data.source_column)."""
        index = self.knowledge
        summary = {
            "source": self.source,
            "documents": self.documents if self.document_passages else len(self.pairs),
            "passages": len(index.passages),
            "ranking": self.config.ranking,
            "embedder": self.config.embedder if self.config.ranking != "bm25" else None,
            "top_k": self.config.top_k,
            "chunk_size": self.config.chunk_size if self.document_passages else None,
            "build_seconds": index.build_seconds,
            "reused": index.reused,
        }
        if self.document_passages and hits:
            recall = recall_at_k(hits, [ex.source for ex in examples])
            if recall is not None:
                summary["recall_at_k"] = round(recall, 4)
                summary["recall_questions"] = sum(bool(ex.source) for ex in examples)
        return summary


def summarise(runs: dict[str, ContenderRun], references: list[str]) -> tuple[dict, dict]:
    """Each contender's metrics and cost, and the verdict from the per-prompt scores."""
    metrics = {name: run.metrics(references) for name, run in runs.items()}
    scores = {
        name: per_prompt_scores(run.answers, references)[VERDICT_METRIC]
        for name, run in runs.items()
    }
    return metrics, verdict(scores)


def generation_rows(
    runs: dict[str, ContenderRun], prompts: list[str], references: list[str], pairs: list
) -> list[dict]:
    """generations.jsonl: per prompt, the reference, each contender's answer and score, the
    passages a RAG prompt held and the training rows a few-shot prompt held."""
    per_prompt = {name: per_prompt_scores(run.answers, references) for name, run in runs.items()}
    rows = []
    for i, (prompt, reference) in enumerate(zip(prompts, references, strict=True)):
        row: dict = {"prompt": prompt, "reference": reference}
        for name, run in runs.items():
            row[ROW_KEYS.get(name, name)] = run.answers[i]
        row["scores"] = {
            name: {metric: round(values[i], 4) for metric, values in scores.items()}
            for name, scores in per_prompt.items()
        }
        with_passages = next((r for r in runs.values() if r.passages), None)
        if with_passages is not None:
            row["passages"] = [
                {"source": h.passage.source, "score": round(h.score, 4), "text": h.passage.text}
                for h in with_passages.passages[i]
            ]
        shots = runs.get("few-shot")
        if shots is not None and shots.shots:
            row["shots"] = [pairs[j].row for j in shots.shots[i]]
        rows.append(row)
    return rows


ROW_KEYS = {"fine-tuned": "fine_tuned", "few-shot": "few_shot", "fine-tuned+rag": "fine_tuned_rag"}
"""generations.jsonl keys of the contenders (base and fine_tuned as before)."""


def _question(messages: list[Message]) -> str:
    """The last user turn: what is asked (and what retrieval searches with)."""
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def _answer(example: LMExample) -> str:
    return example.messages[-1]["content"]


def _as_turns(messages: list[Message]) -> list[Message]:
    """A training conversation as earlier turns of a prompt (its system message left out)."""
    return [m for m in messages if m["role"] != "system"]
