"""Catastrophic forgetting, measured: how far fine-tuning moved the model away from what it
did before, on reference data that has nothing to do with the task.

- causal-lm: perplexity on reference prose (`increase` = after / before - 1);
- text encoders: drift of the encoder's sentence representations, 1 - linear CKA between
  the pre-trained and the current mean-pooled embeddings of reference sentences (0: the
  same geometry, 1: unrelated; `increase` = the drift itself);
- vision: disagreement of the original ImageNet head's predictions on reference photos,
  read through the current backbone (`increase` = the share of changed top-1 predictions);
  a backbone whose checkpoint has no ImageNet head uses the CKA drift of its features.

The reference text is split in two: even paragraphs are measured, odd ones may be replayed
in training (train.replay), so replay never trains on what is measured."""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from tunesmith.errors import UserError

BUILTIN_REFERENCES = {"builtin:general-en": "general-en.txt"}


def reference_paragraphs(reference: str) -> list[str]:
    """Paragraphs of the reference: a built-in name, a .txt file (paragraphs separated by
    blank lines) or a table with a `text` column."""
    if reference in BUILTIN_REFERENCES:
        path = resources.files("tunesmith.reference_data") / BUILTIN_REFERENCES[reference]
        text = path.read_text(encoding="utf-8")
    else:
        source = Path(reference).expanduser()
        if not source.is_file():
            known = ", ".join(BUILTIN_REFERENCES)
            raise UserError(
                f"guards.forgetting.reference: {reference} is neither a file nor a built-in "
                f"reference ({known}); give a .txt of paragraphs or a table with a text column"
            )
        if source.suffix.lower() in (".txt", ".md"):
            text = source.read_text(encoding="utf-8-sig")
        else:
            from tunesmith.data.tables import read_table

            frame = read_table(source, role="guards.forgetting.reference")
            if "text" not in frame.columns:
                raise UserError(
                    f"guards.forgetting.reference: {source} has no 'text' column "
                    f"(columns: {', '.join(map(str, frame.columns))})"
                )
            text = "\n\n".join(str(t) for t in frame["text"].dropna())
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        raise UserError(
            f"guards.forgetting.reference: {reference} needs at least two paragraphs "
            "(separated by blank lines)"
        )
    return paragraphs


def reference_sentences(paragraphs: list[str], limit: int = 128) -> list[str]:
    """Sentences of five words or more, in order, at most `limit`."""
    import re

    found = []
    for paragraph in paragraphs:
        for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
            if len(sentence.split()) >= 5:
                found.append(sentence)
                if len(found) == limit:
                    return found
    return found


def measured_half(paragraphs: list[str]) -> list[str]:
    return paragraphs[0::2]


def replay_half(paragraphs: list[str]) -> list[str]:
    return paragraphs[1::2]


class Measure(Protocol):
    name: str
    """perplexity, representation_drift or imagenet_disagreement."""
    relative: bool
    """True: `increase` is after / before - 1; False: the measure itself is the change."""
    reference: str | None
    """What it is measured on when that is not guards.forgetting.reference (vision: the
    reference photos, whatever the recipe names); None: the recipe's reference."""

    def __call__(self, model: nn.Module) -> float: ...


@dataclass
class LanguageModelPerplexity:
    """Perplexity of the reference paragraphs, cut into chunks of the task's length."""

    task: Any  # a CausalLMTask over the reference text (format text)
    name: str = "perplexity"
    relative: bool = True
    reference: str | None = None

    def __call__(self, model: nn.Module) -> float:
        return float(self.task.evaluate(model, "test")["perplexity"])


class RepresentationDrift:
    """1 - linear CKA of the encoder's embeddings of reference sentences, against the
    embeddings before training (taken when this object is made)."""

    name = "representation_drift"
    relative = False

    def __init__(self, embed: Any, model: nn.Module, reference: str | None = None) -> None:
        self.embed = embed
        self.reference = reference
        self.before = embed(model)

    def __call__(self, model: nn.Module) -> float:
        return 1.0 - linear_cka(self.before, self.embed(model))


class ImageNetDisagreement:
    """Share of reference photos whose original ImageNet top-1 class changed."""

    name = "imagenet_disagreement"
    relative = False

    def __init__(
        self, features: Any, head: nn.Linear, model: nn.Module, reference: str | None = None
    ) -> None:
        self.features = features
        self.head = head
        self.reference = reference
        self.before = self._predict(model)

    @torch.no_grad()  # not inference_mode: FSDP reuses buffers made here while training
    def _predict(self, model: nn.Module) -> np.ndarray:
        pooled = torch.as_tensor(self.features(model))
        return self.head(pooled).argmax(-1).numpy()

    def __call__(self, model: nn.Module) -> float:
        return float((self._predict(model) != self.before).mean())


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019): 1 for representations equal
    up to rotation and scale, near 0 for unrelated ones."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x - x.mean(0)
    y = y - y.mean(0)
    cross = np.linalg.norm(x.T @ y) ** 2
    norm = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / norm) if norm > 0 else 0.0


def increase(measure: Measure, before: float, after: float) -> float:
    if measure.relative:
        return after / before - 1 if before > 0 and math.isfinite(before) else float("nan")
    return after


REFERENCE_PHOTOS = "builtin:sample-photos"
"""The name forgetting summaries give the reference photos (reference_photos())."""


def reference_photos(count: int = 64, seed: int = 0) -> list[Any]:
    """Random crops of scikit-learn's two sample photographs (a temple in China, a flower),
    varied in size and place: natural images the ImageNet head has opinions about."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = load_sample_images().images
    crops = []
    for i in range(count):
        photo = photos[i % len(photos)]
        height, width = photo.shape[:2]
        side = int(rng.integers(min(height, width) // 4, min(height, width)))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        crops.append(Image.fromarray(photo[top : top + side, left : left + side]))
    return crops
