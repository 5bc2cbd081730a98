"""Length-grouped batches: examples of similar length share a batch, so little is padding."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, group_factor: int = 50
) -> list[list[int]]:
    """The batches of one epoch, reproducible from (seed, epoch) so a resume can skip ahead.

    Shuffle, cut into mega-batches of `group_factor` batches, sort each by length, cut into
    batches, then shuffle the batch order: random like plain shuffling, but padded only to
    the longest of similar-length neighbours.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    batches = []
    mega = batch_size * group_factor
    for start in range(0, len(order), mega):
        chunk = order[start : start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def sorted_batches(
    lengths: Sequence[int], batch_size: int, max_tokens: int | None = None
) -> list[list[int]]:
    """Evaluation batches: longest first, no shuffling (order does not change the metrics);
    with `max_tokens`, a batch of long rows holds fewer of them (rows x longest row stays
    within it, one row at least)."""
    order = np.argsort(-np.asarray(lengths), kind="stable").tolist()
    if max_tokens is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    for index in order:
        batch = batches[-1] if batches else None
        if batch and len(batch) < batch_size and (len(batch) + 1) * lengths[batch[0]] <= max_tokens:
            batch.append(index)
        else:
            batches.append([index])
    return batches
