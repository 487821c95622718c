"""Exact and near-duplicate filtering of texts: MinHash over character shingles, bucketed by LSH bands.

Scraped corpora repeat themselves (the same chapter from two sites, a wiki page quoted in a forum post), and
generated questions repeat each other with a word changed. Comparing every pair is quadratic; MinHash signatures
split into bands find the likely pairs in one pass, and each candidate is then confirmed with the exact Jaccard
similarity of the two shingle sets, so the threshold means what it says.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import numpy as np

_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)
_MERSENNE = np.uint64((1 << 61) - 1)
_MAX_HASH = np.uint64((1 << 32) - 1)


def dedup_key(text: str) -> str:
    """The text as compared: NFKC, lower case, without whitespace and punctuation."""
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).lower())


def shingles(text: str, size: int) -> frozenset[str]:
    """Overlapping character n-grams of the comparison key (the whole key when it is shorter)."""
    key = dedup_key(text)
    if len(key) <= size:
        return frozenset([key]) if key else frozenset()
    return frozenset(key[i : i + size] for i in range(len(key) - size + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / |a ∪ b|; two empty sets are identical."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass(frozen=True)
class Duplicate:
    """Why a text was dropped: it equals (``exact``) or nearly equals (``near``) the text kept at ``of``."""

    kind: Literal["exact", "near"]
    of: int  # index, among the kept texts, of the one it repeats
    similarity: float


class Deduplicator:
    """Keeps the first of each group of (near-)identical texts; feed texts in order with ``check``."""

    def __init__(self, threshold: float = 0.85, shingle_size: int = 5, bands: int = 16, rows: int = 4) -> None:
        """``threshold``: shingle-set Jaccard at or above which a text counts as a repeat."""
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if shingle_size < 1 or bands < 1 or rows < 1:
            raise ValueError("shingle_size, bands and rows must be positive")
        self.threshold = threshold
        self.shingle_size = shingle_size
        self.bands = bands
        self.rows = rows
        rng = np.random.default_rng(0x5EED)  # fixed: the same corpus always dedups the same way
        perms = bands * rows
        self._a = rng.integers(1, 1 << 32, size=perms, dtype=np.uint64)
        self._b = rng.integers(0, 1 << 32, size=perms, dtype=np.uint64)
        self._exact: dict[str, int] = {}
        self._buckets: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
        self._kept: list[frozenset[str]] = []

    def __len__(self) -> int:
        return len(self._kept)

    def check(self, text: str) -> Duplicate | None:
        """None when the text is new (it is remembered), else which kept text it repeats."""
        key = dedup_key(text)
        if key in self._exact:
            return Duplicate("exact", self._exact[key], 1.0)
        grams = shingles(text, self.shingle_size)
        bands = self._band_keys(grams)
        best: Duplicate | None = None
        seen: set[int] = set()
        for band, bucket_key in enumerate(bands):
            for other in self._buckets[band].get(bucket_key, ()):
                if other in seen:
                    continue
                seen.add(other)
                similarity = jaccard(grams, self._kept[other])
                if similarity >= self.threshold and (best is None or similarity > best.similarity):
                    best = Duplicate("near", other, similarity)
        if best is not None:
            return best
        index = len(self._kept)
        self._kept.append(grams)
        self._exact[key] = index
        for band, bucket_key in enumerate(bands):
            self._buckets[band].setdefault(bucket_key, []).append(index)
        return None

    def _band_keys(self, grams: frozenset[str]) -> list[bytes]:
        if not grams:
            return [b""] * self.bands
        hashes = np.fromiter(
            (int.from_bytes(hashlib.blake2b(g.encode(), digest_size=4).digest(), "little") for g in grams),
            dtype=np.uint64,
            count=len(grams),
        )
        # (a*h + b) mod p with 32-bit a, b, h stays inside 64 bits: one universal hash per permutation.
        permuted = (self._a[:, None] * hashes[None, :] + self._b[:, None]) % _MERSENNE & _MAX_HASH
        signature = permuted.min(axis=1)
        return [signature[i * self.rows : (i + 1) * self.rows].tobytes() for i in range(self.bands)]
