"""Scores of generated answers against reference answers: ROUGE-L, exact match and token F1.

Dependency-free on purpose (no rouge-score or nltk): the definitions are short, and owning them
means one tokenisation for every language. Text in scripts written without spaces (Chinese,
Japanese, Korean) is scored per character, since a whole sentence would otherwise be one word.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

# Scripts written without spaces between words: each character counts as one word.
_CJK_RANGES = (
    "\u1100-\u11ff"  # Hangul Jamo
    "\u3005-\u3007"  # 々 〆 〇
    "\u3040-\u309f"  # Hiragana
    "\u30a0-\u30ff"  # Katakana
    "\u3130-\u318f"  # Hangul compatibility Jamo
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK unified ideographs extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\ua960-\ua97f"  # Hangul Jamo extended-A
    "\uac00-\ud7af"  # Hangul syllables
    "\ud7b0-\ud7ff"  # Hangul Jamo extended-B
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff66-\uff9f"  # halfwidth Katakana
    "\uffa0-\uffdc"  # halfwidth Hangul
    "\U00020000-\U0003134f"  # CJK unified ideographs extensions B-G, compatibility supplement
)
# One CJK character, or a run of word characters that are not CJK.
_WORD = re.compile(f"[{_CJK_RANGES}]|[^\\W{_CJK_RANGES}]+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCTUATION = frozenset(string.punctuation)


def words(text: str) -> list[str]:
    """Lowercased word tokens: runs of unicode word characters, each CJK character on its own."""
    return _WORD.findall(text.lower())


def _is_punctuation(char: str) -> bool:
    """ASCII punctuation (as in SQuAD, which includes $ + < = > ^ ` | ~) or any unicode P* char."""
    return char in _ASCII_PUNCTUATION or unicodedata.category(char).startswith("P")


def normalize_answer(text: str) -> str:
    """SQuAD-style: lowercase, drop punctuation and the articles a/an/the, collapse whitespace."""
    text = "".join(char for char in text.lower() if not _is_punctuation(char))
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when both answers are equal after normalize_answer, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def _f_measure(overlap: int, predicted: int, expected: int) -> float:
    """Harmonic mean of precision overlap/predicted and recall overlap/expected (beta = 1)."""
    if overlap == 0:
        return 0.0
    precision, recall = overlap / predicted, overlap / expected
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD bag-of-words F1 on the normalised words; 1.0 when both are empty."""
    predicted, expected = words(normalize_answer(prediction)), words(normalize_answer(reference))
    if not predicted or not expected:
        return float(predicted == expected)
    overlap = sum((Counter(predicted) & Counter(expected)).values())
    return _f_measure(overlap, len(predicted), len(expected))


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence: O(n*m) time, O(min(n, m)) memory."""
    if len(first) < len(second):
        first, second = second, first
    previous = [0] * (len(second) + 1)
    for item in first:
        current = [0]
        for j, other in enumerate(second):
            if item == other:
                current.append(previous[j] + 1)
            else:
                current.append(max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (beta = 1) from the longest common subsequence of words().

    1.0 when both are empty, 0.0 when exactly one is.
    """
    predicted, expected = words(prediction), words(reference)
    if not predicted or not expected:
        return float(predicted == expected)
    return _f_measure(lcs_length(predicted, expected), len(predicted), len(expected))


def generation_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean rouge_l, exact_match and token_f1 over (prediction, reference) pairs; {} if none."""
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions but {len(references)} references: "
            "each generated answer needs exactly one reference answer"
        )
    if not predictions:
        return {}
    pairs = list(zip(predictions, references, strict=True))
    scorers = {"rouge_l": rouge_l, "exact_match": exact_match, "token_f1": token_f1}
    return {
        name: sum(score(pred, ref) for pred, ref in pairs) / len(pairs)
        for name, score in scorers.items()
    }
