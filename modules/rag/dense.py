"""Dense retrieval: one vector per knowledge-base sentence, stored in Chroma, searched in memory.

Why sentences, not chunks: the same vectors rank passages (a chunk scores as its best sentence)
and let the reader pick the sentence that answers (see llm/extractive.py), for the price of one
embedding per question. Each sentence is embedded with its entry's title in front, so "它的弱点"
inside 黑熊精's entry still knows it is about 黑熊精.

Chroma gets our own vectors (``embedding_function=None``: its default embedder would download a
model). The collection records the embedder's name and whether it is complete, so a changed
embedder or a build cut short is rebuilt, never mixed or half-used. The few thousand vectors are
also held as one numpy matrix: an exact search over them takes about a millisecond.

Relevance is reported on a calibrated scale. Raw cosines sit in a different band for every model
(e5: 0.75-0.95, USE: 0.0-0.7), so the index embeds a fixed list of off-topic questions
(assets/calibration/off_topic.txt) and records how close the knowledge base's best sentence comes
to them: relevance = (cosine - their mean) / their spread. 0 is "as close as an off-topic
question gets", 3 is far closer; one set of thresholds in the reader then serves any embedder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modules.rag.embedding import Embedder
from modules.rag.text import quotable_sentences
from modules.rag.types import Chunk

log = logging.getLogger(__name__)

COLLECTION = "sentences"


@dataclass(frozen=True)
class SentenceUnit:
    """One embedded sentence: where it sits (chunk, position among the chunk's sentences) and its text."""

    chunk_id: int
    position: int
    text: str


def sentence_units(chunks: Sequence[Chunk]) -> list[SentenceUnit]:
    """Every sentence the reader can quote, in chunk order."""
    units = []
    for chunk in chunks:
        for position, sentence in quotable_sentences(chunk.text):
            units.append(SentenceUnit(chunk.chunk_id, position, sentence))
    return units


def embedding_text(unit: SentenceUnit, title: str) -> str:
    return unit.text if title in unit.text else f"{title}：{unit.text}"


def dense_dir(index_dir: Path, embedder_name: str) -> Path:
    """Where one embedder's vectors for one index live (a readable, filesystem-safe name)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in embedder_name)[-80:]
    return index_dir / f"dense-{safe}"


class DenseIndex:
    """Sentence vectors of the knowledge base and the searches over them."""

    def __init__(
        self, embedder: Embedder, units: Sequence[SentenceUnit], matrix: np.ndarray, probes: Sequence[str] = ()
    ) -> None:
        if len(units) != len(matrix):
            raise ValueError(f"{len(units)} sentences but {len(matrix)} vectors")
        self.embedder = embedder
        self.units = list(units)
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.off_topic_mean, self.off_topic_spread = 0.0, 1.0  # without probes: raw cosines
        if probes and len(self.matrix):
            best = (embedder.embed_queries(list(probes)) @ self.matrix.T).max(axis=1)
            self.off_topic_mean = float(best.mean())
            self.off_topic_spread = max(float(best.std()), 0.02)
        chunk_ids = np.array([u.chunk_id for u in self.units], dtype=np.int64)
        # Rows are in chunk order, so each chunk's rows form one run: reduceat takes its max.
        self._starts = np.flatnonzero(np.r_[True, chunk_ids[1:] != chunk_ids[:-1]]) if len(chunk_ids) else chunk_ids
        self._chunk_of_run = chunk_ids[self._starts] if len(chunk_ids) else chunk_ids
        self._rows: dict[tuple[int, int], int] = {(u.chunk_id, u.position): i for i, u in enumerate(self.units)}
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    # -- building and loading ----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        embedder: Embedder,
        directory: Path,
        chunks: Sequence[Chunk],
        progress: Callable[[int, int], None] | None = None,
        batch_size: int = 64,
        probes: Sequence[str] = (),
    ) -> DenseIndex:
        """Load the vectors stored under ``directory``, or embed every sentence and store them.

        ``probes`` are off-topic questions that calibrate relevance (see the module docstring).
        """
        units = sentence_units(chunks)
        titles = {c.chunk_id: c.title for c in chunks}
        client = _client(directory)
        try:
            collection = client.get_collection(COLLECTION, embedding_function=None)
        except Exception:  # chromadb's NotFound type moved between versions
            collection = None
        if collection is not None:
            meta = collection.metadata or {}
            if meta.get("embedder") == embedder.name and meta.get("complete") and collection.count() == len(units):
                got = collection.get(include=["embeddings"])
                order = np.argsort(np.array([int(i) for i in got["ids"]]))
                return cls(embedder, units, np.asarray(got["embeddings"], dtype=np.float32)[order], probes)
            log.info("dense vectors under %s are incomplete or from another embedder; rebuilding", directory)
            client.delete_collection(COLLECTION)
        collection = client.create_collection(
            COLLECTION, embedding_function=None, metadata={"hnsw:space": "cosine", "embedder": embedder.name}
        )
        started = time.perf_counter()
        rows: list[np.ndarray] = []
        for start in range(0, len(units), batch_size):
            batch = units[start : start + batch_size]
            vectors = embedder.embed_passages([embedding_text(u, titles[u.chunk_id]) for u in batch])
            collection.add(
                ids=[str(start + i) for i in range(len(batch))],
                embeddings=vectors.tolist(),
                metadatas=[{"chunk_id": u.chunk_id, "position": u.position} for u in batch],
            )
            rows.append(vectors)
            if progress is not None:
                progress(start + len(batch), len(units))
        # (modify() must not repeat the distance function, which is fixed at creation.)
        collection.modify(metadata={"embedder": embedder.name, "complete": True})
        log.info("embedded %d sentences with %s in %.1f s", len(units), embedder.name, time.perf_counter() - started)
        matrix = np.concatenate(rows) if rows else np.zeros((0, 1), np.float32)
        return cls(embedder, units, matrix, probes)

    # -- searching ---------------------------------------------------------------------------

    def similarities(self, question: str) -> np.ndarray:
        """Cosine of every sentence with the question (one embedding per question, cached)."""
        with self._lock:
            cached = self._cache.get(question)
            if cached is not None:
                self._cache.move_to_end(question)
                return cached
        sims = self.matrix @ self.embedder.embed_queries([question])[0]
        with self._lock:
            self._cache[question] = sims
            while len(self._cache) > 32:
                self._cache.popitem(last=False)
        return sims

    def relevance(self, cosine: np.ndarray | float) -> np.ndarray | float:
        """Cosine on the calibrated scale: 0 = as close as an off-topic question comes."""
        return (cosine - self.off_topic_mean) / self.off_topic_spread

    def rank_chunks(self, question: str, n: int) -> list[tuple[int, float]]:
        """(chunk_id, relevance of its best sentence) of the n best chunks, best first."""
        if not self.units or n <= 0:
            return []
        best = np.maximum.reduceat(self.similarities(question), self._starts)
        order = np.argsort(-best, kind="stable")[:n]
        return [(int(self._chunk_of_run[i]), float(self.relevance(best[i]))) for i in order]

    def sentence_scores(self, question: str, chunk_id: int, positions: Sequence[int]) -> list[float | None]:
        """Relevance of the chunk's sentences at these positions (None: a sentence not embedded)."""
        sims = self.similarities(question)
        rows = [self._rows.get((chunk_id, p)) for p in positions]
        return [None if r is None else float(self.relevance(sims[r])) for r in rows]


def load_probes(path: Path) -> list[str]:
    """The off-topic calibration questions: one per line, # comments and blank lines skipped."""
    lines = (line.strip() for line in path.read_text("utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _client(directory: Path):  # noqa: ANN202 - chromadb's own type
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.PersistentClient(path=str(directory), settings=ChromaSettings(anonymized_telemetry=False))


class BackgroundDense:
    """Builds (or loads) a DenseIndex on a thread so the app answers with BM25 meanwhile.

    ``index`` is None until the vectors are ready; ``state`` says what is happening in words a
    status line can show.
    """

    def __init__(self, load: Callable[[Callable[[int, int], None]], DenseIndex]) -> None:
        self._load = load
        self.index: DenseIndex | None = None
        self.error = ""
        self.done = 0
        self.total = 0
        self._thread = threading.Thread(target=self._run, name="dense-index", daemon=True)
        self._go = threading.Event()
        self._delay = 0.0

    def start(self, delay: float = 0.0) -> BackgroundDense:
        """Start the thread; the work itself begins after ``delay`` seconds (or as soon as someone waits)."""
        self._delay = delay
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> DenseIndex | None:
        self._go.set()
        self._thread.join(timeout)
        return self.index

    @property
    def building(self) -> bool:
        return self._thread.is_alive()

    @property
    def state(self) -> str:
        if self.index is not None:
            return "ready"
        if self.error:
            return f"failed: {self.error}"
        if self.total:
            return f"building {self.done}/{self.total}"
        return "loading"

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def _run(self) -> None:
        # The app's own start-up (the web page) comes first; the vectors are background work.
        self._go.wait(self._delay)
        # Embedding is background work: let questions being answered have the cores first.
        with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        try:
            self.index = self._load(self._progress)
        except Exception as exc:  # any failure leaves BM25 answering; the status says why
            log.warning("dense retrieval is off, BM25 + aliases answer (python -m app doctor): %s", exc)
            self.error = f"{type(exc).__name__}: {exc}"
