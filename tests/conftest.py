"""Shared fixtures: a tiny BERT built from a config (seconds on a CPU) and small data files."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from tunesmith.models.resolve import resolve_model

TOPICS = {
    "sports": ["football", "match", "goal", "team", "league", "coach", "score", "tennis"],
    "food": ["pizza", "bread", "cheese", "recipe", "soup", "dinner", "salad", "cake"],
    "tech": ["laptop", "printer", "software", "network", "server", "keyboard", "wifi", "code"],
}
FILLER = ["the", "a", "my", "is", "was", "very", "today", "about", "and", "with"]


def make_rows(per_label: int, seed: int = 0) -> list[dict]:
    """Texts whose topic words give their label away, so a tiny model can learn them."""
    rng = random.Random(seed)
    rows = []
    for label, words in TOPICS.items():
        for _ in range(per_label):
            tokens = rng.sample(words, 2) + rng.sample(FILLER, rng.randint(1, 6))
            rng.shuffle(tokens)
            rows.append({"text": " ".join(tokens), "label": label})
    rng.shuffle(rows)
    return rows


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT with MiniLM's tokenizer: same code paths as the real model, 100x faster."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    minilm = resolve_model("builtin:minilm")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm / name, folder / name)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture
def data_csv(tmp_path: Path) -> Path:
    path = tmp_path / "topics.csv"
    pd.DataFrame(make_rows(40)).to_csv(path, index=False)
    return path


@pytest.fixture
def tiny_recipe(tiny_model_dir: Path, data_csv: Path, tmp_path: Path) -> dict:
    return {
        "task": "text-classification",
        "model": str(tiny_model_dir),
        "data": {"train": str(data_csv)},
        "method": {"name": "lora", "r": 4},
        "train": {"epochs": 2, "batch_size": 8, "learning_rate": 5e-3, "precision": "fp32"},
        "output_dir": str(tmp_path / "run"),
    }
