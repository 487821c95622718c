"""Dense retrieval: sentence-transformers embeddings stored in a Chroma PersistentClient.

Chroma gets our own vectors (``embedding_function=None``): its default embedder would try to
download a model. For a shared index, point several apps at a Chroma server instead (see README).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from modules.rag.types import Chunk

COLLECTION = "chunks"


class DenseIndex:
    """Embeds chunks once at build time and answers nearest-neighbour queries."""

    def __init__(self, model_dir: Path, persist_dir: Path, device: str = "cpu", batch_size: int = 32) -> None:
        try:
            import chromadb
            from chromadb.config import Settings as ChromaSettings
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - both are in requirements.txt
            raise ImportError(f"dense retrieval needs chromadb and sentence-transformers: {exc}") from exc
        self.model = SentenceTransformer(str(model_dir), device=device)
        self.batch_size = batch_size
        self._client = chromadb.PersistentClient(
            path=str(persist_dir), settings=ChromaSettings(anonymized_telemetry=False)
        )
        self._collection = self._client.get_or_create_collection(
            COLLECTION, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )

    def _embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return [list(map(float, v)) for v in vectors]

    def count(self) -> int:
        return int(self._collection.count())

    def add(self, chunks: Sequence[Chunk], index_texts: Sequence[str]) -> None:
        """Embed and store chunks (index_texts carry the title so the vector knows the entity)."""
        step = 256
        for start in range(0, len(chunks), step):
            batch = chunks[start : start + step]
            self._collection.add(
                ids=[str(c.chunk_id) for c in batch],
                embeddings=self._embed(index_texts[start : start + step]),
                metadatas=[{"doc_id": c.doc_id, "title": c.title} for c in batch],
            )

    def query(self, text: str, n: int) -> list[tuple[int, float]]:
        """(chunk_id, cosine similarity) of the n nearest chunks, best first."""
        n = min(n, self.count())
        if n <= 0:
            return []
        result = self._collection.query(query_embeddings=self._embed([text]), n_results=n, include=["distances"])
        ids = result["ids"][0]
        distances = result["distances"][0] if result.get("distances") else [0.0] * len(ids)
        return [(int(i), 1.0 - float(d)) for i, d in zip(ids, distances, strict=True)]
