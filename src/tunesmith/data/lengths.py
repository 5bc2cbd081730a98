"""`preprocess.max_length: auto`: the length that reads every training text whole.

Batches are grouped by length and padded to their own longest row, so a max_length above
the texts' lengths costs nothing on short texts, while one below them cuts what the model
would have learnt from (a review set of 2,000 rows had 66% of its rows cut at the old
fixed default of 128 tokens, and the fine-tuned model then lost to TF-IDF). Auto covers
AUTO_COVERAGE of the training texts, rounded up to a multiple of 8, within what the model
reads and at most AUTO_LONGEST: past that, attention's cost grows with the square of the
length, and the batch of the longest texts sets the run's memory peak.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

AUTO_COVERAGE = 1.0
"""Share of the training texts read whole (all of them, up to AUTO_LONGEST)."""
AUTO_LONGEST = 512
"""The longest length auto chooses (a text classifier rarely gains from more)."""
AUTO_SHORTEST = 16


def auto_max_length(lengths: Sequence[int], model_limit: int | None) -> int:
    """The max_length covering AUTO_COVERAGE of `lengths` (tokens, special tokens
    included), rounded up to a multiple of 8, between AUTO_SHORTEST and
    min(AUTO_LONGEST, model_limit)."""
    ceiling = min(AUTO_LONGEST, model_limit or AUTO_LONGEST)
    if not lengths:
        return min(AUTO_SHORTEST, ceiling)
    ordered = sorted(lengths)
    covered = ordered[max(0, math.ceil(AUTO_COVERAGE * len(ordered)) - 1)]
    return max(min(AUTO_SHORTEST, ceiling), min(ceiling, 8 * math.ceil(covered / 8)))
