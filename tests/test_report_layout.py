"""The report's layout in a real browser: for a run of each task kind, in each language, at a
desktop's 1,280 px and a phone's 390 px, the page is no wider than the window and no table,
picture or preformatted block is wider than the card it sits in (`main`), except inside a
scroll wrapper (`.scroll`, overflow-x: auto) whose own box fits.

Each page is also saved as a full-page screenshot, `<kind>-<lang>-<width>.png`, in the folder
TUNESMITH_SCREENSHOTS names (`make screenshots`: docs/screenshots), else in pytest's tmp_path.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from tunesmith.i18n import LANGUAGES, language
from tunesmith.report.render import build_context, render_html

from .browser import FLAGS, chromium_or_skip

VIEWPORTS = ((1280, 800), (390, 844))
# Long unbreakable text a real run folder holds: model paths, data files, run folder names.
MODEL = "/home/analyst/models/checkpoints/paraphrase-multilingual-MiniLM-L12-v2-support-2024-11"
DATA = "/srv/datasets/customer-support/2024-11-export/tickets_train_deduplicated_v3.csv"
LONG_URL = "https://example.com/handbook/building-permits/" + "applications-and-appeals-" * 4

# Every table, picture and preformatted block that reaches past the card's right edge, its
# nearest scroll wrapper standing for it when it has one.
WIDE = """() => {
  const card = document.querySelector("main");
  const edge = card.getBoundingClientRect().right;
  const scroller = (el) => {
    for (let box = el.parentElement; box && box !== card; box = box.parentElement) {
      if (["auto", "scroll"].includes(getComputedStyle(box).overflowX)) return box;
    }
    return null;
  };
  const headings = [...card.querySelectorAll("h2")];
  const wide = [];
  let checked = 0;
  for (const el of card.querySelectorAll("table, img, svg, pre")) {
    checked += 1;
    const right = (scroller(el) || el).getBoundingClientRect().right;
    if (right > edge + 1) {
      const under = headings.filter(
        (h) => h.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING).pop();
      wide.push(`${el.tagName.toLowerCase()} under "${under ? under.textContent : "-"}": ` +
        `${Math.round(right - edge)} px past the card`);
    }
  }
  return {page: document.documentElement.scrollWidth, checked, wide};
}"""


def _per_class(labels: list[str]) -> dict[str, dict[str, float]]:
    return {
        name: {"precision": 0.9 - 0.02 * i, "recall": 0.85, "f1": 0.87 - 0.01 * i, "support": 40}
        for i, name in enumerate(labels)
    }


def _confusion(n: int) -> list[list[int]]:
    return [[36 if i == j else (2 if (i + j) % 3 == 0 else 0) for j in range(n)] for i in range(n)]


def _common(task: str, method: str = "lora") -> dict[str, Any]:
    """What every finished run's metrics.json holds besides its scores."""
    return {
        "task": task,
        "method": method,
        "model": MODEL,
        "splits": {"train": 4120, "validation": 515, "test": 515},
        "params": {"total": 117_653_760, "trainable": 294_912},
        "precision": "bf16",
        "device": "cuda:0 (NVIDIA H200, 139 GiB)",
        "train_seconds": 1843.2,
        "peak_memory_mb": 20480.5,
        "tokens_per_second": 18230.4,
        "best_step": 1200,
        "stopped_early": True,
        "stop_reason": "validation score did not improve for 3 evaluations (patience 3)",
        "phase_seconds": {"setup": 3.1, "data_check": 12.4, "load": 8.2, "score_before": 95.0},
        "wall_seconds": 2051.7,
    }


def _classifier(task: str, labels: list[str], scores: dict[str, float]) -> dict[str, Any]:
    return {
        **_common(task),
        "labels": labels,
        "fine_tuned": {**scores, "loss": 0.412, "per_class": _per_class(labels)},
        "base": {
            **{k: v - 0.08 for k, v in scores.items()},
            "description": "frozen pre-trained encoder (mean-pooled) + logistic regression",
        },
        "baseline": {
            **{k: v - 0.12 for k, v in scores.items()},
            "description": "TF-IDF (word 1-2 + char 2-5 grams) + logistic regression",
        },
        "early_stopping_metric": next(iter(scores)),
    }


def _text_classification() -> dict[str, Any]:
    labels = ["配送", "返品", "請求書", "解約", "account-access-and-password-reset"]
    labels += [f"billing-dispute-category-{i}" for i in range(7)]
    metrics = _classifier("text-classification", labels, {"accuracy": 0.912, "macro_f1": 0.884})
    metrics["fine_tuned"]["confusion_matrix"] = _confusion(len(labels))
    metrics |= _slices()
    return metrics


def _slices() -> dict[str, Any]:
    """metrics.json's slices of two columns, with a long value and a warned slice."""
    regions = {"関東": 412, "north-east-coastal-and-mountain-districts": 96, "九州": 31}
    scores = {"関東": 0.93, "north-east-coastal-and-mountain-districts": 0.90, "九州": 0.71}
    slices = {
        "region": {
            value: {"rows": rows, "loss": 0.41, "accuracy": scores[value], "macro_f1": 0.8}
            for value, rows in regions.items()
        },
        "acquisition_channel_of_the_customer_account": {
            "web": {"rows": 500, "loss": 0.4, "accuracy": 0.91, "macro_f1": 0.88},
            "phone": {"rows": 39, "loss": 0.5, "accuracy": 0.87, "macro_f1": 0.85},
        },
    }
    warning = {
        "column": "region",
        "value": "九州",
        "rows": 31,
        "metric": "accuracy",
        "score": 0.71,
        "rest": 0.925,
        "interval": [0.533, 0.839],
    }
    phone = {"value": "phone", "rows": 39, "metric": "accuracy", "score": 0.87, "rest": 0.91}
    return {
        "slices": slices,
        "slices_worst": {
            "region": warning,
            "acquisition_channel_of_the_customer_account": {**phone, "interval": [0.73, 0.94]},
        },
        "slices_warnings": [{**warning, "message": "slice region='九州' (31 test rows) ..."}],
    }


def _multi_label() -> dict[str, Any]:
    labels = ["shipping", "refund", "invoice", "cancellation", "complaint", "technical-issue"]
    scores = {"micro_f1": 0.903, "macro_f1": 0.871, "subset_accuracy": 0.642, "hamming_loss": 0.04}
    metrics = _classifier("multi-label-classification", labels, scores)
    metrics["thresholds"] = {"global": 0.46, "per_label": {name: 0.46 for name in labels}}
    return metrics


def _image_classification() -> dict[str, Any]:
    labels = ["cracked-screen", "water-damage", "battery-swelling", "intact", "scratched-case"]
    metrics = _classifier("image-classification", labels, {"accuracy": 0.934, "macro_f1": 0.921})
    metrics["fine_tuned"]["confusion_matrix"] = _confusion(len(labels))
    metrics["skipped_images"] = [f"{DATA}/broken-{i}.jpg" for i in range(3)]
    return metrics


def _generative(task: str) -> dict[str, Any]:
    scores = {"loss": 1.41, "perplexity": 4.1, "rouge_l": 0.38, "exact_match": 0.02}
    return {
        **_common(task),
        "format": "alpaca" if task == "causal-lm" else "input-target",
        "fine_tuned": {**scores, "token_f1": 0.41, "generated": 200},
        "base": {
            "loss": 2.1,
            "perplexity": 8.2,
            "rouge_l": 0.21,
            "exact_match": 0.0,
            "token_f1": 0.25,
            "generated": 200,
            "description": f"{MODEL} before fine-tuning",
        },
        "baseline": {
            "rouge_l": 0.19,
            "exact_match": 0.0,
            "token_f1": 0.22,
            "description": "nearest training prompt's answer (TF-IDF retrieval)",
        },
        "truncated": {"train": 3, "validation": 0, "test": 1},
        "early_stopping_metric": "loss",
        "samples": [
            {
                "prompt": f"What does a bygglov cost, and where is it described? See {LONG_URL}",
                "reference": "It depends on the kommun; its fee table is on the kommun's site.",
                "base": "A bygglov is a building permit." * 6,
                "fine_tuned": f"The fee is set by your kommun: {LONG_URL}",
            }
        ],
        "forgetting": {"reference": "builtin:general-en", "before": 0.0, "after": 0.181},
    }


def _causal_lm() -> dict[str, Any]:
    """With the fine-tune-or-RAG contenders, their verdict and the retrieval index."""
    metrics = _generative("causal-lm")
    cost = {"prompt_tokens": 40.0, "seconds_per_answer": 0.4, "generated": 60}
    rag_cost = {"prompt_tokens": 550.0, "seconds_per_answer": 1.7, "generated": 60}
    metrics["contenders"] = {
        "base": {"rouge_l": 0.098, "token_f1": 0.107, "exact_match": 0.0, **cost},
        "few-shot": {"rouge_l": 0.121, "token_f1": 0.13, "exact_match": 0.0, **rag_cost},
        "rag": {"rouge_l": 0.161, "token_f1": 0.161, "exact_match": 0.0, **rag_cost},
        "fine-tuned": {"rouge_l": 0.157, "token_f1": 0.154, "exact_match": 0.0, **cost},
        "fine-tuned+rag": {"rouge_l": 0.171, "token_f1": 0.17, "exact_match": 0.0, **rag_cost},
    }
    means = {name: scores["rouge_l"] for name, scores in metrics["contenders"].items()}
    metrics["verdict"] = {
        "metric": "rouge_l",
        "prompts": 60,
        "best": "fine-tuned+rag",
        "runner_up": "rag",
        "cheapest_within_noise": "rag",
        "means": means,
        "differences": {
            name: {"mean": mean - 0.171, "low": mean - 0.2, "high": mean - 0.14}
            for name, mean in means.items()
            if name != "fine-tuned+rag"
        },
    }
    metrics["retrieval"] = {
        "source": "/srv/documents/municipal-handbooks/building-permits-and-zoning-2024",
        "documents": 39,
        "passages": 252,
        "ranking": "hybrid",
        "embedder": "builtin:minilm",
        "top_k": 3,
        "build_seconds": 7.6,
        "recall_at_k": 0.867,
        "recall_questions": 60,
    }
    metrics["samples"][0]["rag"] = "A permit from the kommun."
    metrics["samples"][0]["passages"] = [{"source": LONG_URL, "text": "A bygglov is a permit."}]
    return metrics


KINDS = {
    "text-classification": _text_classification,
    "multi-label-classification": _multi_label,
    "image-classification": _image_classification,
    "causal-lm": _causal_lm,
    "seq2seq": lambda: _generative("seq2seq"),
}


def _history(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    fine_tuned = metrics["fine_tuned"]
    scores = [key for key, val in fine_tuned.items() if isinstance(val, float) and key != "loss"]
    return [
        {
            "step": 200 * i,
            "epoch": i / 2,
            "train_loss": 2.0 / i,
            "samples_per_s": 55.0,
            "val_loss": 2.2 / i,
            **{f"val_{key}": fine_tuned[key] * (0.7 + 0.05 * i) for key in scores},
        }
        for i in range(1, 7)
    ]


def _quality(metrics: dict[str, Any]) -> dict[str, Any]:
    rows = list(range(25, 1025, 7))
    message = (
        f"{len(rows)} row(s) are near copies of an earlier row of the train split (a few "
        f"characters or pixels apart) in {DATA}"
    )
    return {
        "findings": [
            {
                "check": "near_duplicates",
                "severity": "warning",
                "split": "train",
                "rows": rows,
                "message": message,
                "fix": "check them and remove the copies",
                "file": DATA,
            },
            {
                "check": "label_issues",
                "severity": "error",
                "split": "train",
                "rows": rows[:4],
                "message": "4 rows look mislabelled",
                "fix": "relabel them with tunesmith annotate",
            },
        ],
        "summary": {"task": metrics["task"], "model": MODEL, "errors": 1, "warnings": 1},
    }


def _recipe(task: str) -> dict[str, Any]:
    return {
        "task": task,
        "model": MODEL,
        "data": {"train": DATA, "test": DATA.replace("train", "test"), "text_column": "text"},
        "preprocess": {"max_length": 512, "pack": True, "unicode": "nfkc"},
        "method": {"name": "lora", "r": 16, "alpha": 32, "target_modules": ["q", "k", "v", "o"]},
        "train": {"epochs": 5, "learning_rate": 2e-4, "batch_size": 16, "scheduler": "linear"},
        "generation": {"max_new_tokens": 128, "do_sample": False},
        "output_dir": f"/srv/runs/{task}-lora-r16-2024-11-28-sweep-number-3",
    }


def write_run_folder(folder: Path, kind: str) -> Path:
    """A finished run folder of `kind` as train leaves it, with long paths and names."""
    folder.mkdir(parents=True)
    metrics = KINDS[kind]()
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    history = "".join(json.dumps(row) + "\n" for row in _history(metrics))
    (folder / "history.jsonl").write_text(history, encoding="utf-8")
    (folder / "recipe.yaml").write_text(yaml.safe_dump(_recipe(kind)), encoding="utf-8")
    (folder / "quality.json").write_text(json.dumps(_quality(metrics)), encoding="utf-8")
    estimate = {
        "predicted": {"peak_memory_mb": 19000.0, "seconds_per_epoch": 350.0, "memory": {}},
        "measured": {"peak_memory_mb": 20480.5, "seconds_per_epoch": 368.6, "epochs": 5.0},
    }
    (folder / "estimate.json").write_text(json.dumps(estimate), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("TUNESMITH_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _save_small(png: bytes, path: Path) -> None:
    """The screenshot with a 128-colour palette: a report is flat colours and text, so it
    reads the same at a fraction of the size."""
    with Image.open(io.BytesIO(png)) as image:
        image.convert("RGB").quantize(colors=128).save(path, optimize=True)


@pytest.mark.parametrize("kind", list(KINDS))
def test_nothing_is_wider_than_its_card(kind: str, browser, screenshots, tmp_path) -> None:
    run = write_run_folder(tmp_path / f"{kind}-lora-r16-2024-11-28-sweep-number-3", kind)
    problems = []
    for lang in LANGUAGES:
        with language(lang):
            html = render_html(build_context(run))
        page_file = tmp_path / f"report-{lang}.html"
        page_file.write_text(html, encoding="utf-8")
        for width, height in VIEWPORTS:
            page = browser.new_page(viewport={"width": width, "height": height})
            try:
                page.goto(page_file.as_uri())
                layout = page.evaluate(WIDE)
                shot = page.screenshot(full_page=True)
            finally:
                page.close()
            _save_small(shot, screenshots / f"{kind}-{lang}-{width}.png")
            assert layout["checked"] >= 8  # the tables and both pictures were measured
            if layout["page"] > width:
                problems.append(f"{lang} at {width} px: the page is {layout['page']} px wide")
            problems += [f"{lang} at {width} px: {wide}" for wide in layout["wide"]]
    assert not problems, "\n".join(problems)
