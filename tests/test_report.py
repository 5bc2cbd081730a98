"""The HTML report renders full and partial run folders, and never trusts user text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tunesmith.report import write_report

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
