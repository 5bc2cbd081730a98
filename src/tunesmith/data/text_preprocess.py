"""Text preprocessing: Unicode normalisation, lowercasing and stop-word removal.

One `TextPreprocessor`, built from the recipe's `preprocess` section, is applied wherever a
text enters a model or a baseline: training, validation and test texts, `tunesmith eval
--data` and `tunesmith predict`. The run folder's recipe.yaml holds the settings, so a
trained run rebuilds exactly the preprocessing it was trained with.

Order: NFKC (full-width "ＡＢＣ１２３" -> "ABC123", half-width "ｶﾀｶﾅ" -> "カタカナ") ->
lowercase -> stop words. English texts are split on whitespace and a word is dropped when
its letters (punctuation around it stripped, any case) are a stop word. Japanese texts are
tokenised with janome; particles (助詞), auxiliary verbs (助動詞) other than the negations
(ない, ぬ, ん, まい), symbols (記号) and a short list of our own are dropped, and the kept
tokens are joined with single spaces. A text left empty keeps its normalised form.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

STOP_WORD_LISTS = ("none", "english", "japanese", "auto")
PROGRESS_MIN_TEXTS = 2000


def _words(*lines: str) -> frozenset[str]:
    return frozenset(" ".join(lines).split())


_KEPT_ENGLISH = _words(
    # negations: "not good" must not become "good"
    "no not nor never neither none nobody noone nothing nowhere cannot cant couldnt hasnt",
    "without",
    # numbers: ratings, quantities
    "one two three four five six seven eight nine ten eleven twelve fifteen twenty forty",
    "fifty sixty hundred first third",
    # content words scikit-learn's list holds by accident (Nothman et al. 2018)
    "bill fire interest system amount call cry describe detail find found mill thick thin",
    "sincere serious empty full fill front back top bottom side move part name show",
)
ENGLISH = frozenset(ENGLISH_STOP_WORDS) - _KEPT_ENGLISH
"""scikit-learn's English list less the words that can decide a label: negations, numbers
and the content words it holds (system, fire, bill, ...)."""

JAPANESE = _words(
    "これ それ あれ どれ この その あの どの ここ そこ あそこ こちら そちら あちら",
    "こと もの ため よう の さん ちゃん くん 様",
    "する いる ある なる おる れる られる せる させる",
)
"""Japanese words dropped besides particles, auxiliary verbs and symbols: demonstratives,
formal nouns, honorifics and the light verbs (matched on a token's surface or dictionary form)."""

JAPANESE_DROPPED_POS = ("助詞", "助動詞", "記号")
"""janome part-of-speech classes dropped: particles, auxiliary verbs, symbols (and spaces)."""
JAPANESE_NEGATIONS = frozenset({"ない", "ぬ", "ん", "まい"})
"""Auxiliary verbs kept: 美味しくない must not become 美味しく."""

_JAPANESE_SCRIPT = re.compile(
    "[\u3040-\u30ff\u31f0-\u31ff"  # hiragana, katakana, katakana extensions
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # kanji
    "\uff66-\uff9f]"  # half-width katakana
)
_PUNCTUATION = string.punctuation + "“”‘’«»…。、，．！？「」『』（）"


def is_japanese(text: str) -> bool:
    """True when the text holds kana or kanji (how `stop_words: auto` picks the language)."""
    return _JAPANESE_SCRIPT.search(text) is not None


@functools.cache
def _janome() -> Any:
    """janome's tokenizer: loading its dictionary takes about a second, so once a process."""
    from janome.tokenizer import Tokenizer

    return Tokenizer()


@dataclass(frozen=True)
class TextPreprocessor:
    """What the recipe's text `preprocess` keys do to one text; `apply` does a list."""

    unicode: str = "nfkc"
    lowercase: bool = False
    stop_words: str = "none"
    extra_stop_words: frozenset[str] = frozenset()
    """Matched in any case, like the built-in lists (stored lowercased, and NFKC-normalised
    with unicode nfkc, so they match the normalised texts)."""

    def __post_init__(self) -> None:
        if self.unicode not in ("nfkc", "none"):
            raise ValueError(f"preprocess.unicode: {self.unicode!r}; use nfkc or none")
        if self.stop_words not in STOP_WORD_LISTS:
            raise ValueError(
                f"preprocess.stop_words: {self.stop_words!r}; use {', '.join(STOP_WORD_LISTS)}"
            )
        words = (word.strip() for word in self.extra_stop_words)
        if self.unicode == "nfkc":
            words = (unicodedata.normalize("NFKC", word) for word in words)
        object.__setattr__(self, "extra_stop_words", frozenset(w.lower() for w in words if w))

    @classmethod
    def from_config(cls, preprocess: Any) -> TextPreprocessor:
        """From the recipe's `preprocess` section (a `Preprocess` or a mapping)."""

        def get(key: str, default: Any) -> Any:
            if isinstance(preprocess, Mapping):
                return preprocess.get(key, default)
            return getattr(preprocess, key, default)

        return cls(
            unicode=get("unicode", None) or "nfkc",  # unset: the text-classification default
            lowercase=bool(get("lowercase", False)),
            stop_words=get("stop_words", "none") or "none",
            extra_stop_words=frozenset(get("extra_stop_words", ()) or ()),
        )

    @property
    def is_identity(self) -> bool:
        """True when every option is off: texts pass unchanged."""
        return not self.normalises and not self.removes_words

    @property
    def normalises(self) -> bool:
        return self.unicode != "none" or self.lowercase

    @property
    def removes_words(self) -> bool:
        return self.stop_words != "none" or bool(self.extra_stop_words)

    def describe(self) -> str:
        """One line for the console, e.g. 'NFKC, lowercase, stop words: english (+2 extra)'."""
        parts = []
        if self.unicode != "none":
            parts.append(self.unicode.upper())
        if self.lowercase:
            parts.append("lowercase")
        if self.removes_words:
            extra = f" (+{len(self.extra_stop_words)} extra)" if self.extra_stop_words else ""
            parts.append(f"stop words: {self.stop_words}{extra}")
        return ", ".join(parts) if parts else "none (texts used as given)"

    def portable_settings(self) -> dict[str, Any]:
        """These settings with the word lists they use, as JSON: what the standalone
        `preprocess.py` of an export (models/portable/preprocess.py) reads to do exactly
        what `process` does, without tunesmith."""
        return {
            "unicode": self.unicode,
            "lowercase": self.lowercase,
            "stop_words": self.stop_words,
            "extra_stop_words": sorted(self.extra_stop_words),
            "english_stop_words": sorted(ENGLISH) if self.removes_words else [],
            "japanese_stop_words": sorted(JAPANESE) if self.removes_words else [],
            "japanese_dropped_pos": list(JAPANESE_DROPPED_POS),
            "japanese_negations": sorted(JAPANESE_NEGATIONS),
            "punctuation": _PUNCTUATION,
            "japanese_script": _JAPANESE_SCRIPT.pattern,
        }

    def __call__(self, text: str) -> str:
        return self.process(text)[0]

    def apply(self, texts: Sequence[str]) -> list[str]:
        """Every text preprocessed, in order."""
        return self.apply_counted(texts)[0]

    def apply_counted(
        self, texts: Sequence[str], progress: str | None = None
    ) -> tuple[list[str], int]:
        """(preprocessed texts, how many kept their normalised form because stop-word
        removal left nothing). `progress`: a bar with this title while a long list is
        tokenised (janome takes about a millisecond a text)."""
        if self.is_identity:
            return list(texts), 0
        out, fallbacks = [], 0
        rows: Iterable[str] = texts
        if progress and self.removes_words and len(texts) >= PROGRESS_MIN_TEXTS:
            from tunesmith.progress import track

            rows = track(texts, progress, unit="texts")
        for text in rows:
            processed, fell_back = self.process(text)
            out.append(processed)
            fallbacks += fell_back
        return out, fallbacks

    def process(self, text: str) -> tuple[str, bool]:
        """(the preprocessed text, whether stop-word removal emptied it: then the text is
        only normalised, so no example is ever blank)."""
        if self.unicode == "nfkc":
            text = unicodedata.normalize("NFKC", text)
        if self.lowercase:
            text = text.lower()
        if not self.removes_words or not text.strip():
            return text, False
        kept = self._japanese(text) if self._language(text) == "japanese" else self._english(text)
        if not kept:
            return text, True
        return " ".join(kept), False

    def _language(self, text: str) -> str:
        if self.stop_words in ("english", "japanese"):
            return self.stop_words
        return "japanese" if is_japanese(text) else "english"  # auto, or extra words only

    def _english(self, text: str) -> list[str]:
        listed = ENGLISH if self.stop_words in ("english", "auto") else frozenset()
        kept = []
        for token in text.split():
            word = token.strip(_PUNCTUATION).lower()
            if word and (word in listed or word in self.extra_stop_words):
                continue
            kept.append(token)
        return kept

    def _japanese(self, text: str) -> list[str]:
        builtin = self.stop_words in ("japanese", "auto")
        kept = []
        for token in _janome().tokenize(text):
            surface, base = token.surface, token.base_form
            if not surface.strip():
                continue
            pos = token.part_of_speech.split(",", 1)[0]
            negation = pos == "助動詞" and base in JAPANESE_NEGATIONS
            if builtin and (
                (pos in JAPANESE_DROPPED_POS and not negation)
                or _is_symbols(surface)  # janome calls ASCII punctuation a noun
                or surface in JAPANESE
                or base in JAPANESE
            ):
                continue
            extra = self.extra_stop_words
            if surface.lower() in extra or base.lower() in extra:
                continue
            kept.append(surface)
        return kept


def _is_symbols(token: str) -> bool:
    """Only punctuation and symbols (Unicode categories P* and S*)."""
    return all(unicodedata.category(char)[0] in "PS" for char in token)
