"""The report's "Fine-tune or RAG?" section: the source document's comparison of the two,
filled with this run's numbers, every contender's scores and cost side by side, and the
verdict of the paired bootstrap (metrics.json: contenders, verdict, retrieval)."""

from __future__ import annotations

from typing import Any

from tunesmith.evaluate.contenders import Difference, verdict_sentence
from tunesmith.i18n import N_, _
from tunesmith.report import fmt

LABELS = {
    "base": N_("Base model"),
    "few-shot": N_("Few-shot prompt"),
    "rag": N_("RAG (base model)"),
    "fine-tuned": N_("Fine-tuned"),
    "fine-tuned+rag": N_("Fine-tuned + RAG"),
}
DESCRIPTIONS = {
    "base": N_("the untuned model, the question alone"),
    "few-shot": N_("the untuned model, the most similar training pairs before the question"),
    "rag": N_("the untuned model, retrieved passages before the question"),
    "fine-tuned": N_("the tuned model, the question alone"),
    "fine-tuned+rag": N_("the tuned model, retrieved passages before the question"),
}
SCORES = (("rouge_l", "ROUGE-L"), ("token_f1", N_("Token F1")), ("exact_match", N_("Exact match")))


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
        "sentence": sentence(verdict),
        "table": comparison_table(metrics, contenders, retrieval),
        "columns": [_(title) for _key, title in SCORES],
        "rows": contender_rows(metrics, contenders, verdict),
        "retrieval": retrieval_rows(retrieval),
        "prompts": fmt.value(verdict.get("prompts")),
    }


def sentence(verdict: dict[str, Any]) -> str:
    """The verdict's sentence written again from its numbers, in the language being written
    (metrics.json keeps the English one); the stored sentence when the numbers are missing."""
    stored = str(verdict.get("sentence") or "")
    try:
        against = {
            name: Difference(float(d["mean"]), float(d["low"]), float(d["high"]))
            for name, d in verdict["differences"].items()
        }
        means = {name: float(value) for name, value in verdict["means"].items()}
        return verdict_sentence(
            verdict["best"],
            verdict.get("runner_up"),
            verdict.get("cheapest_within_noise") or verdict["best"],
            means,
            against,
            str(verdict.get("metric") or "rouge_l"),
            int(verdict["prompts"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return stored


def _one_off(metrics: dict[str, Any], name: str, retrieval: dict[str, Any]) -> str:
    """What a contender costs before its first answer."""
    index = retrieval.get("build_seconds")
    # the training phase with its evaluations (not the whole command, which also scored
    # every contender), else the training steps alone
    train = _mapping(metrics.get("phase_seconds")).get("training") or metrics.get("train_seconds")
    parts = []
    if name in ("fine-tuned", "fine-tuned+rag") and fmt.is_number(train):
        parts.append(_("training {time}").format(time=fmt.unit(train, "s")))
    if name in ("rag", "few-shot", "fine-tuned+rag") and fmt.is_number(index):
        parts.append(_("index {time}").format(time=fmt.unit(index, "s")))
    return " + ".join(parts) or _("none")


def contender_rows(
    metrics: dict[str, Any], contenders: dict[str, Any], verdict: dict[str, Any]
) -> list[dict[str, Any]]:
    best = verdict.get("best")
    differences = _mapping(verdict.get("differences"))
    retrieval = _mapping(metrics.get("retrieval"))
    top = {key: _top(contenders, key) for key, _title in SCORES}
    rows = []
    for name, scores in contenders.items():
        scores = _mapping(scores)
        gap = _mapping(differences.get(name))
        interval = ""
        if name == best:
            versus = _("best")
        elif gap:
            versus = fmt.signed(-gap["mean"])
            interval = f"[{fmt.signed(-gap['high'])}, {fmt.signed(-gap['low'])}]"
            interval += " " + _("within noise") if gap.get("within_noise") else ""
        else:
            versus = fmt.MISSING
        rows.append(
            {
                "label": _(LABELS[name]) if name in LABELS else name,
                "description": _(DESCRIPTIONS[name]) if name in DESCRIPTIONS else "",
                "cells": [
                    {
                        "text": fmt.number(scores.get(key)),
                        "best": fmt.is_number(scores.get(key)) and scores.get(key) == top[key],
                    }
                    for key, _title in SCORES
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
    source = retrieval.get("source") or _("the knowledge source")
    passages = retrieval.get("passages")
    index = (
        _("an index of {count} passages of {source}").format(
            count=fmt.count(passages), source=source
        )
        if fmt.is_number(passages)
        else _("an index of {source}").format(source=source)
    )
    rows = [
        (
            _("What changes"),
            _("the model's weights ({trainable} trained)").format(trainable=_trainable(metrics)),
            _("nothing in the model: {index} is searched at answer time").format(index=index),
        ),
        (
            _("Knowledge"),
            _("what the training data taught, fixed until the next training run"),
            _("whatever the documents say now: update them and rebuild the index, no training"),
        ),
        (
            _("Suited to"),
            _("a task's behaviour, style, format and vocabulary"),
            _("facts, fresh information, answers traceable to a source"),
        ),
        (
            _("One-off cost"),
            _one_off(metrics, "fine-tuned", retrieval),
            _one_off(metrics, "rag", retrieval),
        ),
        (
            _("Cost per answer"),
            _per_answer(tuned),
            _per_answer(rag),
        ),
        (
            _("Quality here (ROUGE-L)"),
            fmt.number(tuned.get("rouge_l")),
            fmt.number(rag.get("rouge_l")),
        ),
    ]
    return rows


def _trainable(metrics: dict[str, Any]) -> str:
    params = _mapping(metrics.get("params"))
    trainable = params.get("trainable")
    if fmt.is_number(trainable):
        return _("{count} parameters").format(count=fmt.count(trainable))
    return _("parameters")


def _per_answer(scores: dict[str, Any]) -> str:
    tokens, seconds = scores.get("prompt_tokens"), scores.get("seconds_per_answer")
    if not fmt.is_number(tokens):
        return fmt.MISSING
    text = _("{count} prompt tokens").format(count=fmt.quantity(tokens))
    if fmt.is_number(seconds):
        text += ", " + _("{value} s").format(value=fmt.number(seconds))
    return text


def retrieval_rows(retrieval: dict[str, Any]) -> list[tuple[str, str]]:
    if not retrieval:
        return []
    rows = [(_("Knowledge source"), fmt.value(retrieval.get("source")))]
    documents, passages = retrieval.get("documents"), retrieval.get("passages")
    if fmt.is_number(passages):
        text = _("{passages} from {documents} documents").format(
            passages=fmt.count(passages), documents=fmt.count(documents)
        )
        rows.append((_("Passages"), text))
    ranking = str(retrieval.get("ranking") or "")
    if retrieval.get("embedder"):
        ranking += f" ({retrieval['embedder']})"
    rows.append((_("Ranking"), ranking or fmt.MISSING))
    rows.append((_("Passages per prompt"), fmt.value(retrieval.get("top_k"))))
    if fmt.is_number(retrieval.get("recall_at_k")):
        asked = retrieval.get("recall_questions")
        on = (
            " " + _("on {count} questions that name their document").format(count=fmt.count(asked))
            if asked
            else ""
        )
        rows.append(
            (
                f"Recall@{retrieval.get('top_k')}",
                f"{fmt.number(retrieval['recall_at_k'])}{on}",
            )
        )
    build = retrieval.get("build_seconds")
    if fmt.is_number(build):
        reused = " " + _("(reused)") if retrieval.get("reused") else ""
        rows.append((_("Index build time"), fmt.unit(build, "s") + reused))
    return rows
