"""Fingerprints for finding duplicates: normalised text and character n-gram vectors for text,
a perceptual hash and a small grey thumbnail for images; and the pairs of rows whose vectors
are nearly the same."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

import numpy as np
from PIL import Image
from rapidfuzz.distance import OSA
from scipy import sparse
from scipy.fft import dctn
from sklearn.feature_extraction.text import TfidfVectorizer

from tunesmith.data.images import open_image

CANDIDATE_TEXT = 0.4
"""Cosine similarity of character 2-4-gram TF-IDF vectors from which two texts are compared
character by character (a cheap filter: most pairs are far below it)."""
NEAR_TEXT_EDITS = 0.1
"""Two normalised texts are near duplicates when at most this share of their characters
differ (edit distance with transpositions; at least one edit allowed for texts of
MIN_NEAR_LENGTH characters and more): a typo, another spelling, a changed word in a
longer text."""
MIN_NEAR_LENGTH = 6
MAX_SHARE = 0.05
"""n-grams in more than this share of the texts (and more than 50 texts) are left out of
the vectors: they say little about sameness and make every pair a candidate (quadratic time
on large sets: 30,000 texts took 65 s with them, 22 s without)."""
NEAR_TEXT_COSINE = 0.95
"""... or when their n-gram vectors are this close (long texts with moved passages)."""
NEAR_IMAGE = 0.99
"""Correlation of 32x32 grey thumbnails from which two images are near duplicates (resized,
re-encoded, brightened or noised copies). Measured on Fashion-MNIST: such copies correlate
above 0.994 with their original, distinct photos of one kind of garment up to 0.986."""
NEAR_IMAGE_HASH_BITS = 10
"""... and their 64-bit perceptual hashes differ in at most this many bits."""
_BLOCK = 2048


def normalise_text(text: str) -> str:
    """What makes two texts "the same": Unicode NFKC, case folded, punctuation and symbols
    dropped, runs of spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(c)[0] in "PSZC" else c for c in text)
    return re.sub(r"\s+", " ", text).strip()


def text_vectors(texts: Sequence[str]) -> sparse.csr_matrix:
    """L2-normalised character n-gram TF-IDF rows (works for any script, CJK included)."""
    if not texts:
        return sparse.csr_matrix((0, 1))
    vectorizer = TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(2, 4),
        sublinear_tf=True,
        max_df=max(50, int(MAX_SHARE * len(texts))),
    )
    try:
        return vectorizer.fit_transform(texts).tocsr()
    except ValueError:  # every text empty
        return sparse.csr_matrix((len(texts), 1))


def similar_pairs(vectors: sparse.csr_matrix | np.ndarray, threshold: float) -> np.ndarray:
    """(i, j) pairs with i < j whose rows have a dot product >= threshold (cosine for
    L2-normalised rows), computed in blocks so memory stays bounded."""
    n = vectors.shape[0]
    found = []
    for start in range(0, n, _BLOCK):
        block = vectors[start : start + _BLOCK]
        scores = block @ vectors.T
        if sparse.issparse(scores):
            scores = scores.tocoo()
            rows, cols, values = scores.row, scores.col, scores.data
            keep = values >= threshold
            rows, cols = rows[keep] + start, cols[keep]
        else:
            rows, cols = np.nonzero(scores >= threshold)
            rows = rows + start
        upper = cols > rows
        found.append(np.stack([rows[upper], cols[upper]], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=int)
    return np.concatenate(found).astype(int)


def near_text_pairs(texts: Sequence[str]) -> np.ndarray:
    """(i, j) pairs of normalised texts that are near duplicates (not exact ones)."""
    vectors = text_vectors(texts)
    candidates = similar_pairs(vectors, CANDIDATE_TEXT)
    keep = []
    for i, j in candidates:
        a, b = texts[i], texts[j]
        if a == b:  # exact duplicates are found (and reported) as such
            keep.append(False)
            continue
        longest = max(len(a), len(b))
        allowed = (
            max(1, int(NEAR_TEXT_EDITS * longest)) if min(len(a), len(b)) >= MIN_NEAR_LENGTH else 0
        )
        close = allowed and OSA.distance(a, b, score_cutoff=allowed) <= allowed
        keep.append(bool(close) or float(vectors[i].multiply(vectors[j]).sum()) >= NEAR_TEXT_COSINE)
    return candidates[np.asarray(keep, dtype=bool)] if keep else np.zeros((0, 2), dtype=int)


class ImagePrint:
    """An image's fingerprints: the digest of its decoded pixels (exact copies, whatever the
    file format), a 64-bit DCT perceptual hash and a mean-centred unit thumbnail."""

    __slots__ = ("digest", "hash_bits", "thumbnail")

    def __init__(self, path: str) -> None:
        image = open_image(path)
        self.digest = hashlib.blake2b(
            image.tobytes() + repr(image.size).encode(), digest_size=16
        ).hexdigest()
        grey = image.convert("L")
        self.hash_bits = _phash(grey)
        small = np.asarray(
            grey.resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float32
        ).ravel()
        small -= small.mean()
        norm = np.linalg.norm(small)
        self.thumbnail = small / norm if norm > 1e-6 else small


def near_image_pairs(prints: Sequence[ImagePrint]) -> np.ndarray:
    """Pairs of images whose thumbnails correlate >= NEAR_IMAGE and whose perceptual hashes
    differ in <= NEAR_IMAGE_HASH_BITS bits (both must agree: plain backgrounds make
    thumbnails alike, and the hash alone confuses similar shapes)."""
    if len(prints) < 2:
        return np.zeros((0, 2), dtype=int)
    thumbnails = np.stack([p.thumbnail for p in prints])
    pairs = similar_pairs(thumbnails, NEAR_IMAGE)
    if len(pairs) == 0:
        return pairs
    bits = np.stack([p.hash_bits for p in prints])
    distance = (bits[pairs[:, 0]] != bits[pairs[:, 1]]).sum(1)
    return pairs[distance <= NEAR_IMAGE_HASH_BITS]


def _phash(grey: Image.Image) -> np.ndarray:
    """The classic pHash: 32x32 grey, 2-D DCT, the 8x8 lowest frequencies above their
    median."""
    pixels = np.asarray(grey.resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float32)
    low = dctn(pixels, norm="ortho")[:8, :8].ravel()
    return low > np.median(low[1:])
