"""Stratified, seeded train/validation/test splits."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from tunesmith.recipe import DataConfig


def stratified_split(
    labels: Sequence[object], validation_size: float, test_size: float, seed: int
) -> dict[str, np.ndarray]:
    """Row indices for train, validation and test, each class split in the same proportions.

    A share of 0 skips that split. Every class keeps at least one training example, so a
    class with one or two examples lands in train only; the result is the same for the same
    labels and seed.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=object)
    parts: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for label in sorted(set(labels.tolist()), key=str):
        rows = np.flatnonzero(labels == label)
        rng.shuffle(rows)
        n_test = round(len(rows) * test_size)
        n_val = round(len(rows) * validation_size)
        while n_test + n_val >= len(rows) and n_test + n_val > 0:
            if n_val >= n_test and n_val > 0:
                n_val -= 1
            else:
                n_test -= 1
        parts["test"].extend(rows[:n_test])
        parts["validation"].extend(rows[n_test : n_test + n_val])
        parts["train"].extend(rows[n_test + n_val :])
    return {name: np.sort(np.asarray(rows, dtype=int)) for name, rows in parts.items()}


def split_frames(
    frames: dict[str, pd.DataFrame], data: DataConfig, seed: int
) -> dict[str, pd.DataFrame]:
    """train/validation/test frames: the files given, and stratified shares of train (its
    `label` column) for the splits without a file."""
    shares = {
        name: 0.0 if name in frames else getattr(data, f"{name}_size")
        for name in ("validation", "test")
    }
    train = frames["train"]
    index = stratified_split(train["label"].tolist(), shares["validation"], shares["test"], seed)
    out = {name: frames.get(name, train.iloc[index[name]]) for name in ("validation", "test")}
    kept = train.iloc[index["train"]]
    subset = train_subset(kept["label"].tolist(), data.train_fraction, seed)
    return {"train": kept.iloc[subset], **out}


def subset_size(rows: int, fraction: float) -> int:
    """How many of a class's `rows` data.train_fraction keeps: its share, rounded up, at
    least one."""
    if fraction >= 1:
        return rows
    return min(rows, max(1, math.ceil(rows * fraction - 1e-9)))


def train_subset(labels: Sequence[object], fraction: float, seed: int) -> np.ndarray:
    """Positions (sorted) of the training rows data.train_fraction keeps: each class's
    share (subset_size) in a seeded order that does not depend on the fraction, so the rows
    of a smaller share are inside those of a larger one. 1: every row."""
    if fraction >= 1:
        return np.arange(len(labels))
    rng = np.random.default_rng([seed, 0x7375627365])  # not the split's stream
    labels = np.asarray(labels, dtype=object)
    kept: list[int] = []
    for label in sorted(set(labels.tolist()), key=str):
        rows = np.flatnonzero(labels == label)
        order = rows[rng.permutation(len(rows))]
        kept.extend(order[: subset_size(len(rows), fraction)])
    return np.sort(np.asarray(kept, dtype=int))
