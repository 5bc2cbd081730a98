"""Shared fixtures: a tiny BERT built from a config (seconds on a CPU) and small data files."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
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


# --- causal LM: a tiny Llama with a word-level tokenizer and a ChatML template ------------

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
ANSWERS = {
    "sports": "the team won the match",
    "food": "bake the bread with cheese",
    "tech": "restart the server and the wifi",
}


def make_qa_rows(per_topic: int = 20, seed: int = 0) -> list[dict]:
    """Alpaca rows whose answer follows from the question's topic: learnable in seconds."""
    rng = random.Random(seed)
    rows = []
    for topic, words in TOPICS.items():
        for _ in range(per_topic):
            question = " ".join(rng.sample(words, 2) + rng.sample(FILLER, 2))
            rows.append({"instruction": question, "input": "", "output": ANSWERS[topic]})
    rng.shuffle(rows)
    return rows


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama (hidden 32) saved with a fast word-level tokenizer and chat template."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    words = sorted({w for ws in TOPICS.values() for w in ws} | set(FILLER))
    words += sorted({w for answer in ANSWERS.values() for w in answer.split()} - set(words))
    specials = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    extra = ["system", "user", "assistant", " ", "\n", ".", ",", "?", "!", "'", "-", ":"]
    vocab = {token: i for i, token in enumerate(specials + extra + words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"\w+|[^\w]"), behavior="isolated")
    backend.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=vocab["<|im_start|>"],
        eos_token_id=vocab["<|im_end|>"],
        pad_token_id=vocab["<|im_end|>"],
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture
def qa_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "qa.jsonl"
    pd.DataFrame(make_qa_rows()).to_json(path, orient="records", lines=True)
    return path


@pytest.fixture
def tiny_llm_recipe(tiny_llm_dir: Path, qa_jsonl: Path, tmp_path: Path) -> dict:
    return {
        "task": "causal-lm",
        "model": str(tiny_llm_dir),
        "data": {"train": str(qa_jsonl)},
        "method": {"name": "lora", "r": 4},
        "preprocess": {"max_length": 64},
        "train": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-2, "precision": "fp32"},
        "generation": {"max_new_tokens": 8, "max_examples": 6, "samples": 2},
        "compare": [],  # the contenders have tests of their own (test_contenders.py)
        "output_dir": str(tmp_path / "llm-run"),
    }


@pytest.fixture
def overshooting(tiny_llm_recipe, tmp_path) -> dict:
    """Full fine-tuning of the tiny Llama at a learning rate that forgets a reference the data
    never uses, with rollback: the forgetting guard's rescue runs."""
    reference = tmp_path / "reference.txt"
    reference.write_text("\n\n".join("- : ' - : ! ' : - ' ! :" for _ in range(8)))
    return {
        **tiny_llm_recipe,
        "method": {"name": "full"},
        "train": {"epochs": 3, "batch_size": 8, "learning_rate": 5e-2, "precision": "fp32",
                  "warmup_ratio": 0.0, "scheduler": "constant", "early_stopping": None},
        "guards": {"data_quality": "off", "forgetting": {
            "reference": str(reference), "max_increase": 0.05, "action": "rollback"}},
    }  # fmt: skip


# --- image classification: a tiny ResNet and generated colour images ----------------------

COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (50, 60, 210)}


def make_image_folder(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    """root/<colour>/<n>.png: noisy images whose dominant colour is their label."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-60, 60, size=(20, 24, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def tiny_resnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-stage ResNet with 8-16 channels, saved with its image-processor settings."""
    import json

    from transformers import ResNetConfig, ResNetForImageClassification

    folder = tmp_path_factory.mktemp("tiny-resnet")
    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=2)
    ResNetForImageClassification(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "ConvNextImageProcessor",
                "size": {"shortest_edge": 32},
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.25, 0.25, 0.25],
            }
        )
    )
    return folder


@pytest.fixture
def tiny_image_recipe(tiny_resnet_dir: Path, tmp_path: Path) -> dict:
    return {
        "task": "image-classification",
        "model": str(tiny_resnet_dir),
        "data": {"train": str(make_image_folder(tmp_path / "images"))},
        "method": {"name": "full"},
        "preprocess": {"image_size": 32},
        "train": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "precision": "fp32"},
        "output_dir": str(tmp_path / "image-run"),
    }
