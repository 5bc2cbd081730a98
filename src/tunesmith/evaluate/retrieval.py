"""Retrieval for the RAG and few-shot contenders: BM25 (bm25s) and dense sentence
embeddings (sentence-transformers, exact inner product in faiss; HNSW past
`HNSW_FROM_PASSAGES`), fused by reciprocal rank (hybrid, the default).

An index is saved in a folder of the run (passages.jsonl, a bm25s index, a faiss index and
a manifest; nothing is pickled) and reused while the passages, ranking and embedder are the
ones it was built from; else it is built again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tunesmith.data.documents import Passage
from tunesmith.errors import UserError
from tunesmith.evaluate.generation import words
from tunesmith.progress import track
from tunesmith.recipe import RetrievalConfig
from tunesmith.safe_files import write_text_atomically

RRF_K = 60
"""Reciprocal rank fusion's constant (Cormack et al. 2009): a passage scores
sum(1 / (RRF_K + rank)) over the rankings that hold it."""
CANDIDATES = 50
"""Passages each ranking hands to the fusion."""
HNSW_FROM_PASSAGES = 50_000
"""Above this many passages the dense index is approximate (HNSW) instead of exact."""
EMBED_BATCH = 64
MANIFEST = "manifest.json"
FORMAT = 1


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float


@dataclass
class Retriever:
    passages: list[Passage]
    ranking: str
    embedder_name: str
    bm25: object | None = None
    dense: object | None = None
    build_seconds: float = 0.0
    reused: bool = False
    _embedder: object | None = field(default=None, repr=False)

    @classmethod
    def build(cls, passages: list[Passage], config: RetrievalConfig) -> Retriever:
        """Index `passages` the way `config.ranking` says (bm25, dense or hybrid)."""
        if not passages:
            raise UserError("retrieval: the knowledge source has no passage to index")
        started = time.perf_counter()
        retriever = cls(passages, config.ranking, config.embedder)
        if config.ranking in ("bm25", "hybrid"):
            retriever.bm25 = _bm25_index([p.text for p in passages])
        if config.ranking in ("dense", "hybrid"):
            vectors = retriever.embed([p.text for p in passages], "Embedding passages")
            retriever.dense = _dense_index(vectors)
        retriever.build_seconds = round(time.perf_counter() - started, 3)
        return retriever

    # -- search ---------------------------------------------------------------------------

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """The k best passages for each query, best first."""
        k = min(k, len(self.passages))
        depth = min(max(CANDIDATES, k), len(self.passages))
        rankings: list[list[list[tuple[int, float]]]] = []
        if self.bm25 is not None:
            rankings.append(self._bm25_search(queries, depth))
        if self.dense is not None:
            rankings.append(self._dense_search(queries, depth))
        if len(rankings) == 1:
            return [[Hit(self.passages[i], s) for i, s in ranked[:k]] for ranked in rankings[0]]
        return [
            [Hit(self.passages[i], s) for i, s in fuse([r[q] for r in rankings])[:k]]
            for q in range(len(queries))
        ]

    def _bm25_search(self, queries: Sequence[str], depth: int) -> list[list[tuple[int, float]]]:
        tokens = [_bm25_tokens(q) or ["\x00"] for q in queries]  # an empty query finds nothing
        vocabulary = self.bm25.vocab_dict
        known = [[t for t in q if t in vocabulary] for q in tokens]
        out = []
        for query in known:
            if not query:
                out.append([])
                continue
            scores = self.bm25.get_scores(query)
            order = np.argsort(-scores, kind="stable")[:depth]
            out.append([(int(i), float(scores[i])) for i in order if scores[i] > 0])
        return out

    def _dense_search(self, queries: Sequence[str], depth: int) -> list[list[tuple[int, float]]]:
        vectors = self.embed(list(queries), "Embedding questions")
        scores, ids = self.dense.search(vectors, depth)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def embed(self, texts: list[str], what: str) -> np.ndarray:
        """Unit-length sentence embeddings, float32, a batch at a time with a progress bar."""
        model = self.embedder()
        batches = [texts[i : i + EMBED_BATCH] for i in range(0, len(texts), EMBED_BATCH)]
        parts = [
            model.encode(batch, normalize_embeddings=True, convert_to_numpy=True)
            for batch in track(batches, what, size=len, unit="texts")
        ]
        dimension = model.get_embedding_dimension()
        if not parts:
            return np.zeros((0, dimension), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(parts).astype(np.float32))

    def embedder(self) -> object:
        if self._embedder is None:
            self._embedder = load_embedder(self.embedder_name)
        return self._embedder

    # -- storage ----------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        import faiss

        folder.mkdir(parents=True, exist_ok=True)
        lines = (json.dumps(vars(p), ensure_ascii=False) for p in self.passages)
        write_text_atomically(folder / "passages.jsonl", "\n".join(lines) + "\n")
        if self.bm25 is not None:
            self.bm25.save(str(folder / "bm25"))
        if self.dense is not None:
            faiss.write_index(self.dense, str(folder / "dense.faiss"))
        manifest = {
            "format": FORMAT,
            "digest": index_digest(self.passages, self.ranking, self.embedder_name),
            "passages": len(self.passages),
            "documents": len({p.source for p in self.passages}),
            "ranking": self.ranking,
            "embedder": self.embedder_name,
            "build_seconds": self.build_seconds,
        }
        write_text_atomically(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path, passages: list[Passage], config: RetrievalConfig) -> Retriever:
        """The index saved in `folder` for exactly these passages and settings; a
        missing, stale or damaged index is a UserError naming the folder."""
        import bm25s
        import faiss

        manifest = read_manifest(folder)
        digest = index_digest(passages, config.ranking, config.embedder)
        if manifest is None or manifest.get("digest") != digest:
            raise UserError(
                f"{folder}: no retrieval index for these passages and settings; it is built "
                "again when the knowledge source or the retrieval keys change"
            )
        retriever = cls(passages, config.ranking, config.embedder, reused=True)
        retriever.build_seconds = float(manifest.get("build_seconds", 0.0))
        try:
            if config.ranking in ("bm25", "hybrid"):
                retriever.bm25 = bm25s.BM25.load(str(folder / "bm25"), load_corpus=False)
            if config.ranking in ("dense", "hybrid"):
                retriever.dense = faiss.read_index(str(folder / "dense.faiss"))
        except (OSError, RuntimeError, ValueError, KeyError) as error:
            raise UserError(f"{folder}: the retrieval index is damaged ({error})") from None
        if retriever.dense is not None and retriever.dense.ntotal != len(passages):
            raise UserError(f"{folder}: the dense index does not match its passages")
        return retriever


def open_retriever(folder: Path, passages: list[Passage], config: RetrievalConfig) -> Retriever:
    """The index in `folder` when it was built from these passages with these settings,
    else a new one, saved there."""
    try:
        return Retriever.load(folder, passages, config)
    except UserError:
        pass
    retriever = Retriever.build(passages, config)
    try:
        retriever.save(folder)
    except OSError as error:  # a read-only run folder: answer anyway, from memory
        from rich.console import Console

        Console(stderr=True).print(
            f"[yellow]The retrieval index was not saved in {folder}: {error}"
        )
    return retriever


def read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def index_digest(passages: Sequence[Passage], ranking: str, embedder: str) -> str:
    digest = hashlib.sha256(json.dumps([ranking, embedder]).encode())
    for passage in passages:
        digest.update(json.dumps([passage.source, passage.text], ensure_ascii=False).encode())
    return digest.hexdigest()[:32]


def fuse(rankings: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of several rankings of (id, score), best first; ties keep
    the order of the first ranking that holds the id."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (item, _) in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda pair: -pair[1])


def recall_at_k(hits: Sequence[Sequence[Hit]], answers: Sequence[str | None]) -> float | None:
    """Share of the questions whose answering document (by name, path or file stem) is
    among its retrieved passages' documents; None when no question names one."""
    pairs = [(found, gold) for found, gold in zip(hits, answers, strict=True) if gold]
    if not pairs:
        return None
    return sum(any(same_source(h.passage.source, gold) for h in found) for found, gold in pairs) / (
        len(pairs)
    )


def same_source(source: str, gold: str) -> bool:
    """A passage's document is the named one: the same name, path suffix or file stem, or
    a file in the named folder."""
    source, gold = source.strip().lower(), gold.strip().lower()
    if source == gold or source.endswith("/" + gold) or source.startswith(gold.rstrip("/") + "/"):
        return True
    stem = Path(source).stem if "#" not in source else source
    return stem == gold or Path(gold).stem == stem


@functools.lru_cache(maxsize=2)
def load_embedder(name: str) -> object:
    """A sentence-transformers model from builtin:NAME, a local folder or the local Hugging
    Face cache (a plain encoder folder is mean-pooled)."""
    import logging

    from sentence_transformers import SentenceTransformer

    from tunesmith.models.resolve import resolve_model

    folder = resolve_model(name)
    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    try:
        return SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    except (OSError, ValueError) as error:
        raise UserError(
            f"retrieval.embedder: {name} ({folder}) is not a sentence embedding model "
            f"({error}); use builtin:minilm or a sentence-transformers folder"
        ) from None


def _bm25_tokens(text: str) -> list[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return [w for w in words(text) if w not in ENGLISH_STOP_WORDS]


def _bm25_index(texts: list[str]) -> object:
    import bm25s

    index = bm25s.BM25()
    tokens = [_bm25_tokens(t) or ["\x00"] for t in texts]
    index.index(tokens, show_progress=False)
    return index


def _dense_index(vectors: np.ndarray) -> object:
    import faiss

    if len(vectors) > HNSW_FROM_PASSAGES:
        index = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index
