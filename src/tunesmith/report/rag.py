"""The report's "Fine-tune or RAG?" section: the source document's comparison of the two,
filled with this run's numbers, every contender's scores and cost side by side, and the
verdict of the paired bootstrap (metrics.json: contenders, verdict, retrieval)."""

from __future__ import annotations

from typing import Any

from tunesmith.report import fmt

LABELS = {
    "base": "Base model",
    "few-shot": "Few-shot prompt",
    "rag": "RAG (base model)",
    "fine-tuned": "Fine-tuned",
    "fine-tuned+rag": "Fine-tuned + RAG",
}
DESCRIPTIONS = {
    "base": "the untuned model, the question alone",
    "few-shot": "the untuned model, the most similar training pairs before the question",
    "rag": "the untuned model, retrieved passages before the question",
    "fine-tuned": "the tuned model, the question alone",
    "fine-tuned+rag": "the tuned model, retrieved passages before the question",
}
SCORES = (("rouge_l", "ROUGE-L"), ("token_f1", "Token F1"), ("exact_match", "Exact match"))


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def rag_section(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """Template data of the section; None for a run without contenders."""
    contenders = _mapping(metrics.get("contenders"))
    if len(contenders) < 2:
        return None
    verdict = _mapping(metrics.get("verdict"))
    retrieval = _mapping(metrics.get("retrieval"))
    return {
        "sentence": str(verdict.get("sentence") or ""),
        "table": comparison_table(metrics, contenders, retrieval),
        "columns": [title for _, title in SCORES],
        "rows": contender_rows(metrics, contenders, verdict),
        "retrieval": retrieval_rows(retrieval),
        "prompts": fmt.value(verdict.get("prompts")),
    }


def _one_off(metrics: dict[str, Any], name: str, retrieval: dict[str, Any]) -> str:
    """What a contender costs before its first answer."""
    index = retrieval.get("build_seconds")
    # the training phase with its evaluations (not the whole command, which also scored
    # every contender), else the training steps alone
    train = _mapping(metrics.get("phase_seconds")).get("training") or metrics.get("train_seconds")
    parts = []
    if name in ("fine-tuned", "fine-tuned+rag") and fmt.is_number(train):
        parts.append(f"training {fmt.quantity(train)} s")
    if name in ("rag", "few-shot", "fine-tuned+rag") and fmt.is_number(index):
        parts.append(f"index {fmt.quantity(index)} s")
    return " + ".join(parts) or "none"


def contender_rows(
    metrics: dict[str, Any], contenders: dict[str, Any], verdict: dict[str, Any]
) -> list[dict[str, Any]]:
    best = verdict.get("best")
    differences = _mapping(verdict.get("differences"))
    retrieval = _mapping(metrics.get("retrieval"))
    top = {key: _top(contenders, key) for key, _ in SCORES}
    rows = []
    for name, scores in contenders.items():
        scores = _mapping(scores)
        gap = _mapping(differences.get(name))
        interval = ""
        if name == best:
            versus = "best"
        elif gap:
            versus = fmt.signed(-gap["mean"])
            interval = f"[{fmt.signed(-gap['high'])}, {fmt.signed(-gap['low'])}]"
            interval += " within noise" if gap.get("within_noise") else ""
        else:
            versus = fmt.MISSING
        rows.append(
            {
                "label": LABELS.get(name, name),
                "description": DESCRIPTIONS.get(name, ""),
                "cells": [
                    {
                        "text": fmt.number(scores.get(key)),
                        "best": fmt.is_number(scores.get(key)) and scores.get(key) == top[key],
                    }
                    for key, _ in SCORES
                ],
                "prompt_tokens": fmt.quantity(scores.get("prompt_tokens")),
                "seconds": fmt.number(scores.get("seconds_per_answer")),
                "one_off": _one_off(metrics, name, retrieval),
                "versus": versus,
                "interval": interval,
                "is_best": name == best,
            }
        )
    return rows


def _top(contenders: dict[str, Any], key: str) -> float | None:
    """The best value of a score, None when every contender has the same (nothing stands
    out: all 0 exact matches are no one's win)."""
    values = [_mapping(c).get(key) for c in contenders.values()]
    values = [v for v in values if fmt.is_number(v)]
    return max(values) if values and len(set(values)) > 1 else None


def comparison_table(
    metrics: dict[str, Any], contenders: dict[str, Any], retrieval: dict[str, Any]
) -> list[tuple[str, str, str]]:
    """The source document's table of fine-tuning against RAG, with this run's numbers."""
    tuned, rag = _mapping(contenders.get("fine-tuned")), _mapping(contenders.get("rag"))
    source = retrieval.get("source") or "the knowledge source"
    passages = retrieval.get("passages")
    index = (
        f"an index of {fmt.count(passages)} passages of {source}"
        if fmt.is_number(passages)
        else f"an index of {source}"
    )
    rows = [
        (
            "What changes",
            f"the model's weights ({_trainable(metrics)} trained)",
            f"nothing in the model: {index} is searched at answer time",
        ),
        (
            "Knowledge",
            "what the training data taught, fixed until the next training run",
            "whatever the documents say now: update them and rebuild the index, no training",
        ),
        (
            "Suited to",
            "a task's behaviour, style, format and vocabulary",
            "facts, fresh information, answers traceable to a source",
        ),
        (
            "One-off cost",
            _one_off(metrics, "fine-tuned", retrieval),
            _one_off(metrics, "rag", retrieval),
        ),
        (
            "Cost per answer",
            _per_answer(tuned),
            _per_answer(rag),
        ),
        (
            "Quality here (ROUGE-L)",
            fmt.number(tuned.get("rouge_l")),
            fmt.number(rag.get("rouge_l")),
        ),
    ]
    return rows


def _trainable(metrics: dict[str, Any]) -> str:
    params = _mapping(metrics.get("params"))
    trainable = params.get("trainable")
    return f"{fmt.count(trainable)} parameters" if fmt.is_number(trainable) else "parameters"


def _per_answer(scores: dict[str, Any]) -> str:
    tokens, seconds = scores.get("prompt_tokens"), scores.get("seconds_per_answer")
    if not fmt.is_number(tokens):
        return fmt.MISSING
    timing = f", {fmt.number(seconds)} s" if fmt.is_number(seconds) else ""
    return f"{fmt.quantity(tokens)} prompt tokens{timing}"


def retrieval_rows(retrieval: dict[str, Any]) -> list[tuple[str, str]]:
    if not retrieval:
        return []
    rows = [("Knowledge source", fmt.value(retrieval.get("source")))]
    documents, passages = retrieval.get("documents"), retrieval.get("passages")
    if fmt.is_number(passages):
        rows.append(("Passages", f"{fmt.count(passages)} from {fmt.count(documents)} documents"))
    ranking = str(retrieval.get("ranking") or "")
    if retrieval.get("embedder"):
        ranking += f" ({retrieval['embedder']})"
    rows.append(("Ranking", ranking or fmt.MISSING))
    rows.append(("Passages per prompt", fmt.value(retrieval.get("top_k"))))
    if fmt.is_number(retrieval.get("recall_at_k")):
        asked = retrieval.get("recall_questions")
        on = f" on {fmt.count(asked)} questions that name their document" if asked else ""
        rows.append(
            (
                f"Recall@{retrieval.get('top_k')}",
                f"{fmt.number(retrieval['recall_at_k'])}{on}",
            )
        )
    build = retrieval.get("build_seconds")
    if fmt.is_number(build):
        reused = " (reused)" if retrieval.get("reused") else ""
        rows.append(("Index build time", f"{fmt.quantity(build)} s{reused}"))
    return rows
