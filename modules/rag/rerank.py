"""Optional cross-encoder reranking (e.g. maidalun1020/bce-reranker-base_v1)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class CrossEncoderReranker:
    """Re-scores (question, passage) pairs with a sentence-transformers CrossEncoder."""

    def __init__(self, model_dir: Path, device: str = "cpu") -> None:
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(str(model_dir), device=device)

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        out = self.model.predict([(query, t) for t in texts], show_progress_bar=False)
        return [float(s) for s in out]
