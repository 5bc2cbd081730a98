"""The HTML report renders full and partial run folders, and never trusts user text."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tunesmith.report import write_report
from tunesmith.report.compare import verdict
from tunesmith.report.plots import learning_curves

LABELS = ["ai", "coding", "trivia"]
STOP_REASON = "macro_f1 did not improve for 2 evaluations"


def _per_class(f1: float) -> dict[str, dict[str, float]]:
    return {
        name: {"precision": f1, "recall": f1, "f1": f1, "support": 20 + i}
        for i, name in enumerate(LABELS)
    }


def _full_metrics() -> dict[str, Any]:
    return {
        "task": "text-classification",
        "method": "lora",
        "model": "builtin:minilm",
        "labels": LABELS,
        "splits": {"train": 800, "validation": 100, "test": 200},
        "params": {"total": 22_700_000, "trainable": 150_000},
        "precision": "fp32",
        "device": "cpu",
        "fine_tuned": {
            "loss": 0.41,
            "accuracy": 0.9,
            "macro_f1": 0.8766,
            "per_class": _per_class(0.85),
            "confusion_matrix": [[18, 2, 0], [1, 30, 0], [0, 0, 40]],
        },
        "base": {"accuracy": 0.8, "macro_f1": 0.78, "description": "frozen encoder + LR"},
        "baseline": {"accuracy": 0.75, "macro_f1": 0.7, "description": "TF-IDF + LR"},
        "train_seconds": 52.3,
        "peak_memory_mb": 1840.0,
        "best_step": 120,
        "stopped_early": True,
        "stop_reason": STOP_REASON,
        "early_stopping_metric": "macro_f1",
    }


def _write_run(run_dir: Path, metrics: dict[str, Any], history: list[dict[str, Any]]) -> None:
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    if history:
        lines = (json.dumps(row) for row in history)
        (run_dir / "history.jsonl").write_text("\n".join(lines) + "\n")


def _history() -> list[dict[str, Any]]:
    rows = [
        {
            "step": 40 * i,
            "epoch": float(i),
            "train_loss": 1.0 / i,
            "lr": 2e-4,
            "samples_per_s": 55.0,
            "val_loss": 0.9 / i,
            "val_accuracy": 0.6 + 0.05 * i,
            "val_macro_f1": 0.5 + 0.07 * i,
        }
        for i in range(1, 6)
    ]
    rows[2]["val_loss"] = None  # a missing point must not break the plot
    return rows


def test_full_run_folder_renders_every_section(tmp_path: Path) -> None:
    recipe = {
        "task": "text-classification",
        "model": "builtin:minilm",
        "data": {"train": "train.csv", "test": "test.csv", "label_column": "label"},
        "method": {"name": "lora", "r": 8},
        "train": {"epochs": 5, "learning_rate": 2e-4, "batch_size": 16},
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    _write_run(tmp_path, _full_metrics(), _history())

    path = write_report(tmp_path)

    assert path == tmp_path / "report.html"
    html = path.read_text(encoding="utf-8")
    assert '<td class="num best">0.877</td>' in html  # fine-tuned macro-F1, as in the table
    assert "+0.097" in html  # gain over the base model, the best cheaper option
    assert all(f"<td>{name}</td>" in html for name in LABELS)
    assert html.count("data:image/png;base64,") >= 2
    assert STOP_REASON in html
    assert "train.csv" in html
    assert "lora (r=8)" in html


def test_minimal_metrics_still_render(tmp_path: Path) -> None:
    _write_run(tmp_path, {"fine_tuned": {"accuracy": 0.9123, "loss": 0.321}}, history=[])

    html = write_report(tmp_path).read_text(encoding="utf-8")

    assert "0.912" in html
    assert "0.321" in html
    assert "data:image/png;base64," not in html
    assert "no cheaper option was measured" in html


def test_html_in_labels_is_escaped(tmp_path: Path) -> None:
    metrics = _full_metrics()
    evil = "<script>alert(1)</script>"
    metrics["labels"] = [evil, "coding", "trivia"]
    metrics["fine_tuned"]["per_class"] = {evil: {"precision": 1.0, "recall": 1.0, "f1": 1.0}}
    _write_run(tmp_path, metrics, _history())

    html = write_report(tmp_path).read_text(encoding="utf-8")

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def _lm_metrics() -> dict[str, Any]:
    return {
        "task": "causal-lm",
        "method": "lora",
        "model": "builtin:smollm2",
        "splits": {"train": 362, "validation": 40, "test": 101},
        "format": "alpaca",
        "base": {
            "loss": 2.1,
            "perplexity": 8.2,
            "rouge_l": 0.21,
            "exact_match": 0.0,
            "token_f1": 0.25,
            "generated": 101,
            "description": "SmolLM2 before fine-tuning",
        },
        "fine_tuned": {
            "loss": 1.4,
            "perplexity": 4.1,
            "rouge_l": 0.38,
            "exact_match": 0.02,
            "token_f1": 0.41,
            "generated": 101,
        },
        "samples": [
            {
                "prompt": "What is a <b>bygglov</b>?\nAnswer briefly.",
                "reference": "A building permit.",
                "base": "<script>alert('base')</script>",
                "fine_tuned": "A bygglov is a building permit.\n\nAsk the kommun.",
            },
            {"prompt": "Say nothing.", "reference": "ok", "base": "ok", "fine_tuned": ""},
        ],
        "truncated": {"train": 3, "validation": 0, "test": 1},
        "early_stopping_metric": "loss",
        "train_seconds": 12.3,
        "peak_memory_mb": 2100.5,
        "tokens_per_second": 1500.2,
        "params": {"total": 134_515_008, "trainable": 460_800},
        "best_step": 40,
        "stop_reason": "max_steps reached",
    }


def _lm_history() -> list[dict[str, Any]]:
    return [
        {
            "step": 20 * i,
            "epoch": i / 2,
            "train_loss": 2.0 / i,
            "val_loss": 2.1 / i,
            "val_perplexity": 8.2 / i,
        }
        for i in range(1, 5)
    ]


def _write_lm_run(run_dir: Path, metrics: dict[str, Any]) -> str:
    recipe = {
        "task": "causal-lm",
        "model": "builtin:smollm2",
        "data": {"train": "faq.jsonl", "format": "alpaca"},
        "preprocess": {"max_length": 512, "pack": True},
        "method": {"name": "lora", "r": 8},
        "generation": {"max_new_tokens": 128, "do_sample": False},
    }
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    _write_run(run_dir, metrics, _lm_history())
    return write_report(run_dir).read_text(encoding="utf-8")


def _section(html: str, title: str) -> str:
    """The HTML from one <h2> to the next."""
    start = html.index(f"<h2>{title}</h2>")
    end = html.find("<h2>", start + 1)
    return html[start : end if end != -1 else len(html)]


def test_causal_lm_report_shows_answers_side_by_side_escaped(tmp_path: Path) -> None:
    html = _write_lm_run(tmp_path, _lm_metrics())

    answers = _section(html, "Answers side by side")
    assert "Prompt 1" in answers
    assert "Prompt 2" in answers
    assert "What is a &lt;b&gt;bygglov&lt;/b&gt;?\nAnswer briefly." in answers  # newline kept
    assert "A building permit." in answers
    assert "&lt;script&gt;alert(&#39;base&#39;)&lt;/script&gt;" in answers
    assert "A bygglov is a building permit.\n\nAsk the kommun." in answers
    assert "(empty answer)" in answers
    assert "<script>" not in html
    assert "<b>bygglov" not in html
    assert "white-space: pre-wrap" in html
    # ROUGE-L per answer: 'A bygglov is a building permit. Ask the kommun.' vs
    # 'A building permit.': LCS [a, building, permit] = 3 of 9 / 3 -> 2 * 3 / 12 = 0.5
    assert "ROUGE-L 0.500" in answers


def test_causal_lm_verdict_speaks_about_perplexity_and_rouge_l(tmp_path: Path) -> None:
    html = _write_lm_run(tmp_path, _lm_metrics())

    assert (
        "Fine-tuning lowered perplexity from 8.200 to 4.100 and raised ROUGE-L from 0.210 "
        "to 0.380 on 101 test examples."
    ) in html


def test_causal_lm_verdict_says_when_a_metric_got_worse() -> None:
    metrics = _lm_metrics()
    metrics["fine_tuned"]["rouge_l"] = 0.15

    sentence = verdict(metrics)

    assert sentence.startswith("Fine-tuning lowered perplexity from 8.200 to 4.100 but made")
    assert "made ROUGE-L worse, from 0.210 to 0.150 on 101 test examples." in sentence
    assert "disagree" in sentence

    metrics["fine_tuned"]["perplexity"] = 9.5
    both_worse = verdict(metrics)
    assert "made perplexity worse, from 8.200 to 9.500 and made ROUGE-L worse" in both_worse
    assert "base model did better" in both_worse


def test_causal_lm_verdict_names_generated_count_when_it_differs() -> None:
    metrics = _lm_metrics()
    metrics["splits"]["test"] = 500
    metrics["fine_tuned"]["generated"] = 200

    assert verdict(metrics) == (
        "Fine-tuning lowered perplexity from 8.200 to 4.100 on 500 test examples and raised "
        "ROUGE-L from 0.210 to 0.380 on 200 generated answers."
    )


def test_causal_lm_comparison_table(tmp_path: Path) -> None:
    html = _write_lm_run(tmp_path, _lm_metrics())

    table = _section(html, "Before / after")
    labels = re.findall(r'<th scope="row">([^<]+)<', table)
    assert labels == ["Loss", "Perplexity", "ROUGE-L", "Exact match", "Token F1"]
    assert "Generated" not in table
    assert table.count("lower is better") == 2
    assert '<td class="num best">4.100</td>' in table
    assert "compare 101 generated answers per model" in table
    assert "SmolLM2 before fine-tuning" in table


def test_causal_lm_curves_truncation_and_throughput(tmp_path: Path) -> None:
    html = _write_lm_run(tmp_path, _lm_metrics())

    assert _section(html, "Training").count("data:image/png;base64,") == 1
    assert "362 examples · 3 truncated to 512 tokens" in html
    assert "101 examples · 1 truncated to 512 tokens" in html
    assert "0 truncated" not in html  # validation had none
    assert "1,500 tokens/s" in html
    assert "max_new_tokens=128" in html
    assert "Results per class" not in html  # no confusion matrix or per-class table


def test_causal_lm_curves_from_validation_perplexity_alone() -> None:
    history = [{"step": 10 * i, "val_perplexity": 900.0 / i**3} for i in range(1, 5)]
    assert learning_curves(history, best_step=30)
    assert learning_curves([{"step": 10, "val_perplexity": None}]) is None


def test_report_without_samples_leaves_the_section_out(tmp_path: Path) -> None:
    metrics = _lm_metrics()
    del metrics["samples"]

    html = _write_lm_run(tmp_path, metrics)

    assert "Answers side by side" not in html
    assert "Fine-tuning lowered perplexity" in html


def test_classification_verdict_is_unchanged() -> None:
    assert verdict(_full_metrics()) == (
        "Fine-tuning raised macro-F1 from 0.780 (best cheaper option: untuned base model) "
        "to 0.877 (+0.097) on 200 test examples. The gain is beyond the noise (accuracy "
        "0.900 vs 0.800, ±0.069 at 95% on 200 test examples)."
    )


def _rag_metrics() -> dict[str, Any]:
    metrics = _lm_metrics()
    cost = {"prompt_tokens": 40.0, "seconds_per_answer": 0.4, "generated": 60}
    rag_cost = {"prompt_tokens": 550.0, "seconds_per_answer": 1.7, "generated": 60}
    metrics["contenders"] = {
        "base": {"rouge_l": 0.098, "token_f1": 0.107, "exact_match": 0.0, **cost},
        "rag": {"rouge_l": 0.161, "token_f1": 0.161, "exact_match": 0.0, **rag_cost},
        "fine-tuned": {"rouge_l": 0.157, "token_f1": 0.154, "exact_match": 0.0, **cost},
    }
    metrics["verdict"] = {
        "metric": "rouge_l",
        "prompts": 60,
        "best": "rag",
        "cheapest_within_noise": "rag",
        "differences": {
            "base": {"mean": 0.063, "low": 0.04, "high": 0.09, "within_noise": False},
            "fine-tuned": {"mean": 0.004, "low": -0.03, "high": 0.043, "within_noise": True},
        },
        "sentence": "RAG on the base model scored best <and> is the cheapest.",
    }
    metrics["retrieval"] = {
        "source": "docs/handbook",
        "documents": 39,
        "passages": 252,
        "ranking": "hybrid",
        "embedder": "builtin:minilm",
        "top_k": 3,
        "build_seconds": 7.6,
        "recall_at_k": 0.867,
        "recall_questions": 60,
    }
    metrics["wall_seconds"] = 532.0
    metrics["samples"][0]["rag"] = "A permit from the kommun."
    metrics["samples"][0]["passages"] = [
        {"source": "bygglov.md", "score": 0.03, "text": "A bygglov is <i>a permit</i>."}
    ]
    return metrics


def test_causal_lm_report_answers_fine_tune_or_rag(tmp_path: Path) -> None:
    html = _write_lm_run(tmp_path, _rag_metrics())
    section = _section(html, "Fine-tune or RAG?")
    assert "RAG on the base model scored best &lt;and&gt; is the cheapest." in section
    # the source document's comparison, filled with this run's numbers
    assert "the model&#39;s weights (460.8 K parameters trained)" in section
    assert "an index of 252 passages of docs/handbook" in section
    assert "training 12.3 s" in section and "index 7.6 s" in section
    assert "550 prompt tokens, 1.700 s" in section
    # every contender with its cost and its gap to the best, with the interval
    assert section.count('<th scope="row">') >= 3 + 6
    assert '-0.063<span class="desc">[-0.090, -0.040]</span>' in section
    assert "[-0.043, +0.030] within noise" in section and ">best<" in section
    assert section.count("num best") == 2  # ROUGE-L, token F1; exact match is 0 for all
    assert "Recall@3" in section and "0.867 on 60 questions" in section
    # the samples show the RAG answer and the passages it was given, escaped
    answers = _section(html, "Answers side by side")
    assert "RAG (base model)" in answers and "A permit from the kommun." in answers
    assert "Retrieved passages (1)" in answers and "bygglov.md" in answers
    assert "A bygglov is &lt;i&gt;a permit&lt;/i&gt;." in answers
    # costs per answer are not score rows of the before/after table
    before_after = _section(html, "Before / after")
    assert "Seconds per answer" not in before_after and "Prompt tokens" not in before_after


def test_a_run_without_contenders_has_no_rag_section(tmp_path: Path) -> None:
    assert "Fine-tune or RAG?" not in _write_lm_run(tmp_path, _lm_metrics())


# --- issue 20: what the report says is what the run did ---------------------------------


def _rows(section: str) -> list[str]:
    """The row labels of a section's tables."""
    return re.findall(r'<th scope="row">([^<]*)', section)


def test_the_baselines_constant_is_a_note_on_its_name_never_a_metric_row(tmp_path: Path) -> None:
    metrics = _full_metrics()
    metrics["baseline"]["settings"] = {"C": 10.0}
    metrics["base"]["settings"] = {"C": 0.1}
    _write_run(tmp_path, metrics, _history())

    table = _section(write_report(tmp_path).read_text(encoding="utf-8"), "Before / after")

    assert _rows(table) == ["Accuracy", "Macro-F1", "Loss"]
    assert "TF-IDF + LR (C=10, chosen on the validation split)" in table


def _image_metrics() -> dict[str, Any]:
    metrics = _full_metrics()
    metrics |= {
        "task": "image-classification",
        "model": "builtin:efficientnet-lite0",
        "samples_per_second": 41.5,
        "tokens_per_second": 41.5,  # the loop counts an image as one "token"
        # a run written before the reference was recorded: the recipe's text default
        "forgetting": {
            "reference": "builtin:general-en",
            "measure": "imagenet_disagreement",
            "before": 0.0,
            "after": 0.12,
            "increase": 0.12,
            "threshold": 0.5,
            "action": "warn",
            "action_taken": "none",
        },
    }
    return metrics


def test_an_image_report_says_images_per_second_and_names_the_reference_photos(
    tmp_path: Path,
) -> None:
    history = [{**row, "tokens_per_s": 41.5} for row in _history()]
    _write_run(tmp_path, _image_metrics(), history)

    html = write_report(tmp_path).read_text(encoding="utf-8")

    cost, forgetting = _section(html, "Cost"), _section(html, "Forgetting")
    assert "41.5 images/s" in cost
    assert "token" not in cost.lower()
    assert "reference photos" in forgetting and "ImageNet" in forgetting
    assert "general-en" not in forgetting and "English" not in forgetting


def test_a_text_report_gives_examples_and_tokens_per_second(tmp_path: Path) -> None:
    metrics = _full_metrics() | {"samples_per_second": 55.0, "tokens_per_second": 2300.0}
    _write_run(tmp_path, metrics, _history())

    cost = _section(write_report(tmp_path).read_text(encoding="utf-8"), "Cost")

    assert "55 examples/s" in cost and "2,300 tokens/s" in cost


def test_a_run_without_the_forgetting_guard_says_it_was_not_measured(tmp_path: Path) -> None:
    _write_run(tmp_path, _full_metrics(), _history())

    forgetting = _section(write_report(tmp_path).read_text(encoding="utf-8"), "Forgetting")

    assert "Not measured for this run" in forgetting


def test_a_cpu_runs_estimate_shows_cpu_memory_only(tmp_path: Path) -> None:
    _write_run(tmp_path, _full_metrics(), _history())
    estimate = {
        "predicted": {
            "method": "lora",
            "device": "cpu",
            "precision": "fp32",
            "peak_memory_mb": 1500.0,
            "seconds_per_epoch": 10.0,
            "cuda_peak_mb": 90.0,
            "checkpointing_peak_mb": 1400.0,
        },
        "measured": {"peak_memory_mb": 1840.0, "seconds_per_epoch": 12.0, "epochs": 5.0},
    }
    (tmp_path / "estimate.json").write_text(json.dumps(estimate))

    cost = _section(write_report(tmp_path).read_text(encoding="utf-8"), "Cost")

    assert "Predicted vs measured" in cost
    assert "cuda" not in cost.lower()
    assert "Peak memory, process RSS (MB)" in cost and "Peak memory (process RSS)" in cost


def test_the_setup_shows_the_values_used_not_the_defaults_left_open(tmp_path: Path) -> None:
    recipe = {
        "task": "text-classification",
        "model": "builtin:minilm",
        "method": {"name": "lora", "r": 8},
        "train": {"epochs": "auto", "learning_rate": None, "batch_size": 16, "max_steps": None},
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    metrics = _full_metrics() | {"learning_rate": 1e-3, "planned_epochs": 12.0}
    _write_run(tmp_path, metrics, _history())

    setup = _section(write_report(tmp_path).read_text(encoding="utf-8"), "Setup")

    assert "epochs=12 (auto), learning_rate=0.001, batch_size=16" in setup
    assert "max_steps" not in setup


def _timed_metrics() -> dict[str, Any]:
    phases = {"setup": 3.0, "load": 20.0, "score_before": 90.0, "training": 500.0}
    return _full_metrics() | {
        "train_seconds": 118.0,
        "wall_seconds": 718.0,
        "phase_seconds": phases | {"score_after": 80.0, "save": 25.0},
    }


def test_cost_lists_the_phases_and_the_wall_time_and_money_at_a_price(tmp_path: Path) -> None:
    _write_run(tmp_path, _timed_metrics(), _history())

    cost = _section(write_report(tmp_path).read_text(encoding="utf-8"), "Cost")

    labels = _rows(cost)
    assert labels[0] == "Wall time, end to end"
    assert "718 s, up to this report" in cost
    assert "Training (with its evaluations)" in cost and "Scoring the cheaper options" in cost
    assert "Training steps alone (no evaluations)" in labels and "118 s" in cost
    assert "Compute cost" not in cost

    recipe = {"task": "text-classification", "report": {"price_per_hour": 2.0, "currency": "EUR"}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    cost = _section(write_report(tmp_path).read_text(encoding="utf-8"), "Cost")
    assert "Compute cost" in cost
    assert "0.40 EUR (0.199 h of wall time at 2 EUR per hour)" in cost


def test_the_verdict_names_a_cheaper_option_within_noise() -> None:
    metrics = _full_metrics()
    metrics["baseline"] |= {"accuracy": 0.88, "macro_f1": 0.86}  # 200 test examples: noise

    sentence = verdict(metrics)

    assert sentence.startswith("Fine-tuning raised macro-F1 from 0.860 (best cheaper option: ")
    assert "But the TF-IDF + LR baseline is within noise of the fine-tuned model" in sentence
    assert "accuracy 0.880 vs 0.900, ±0.061 at 95% on 200 test examples" in sentence
    assert sentence.endswith("costs almost nothing to train or serve: use it.")

    metrics["fine_tuned"] |= {"accuracy": 0.86, "macro_f1": 0.85}  # did not beat it
    sentence = verdict(metrics)
    assert sentence.startswith("Fine-tuning did not beat the TF-IDF + LR baseline")
    metrics["base"] |= {"accuracy": 0.9, "macro_f1": 0.87}  # the base best, the baseline near
    assert "The TF-IDF + LR baseline is within noise of the untuned base model" in verdict(metrics)


def test_an_llm_verdict_names_the_untrained_contender_within_noise(tmp_path: Path) -> None:
    metrics = _rag_metrics()
    metrics["verdict"] |= {"best": "fine-tuned", "cheapest_within_noise": "rag"}

    html = _write_lm_run(tmp_path, metrics)

    verdict_text = html[html.index('<p class="verdict">') :].split("</p>")[0]
    assert "On the answers, RAG on the base model is within noise of the best" in verdict_text
    assert "needs no training: use it." in verdict_text


def test_an_llm_verdict_judges_the_answers_with_a_paired_bootstrap(tmp_path: Path) -> None:
    rows = [
        {"prompt": f"q{i}", "reference": "the answer is yes", "base": base, "fine_tuned": tuned}
        for i, (base, tuned) in enumerate(
            [("the answer is yes", "no"), ("no", "the answer is yes")] * 10
            + [("no", "the answer is yes")] * 2  # a small mean gain, a wide interval
        )
    ]
    (tmp_path / "generations.jsonl").write_text("\n".join(json.dumps(r) for r in rows))

    html = _write_lm_run(tmp_path, _lm_metrics())

    assert "On the answers, the untuned base model is within noise of the fine-tuned one" in html
    assert "paired bootstrap over 22 prompts" in html

    tuned_always = [{**row, "fine_tuned": "the answer is yes", "base": "no"} for row in rows]
    (tmp_path / "generations.jsonl").write_text("\n".join(json.dumps(r) for r in tuned_always))
    html = _write_lm_run(tmp_path, _lm_metrics())
    assert "The ROUGE-L gain is beyond noise" in html
