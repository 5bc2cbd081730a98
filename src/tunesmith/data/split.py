"""Stratified, seeded train/validation/test splits."""

from __future__ import annotations

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
    return {"train": train.iloc[index["train"]], **out}
