"""BM25 over jieba tokens, backed by bm25s (sparse matrices, fast on a CPU)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class BM25Index:
    """Scores every chunk against a token list; saved and loaded with the index cache."""

    def __init__(self, model: object, doc_freq: dict[str, int], n_docs: int) -> None:
        self._model = model
        self._vocab: dict[str, int] = model.vocab_dict  # type: ignore[attr-defined]
        self.doc_freq = doc_freq
        self.n_docs = n_docs

    @classmethod
    def build(cls, corpus_tokens: Sequence[Sequence[str]]) -> BM25Index:
        import bm25s

        if not corpus_tokens:
            raise ValueError("cannot build a BM25 index over no chunks")
        # An empty token list would upset bm25s' vocabulary; a placeholder token matches nothing.
        safe = [list(toks) or ["\x00"] for toks in corpus_tokens]
        model = bm25s.BM25(k1=1.2, b=0.75)
        model.index(safe, show_progress=False)
        doc_freq = Counter(t for toks in safe for t in set(toks))
        return cls(model, dict(doc_freq), len(safe))

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """A BM25 score per chunk (0 for chunks sharing no token with the query)."""
        known = [t for t in query_tokens if t in self._vocab]
        if not known:
            return np.zeros(self.n_docs, dtype=np.float32)
        return np.asarray(self._model.get_scores(known), dtype=np.float32)  # type: ignore[attr-defined]

    def idf(self, token: str) -> float:
        """BM25's inverse document frequency; a token no chunk has is as rare as can be.

        Unknown words weigh the most on purpose: a question full of them is one the knowledge
        base does not cover, however well its one familiar name matches.
        """
        df = self.doc_freq.get(token, 0)
        return math.log(1 + (self.n_docs - df + 0.5) / (df + 0.5))

    def save(self, directory: Path) -> None:
        self._model.save(str(directory / "bm25"))  # type: ignore[attr-defined]
        (directory / "doc_freq.json").write_text(
            json.dumps({"n_docs": self.n_docs, "df": self.doc_freq}, ensure_ascii=False), "utf-8"
        )

    @classmethod
    def load(cls, directory: Path) -> BM25Index:
        import bm25s

        meta = json.loads((directory / "doc_freq.json").read_text("utf-8"))
        return cls(bm25s.BM25.load(str(directory / "bm25")), meta["df"], meta["n_docs"])
