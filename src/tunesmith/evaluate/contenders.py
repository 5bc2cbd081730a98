"""Fine-tune or retrieve? The contenders scored beside a generative fine-tune on the same
test prompts, and the verdict between them.

- base: the untuned model;
- few-shot: the base model, its prompt led by the most similar training pairs;
- rag: the base model, its prompt led by passages retrieved from the knowledge source;
- fine-tuned, and fine-tuned+rag: the tuned model without and with those passages.

The prompts are assembled here in words (task kinds render them in their own templates),
within a token budget: passages are cut to fit, the question never. The verdict compares
per-prompt scores with a paired bootstrap, so a difference a different draw of test
prompts could erase is called noise, and the cheapest option within noise of the best is
named.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tunesmith.evaluate.generation import exact_match, rouge_l, token_f1
from tunesmith.i18n import N_, _
from tunesmith.i18n import number as localized

VERDICT_METRIC = "rouge_l"
"""The per-prompt score the verdict compares (the headline generation metric)."""
RESAMPLES = 2000
CONFIDENCE = 0.95
MIN_PASSAGE_CHARS = 80
"""A passage cut shorter than this to fit the budget is left out instead."""

COST_ORDER = ("base", "few-shot", "rag", "fine-tuned", "fine-tuned+rag")
"""Cheapest first: no work; a longer prompt; a longer prompt and an index; a training
run; a training run, an index and a longer prompt."""
USES_RETRIEVAL = {"few-shot", "rag", "fine-tuned+rag"}
TUNED = {"fine-tuned", "fine-tuned+rag"}

RAG_INSTRUCTION = (
    "Answer the question using the passages below where they are relevant. "
    "Answer briefly and do not mention the passages."
)

SCORERS: dict[str, Callable[[str, str], float]] = {
    "rouge_l": rouge_l,
    "exact_match": exact_match,
    "token_f1": token_f1,
}


def rag_question(question: str, passages: Sequence[str]) -> str:
    """The user's turn of a RAG prompt: the instruction, numbered passages, the question."""
    if not passages:
        return question
    context = "\n\n".join(f"[{i}] {text}" for i, text in enumerate(passages, start=1))
    return f"{RAG_INSTRUCTION}\n\nPassages:\n{context}\n\nQuestion: {question}"


def pair_passage(question: str, answer: str) -> str:
    """A training pair as a passage of the knowledge source (when data.documents is unset)."""
    return f"Question: {question}\nAnswer: {answer}"


def fit_passages(passages: Sequence[str], tokens_with: Callable[[list[str]], int], budget: int):
    """The leading passages whose prompt stays within `budget` tokens (`tokens_with(kept)`
    measures the whole prompt); the first one that does not fit is cut at a word boundary
    to the length that does, or left out below MIN_PASSAGE_CHARS."""
    kept: list[str] = []
    for passage in passages:
        if tokens_with([*kept, passage]) <= budget:
            kept.append(passage)
            continue
        low, high = 0, len(passage)
        while low < high:  # the longest prefix that fits
            middle = (low + high + 1) // 2
            if tokens_with([*kept, _cut(passage, middle)]) <= budget:
                low = middle
            else:
                high = middle - 1
        cut = _cut(passage, low)
        if len(cut) >= MIN_PASSAGE_CHARS:
            kept.append(cut)
        break
    return kept


def _cut(text: str, chars: int) -> str:
    if chars >= len(text):
        return text
    head = text[:chars]
    space = head.rfind(" ")
    return (head[:space] if space > chars // 2 else head).rstrip() + " ..."


def per_prompt_scores(answers: Sequence[str], references: Sequence[str]) -> dict[str, list]:
    """Each metric's score of every (answer, reference) pair."""
    return {
        name: [score(a, r) for a, r in zip(answers, references, strict=True)]
        for name, score in SCORERS.items()
    }


@dataclass(frozen=True)
class Difference:
    mean: float
    """Mean of first minus second over the prompts."""
    low: float
    high: float
    """The CONFIDENCE interval of the mean difference (paired bootstrap)."""

    @property
    def within_noise(self) -> bool:
        return self.low <= 0.0 <= self.high


def paired_bootstrap(
    first: Sequence[float], second: Sequence[float], resamples: int = RESAMPLES, seed: int = 0
) -> Difference:
    """The mean of first - second over the same prompts, with a percentile interval from
    resampling the prompts (each resample keeps a prompt's two scores together)."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("paired scores need the same, non-zero number of prompts")
    differences = a - b
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(differences), size=(resamples, len(differences)))
    means = differences[draws].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Difference(float(differences.mean()), float(low), float(high))


def verdict(scores: dict[str, Sequence[float]], metric: str = VERDICT_METRIC) -> dict:
    """The best contender by mean score, each other one's difference from it, and the
    cheapest contender within noise of the best (COST_ORDER): what to pay for."""
    means = {name: float(np.mean(values)) for name, values in scores.items()}
    best = max(means, key=lambda name: (means[name], -_cost_rank(name)))
    against = {
        name: paired_bootstrap(scores[best], values)
        for name, values in scores.items()
        if name != best
    }
    tied = [name for name, diff in against.items() if diff.within_noise]
    cheapest = min([best, *tied], key=_cost_rank)
    runner_up = max(against, key=lambda name: means[name]) if against else None
    return {
        "metric": metric,
        "prompts": len(scores[best]),
        "best": best,
        "runner_up": runner_up,
        "cheapest_within_noise": cheapest,
        "means": means,
        "differences": {
            name: {"mean": d.mean, "low": d.low, "high": d.high, "within_noise": d.within_noise}
            for name, d in against.items()
        },
        "sentence": verdict_sentence(
            best, runner_up, cheapest, means, against, metric, len(scores[best])
        ),
    }


def verdict_sentence(
    best: str,
    runner_up: str | None,
    cheapest: str,
    means: dict[str, float],
    against: dict[str, Difference],
    metric: str,
    prompts: int,
) -> str:
    """One sentence a business reader can act on: who wins, by how much, or which cheaper
    option is as good within the noise of this many test prompts."""
    shown = _(METRIC_NAMES[metric]) if metric in METRIC_NAMES else metric

    def score(name: str) -> str:
        return localized(f"{means[name]:.3f}")

    if runner_up is None:
        return _("Only {best} was scored ({metric} {score}).").format(
            best=best, metric=shown, score=score(best)
        )
    gap = against[runner_up]
    interval = _("95% interval {low} to {high}, {prompts} prompts").format(
        low=localized(f"{gap.low:+.3f}"), high=localized(f"{gap.high:+.3f}"), prompts=prompts
    )
    tied = [name for name, difference in against.items() if difference.within_noise]
    if cheapest != best:
        return _(
            "{best} scored best ({metric} {score}), but {cheapest} is within noise of it "
            "({cheapest_score}; paired bootstrap over {prompts} prompts) and costs less: "
            "choose {cheapest}."
        ).format(
            best=_sentence_start(_label(best)), metric=shown, score=score(best),
            cheapest=_label(cheapest), cheapest_score=score(cheapest), prompts=prompts,
        )  # fmt: skip
    if tied:
        others = _listed([f"{_label(name)} ({score(name)})" for name in tied])
        return _(
            "{best} scored best ({metric} {score}), and is the cheapest of the options within "
            "noise of it: {others} ({interval} for the next best). Choose {chosen}; more test "
            "prompts would be needed to separate them."
        ).format(
            best=_sentence_start(_label(best)), metric=shown, score=score(best), others=others,
            interval=interval, chosen=_label(best),
        )  # fmt: skip
    return _(
        "{what} wins: {best} scored {metric} {score} against {next_score} for {next}, the next "
        "best ({gap}, {interval}); every other option is further behind."
    ).format(
        what=_what_wins(best), best=_label(best), metric=shown, score=score(best),
        next_score=score(runner_up), next=_label(runner_up),
        gap=localized(f"{gap.mean:+.3f}"), interval=interval,
    )  # fmt: skip


def _sentence_start(text: str) -> str:
    return text[:1].upper() + text[1:]


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else _(", ").join(items[:-1]) + _(" and ") + items[-1]


def _what_wins(name: str) -> str:
    if name == "fine-tuned+rag":
        return _("Fine-tuning and retrieval together")
    if name == "fine-tuned":
        return _("Fine-tuning")
    if name in ("rag", "few-shot"):
        return _("Retrieval without fine-tuning")
    return _("The untuned model")


def _label(name: str) -> str:
    return _(LABELS[name]) if name in LABELS else name


def _cost_rank(name: str) -> int:
    return COST_ORDER.index(name) if name in COST_ORDER else len(COST_ORDER)


LABELS = {
    "base": N_("the base model"),
    "few-shot": N_("few-shot prompting"),
    "rag": N_("RAG on the base model"),
    "fine-tuned": N_("the fine-tuned model"),
    "fine-tuned+rag": N_("the fine-tuned model with RAG"),
}
METRIC_NAMES = {"rouge_l": "ROUGE-L", "token_f1": N_("token F1"), "exact_match": N_("exact match")}
