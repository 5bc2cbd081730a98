"""A knowledge source for retrieval (`data.documents`): a folder or one file of .txt, .md,
.html, .pdf or .jsonl documents, read as text and cut into overlapping passages.

A .jsonl file holds one document per line: a `text` field (or `content`, `body`), and an
optional `id` (or `source`, `title`) that names it; any other file is one document named by
its path relative to the folder.

Passages follow the text's own boundaries, as recursive text splitters do: whole
paragraphs are packed into a passage of at most `size` words; a paragraph longer than that
is cut between sentences, and a sentence longer than that into windows of words. Each
passage after a document's first begins with the last paragraphs or sentences of the one
before, up to `overlap` words, so a fact at a boundary is whole in one of them. Words are
runs of non-space characters and each CJK character counts as one (a Japanese sentence has
no spaces), so sizes mean the same in every script.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from tunesmith.data.causal import html_to_text, list_documents, read_utf8
from tunesmith.errors import UserError

DOCUMENT_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl")
TEXT_FIELDS = ("text", "content", "body", "passage")
NAME_FIELDS = ("id", "source", "title", "name", "url")

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f"
_WORD = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")


@dataclass(frozen=True)
class Document:
    source: str
    """The document's name: its path relative to the folder, or its jsonl id."""
    text: str


@dataclass(frozen=True)
class Passage:
    id: int
    source: str
    """The document it was cut from."""
    text: str


def read_documents(path: str | Path, role: str = "data.documents") -> list[Document]:
    """The documents of a folder (searched recursively, hidden files skipped) or of one file,
    in a stable order; empty documents are left out. Every problem names the file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{role}: {path} does not exist; give a folder or a file of documents")
    if path.is_dir():
        files = list_documents(path, DOCUMENT_SUFFIXES)
        if not files:
            raise UserError(
                f"{role}: the folder {path} holds no documents ({', '.join(DOCUMENT_SUFFIXES)} "
                "files, searched recursively); put the knowledge source there"
            )
        root = path
    else:
        if path.suffix.lower() not in DOCUMENT_SUFFIXES:
            raise UserError(
                f"{role}: {path} is not a document file; use one of "
                f"{', '.join(DOCUMENT_SUFFIXES)}, or a folder of them"
            )
        files, root = [path], path.parent
    documents = []
    for file in files:
        name = file.relative_to(root).as_posix()
        documents += _read_file(file, name, role)
    documents = [d for d in documents if d.text.strip()]
    if not documents:
        raise UserError(f"{role}: {path}: every document is empty")
    return documents


def _read_file(file: Path, name: str, role: str) -> list[Document]:
    suffix = file.suffix.lower()
    if suffix == ".pdf":
        return [Document(name, _pdf_text(file, role))]
    text = _utf8(file, role)
    if suffix in (".html", ".htm"):
        return [Document(name, html_to_text(text))]
    if suffix == ".jsonl":
        return _jsonl_documents(file, text, name, role)
    return [Document(name, text.strip())]


def _utf8(file: Path, role: str) -> str:
    try:
        return read_utf8(file, role)
    except UserError as error:
        raise UserError(f"{error}; or remove it from the knowledge source") from None


def _pdf_text(file: Path, role: str) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(file)
        if reader.is_encrypted:
            raise UserError(f"{role}: {file} is an encrypted PDF; save a copy without a password")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, OSError, ValueError, KeyError) as error:
        raise UserError(
            f"{role}: {file} is not a readable PDF ({error}); re-save it, or remove it"
        ) from None
    return "\n\n".join(page.strip() for page in pages if page.strip())


def _jsonl_documents(file: Path, text: str, name: str, role: str) -> list[Document]:
    documents = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(
                f"{role}: {file} line {line_number} is not JSON ({error.msg}); one JSON "
                "object per line"
            ) from None
        field = next((f for f in TEXT_FIELDS if isinstance(record, dict) and f in record), None)
        if field is None or not isinstance(record[field], str):
            raise UserError(
                f"{role}: {file} line {line_number} has no text field (one of "
                f"{', '.join(TEXT_FIELDS)}, holding a string)"
            )
        key = next((f for f in NAME_FIELDS if record.get(f) not in (None, "")), None)
        source = str(record[key]) if key else f"{name}#{line_number}"
        documents.append(Document(source, record[field].strip()))
    return documents


_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")


def chunk_documents(documents: list[Document], size: int, overlap: int) -> list[Passage]:
    """Each document cut into passages of at most `size` words along paragraph, then
    sentence, then word boundaries; neighbours share up to `overlap` words."""
    if not 0 <= overlap < size:
        raise ValueError(f"overlap {overlap} must be at least 0 and below size {size}")
    passages: list[Passage] = []
    for document in documents:
        for text in _pack(_units(document.text, size, overlap), size, overlap):
            passages.append(Passage(len(passages), document.source, text))
    return passages


Unit = tuple[str, int]
"""A piece of text and the number of the paragraph it comes from."""


def _units(text: str, size: int, overlap: int) -> list[Unit]:
    """The text as pieces of at most `size` words, each with its paragraph's number."""
    return [
        (piece, number)
        for number, paragraph in enumerate(_PARAGRAPH.split(text))
        for piece in _pieces(paragraph, size, overlap)
    ]


def _pieces(text: str, size: int, overlap: int) -> list[str]:
    """`text` whole when it fits, else its sentences (each cut the same way), else windows
    of words that overlap by `overlap` words."""
    text = text.strip()
    if not text:
        return []
    if word_count(text) <= size:
        return [text]
    sentences = [part for part in _SENTENCE_END.split(text) if part.strip()]
    if len(sentences) > 1:
        return [piece for sentence in sentences for piece in _pieces(sentence, size, overlap)]
    spans = [m.span() for m in _WORD.finditer(text)]
    windows, start = [], 0
    while True:
        window = spans[start : start + size]
        windows.append(text[window[0][0] : window[-1][1]])
        if start + size >= len(spans):
            return windows
        start += size - overlap


def _pack(units: list[Unit], size: int, overlap: int) -> list[str]:
    """Consecutive units joined into passages of at most `size` words; each new passage
    starts with the previous one's last units that fit in `overlap` words (and in `size`
    with the next unit)."""
    passages: list[str] = []
    current: list[Unit] = []
    words = 0
    for unit in units:
        count = word_count(unit[0])
        if current and words + count > size:
            passages.append(_join(current))
            carried: list[Unit] = []
            kept = 0
            for previous in reversed(current):
                n = word_count(previous[0])
                if kept + n > overlap or kept + n + count > size:
                    break
                carried.insert(0, previous)
                kept += n
            current, words = carried, kept
        current.append(unit)
        words += count
    if current:
        passages.append(_join(current))
    return passages


def _join(units: list[Unit]) -> str:
    """Sentences of one paragraph joined by a space, paragraphs by a blank line."""
    text = units[0][0]
    for (piece, number), (_, before) in zip(units[1:], units, strict=False):
        text += (" " if number == before else "\n\n") + piece
    return text


def word_count(text: str) -> int:
    """Words as chunking counts them (each CJK character one word)."""
    return len(_WORD.findall(text))
