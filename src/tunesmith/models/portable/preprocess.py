"""A tunesmith text classifier's input preprocessing, without tunesmith (copied into the
export folder beside preprocess.json, which holds the settings and word lists):

    import sys; sys.path.insert(0, folder)
    from preprocess import prepare   # then: texts = [prepare(t) for t in texts]

Order, as in training: Unicode NFKC -> lowercase -> stop words. English texts are split on
whitespace and a word is dropped when its letters (punctuation around it stripped, any case)
are a stop word; Japanese texts are tokenised with janome (`pip install janome`) and
particles, auxiliary verbs other than negations, symbols and the listed words are dropped,
the kept tokens joined with single spaces. A text left empty keeps its normalised form.
Imports only the standard library (and janome for Japanese)."""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

SETTINGS = Path(__file__).with_name("preprocess.json")


class TextPreparer:
    """`preparer(text)`: the text as the model saw it in training (before its tokenizer)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.unicode = settings.get("unicode", "none")
        self.lowercase = bool(settings.get("lowercase", False))
        self.stop_words = settings.get("stop_words", "none")
        self.extra = frozenset(settings.get("extra_stop_words", ()))
        self.english = frozenset(settings.get("english_stop_words", ()))
        self.japanese = frozenset(settings.get("japanese_stop_words", ()))
        self.dropped_pos = tuple(settings.get("japanese_dropped_pos", ()))
        self.negations = frozenset(settings.get("japanese_negations", ()))
        self.punctuation = settings.get("punctuation", "")
        self.script = re.compile(settings.get("japanese_script", "(?!)"))

    @classmethod
    def load(cls, path: str | Path = SETTINGS) -> TextPreparer:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    @property
    def removes_words(self) -> bool:
        return self.stop_words != "none" or bool(self.extra)

    def __call__(self, text: str) -> str:
        if self.unicode == "nfkc":
            text = unicodedata.normalize("NFKC", text)
        if self.lowercase:
            text = text.lower()
        if not self.removes_words or not text.strip():
            return text
        japanese = self.stop_words == "japanese" or (
            self.stop_words != "english" and self.script.search(text) is not None
        )
        kept = self._japanese(text) if japanese else self._english(text)
        return " ".join(kept) if kept else text

    def _english(self, text: str) -> list[str]:
        listed = self.english if self.stop_words in ("english", "auto") else frozenset()
        kept = []
        for token in text.split():
            word = token.strip(self.punctuation).lower()
            if word and (word in listed or word in self.extra):
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
            negation = pos == "助動詞" and base in self.negations
            if builtin and (
                (pos in self.dropped_pos and not negation)
                or all(unicodedata.category(c)[0] in "PS" for c in surface)
                or surface in self.japanese
                or base in self.japanese
            ):
                continue
            if surface.lower() in self.extra or base.lower() in self.extra:
                continue
            kept.append(surface)
        return kept


@functools.cache
def _janome() -> Any:
    from janome.tokenizer import Tokenizer

    return Tokenizer()


@functools.cache
def _default() -> TextPreparer:
    return TextPreparer.load()


def prepare(text: str) -> str:
    """`text` preprocessed as in training, with the settings of the preprocess.json beside
    this file."""
    return _default()(text)
