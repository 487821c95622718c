"""Dense retrieval: one vector per knowledge-base sentence, stored in Chroma, searched in memory.

Why sentences, not chunks: the same vectors rank passages (a chunk scores as its best sentence)
and let the reader pick the sentence that answers (see llm/extractive.py), for the price of one
embedding per question. Each sentence is embedded with its entry's title in front, so "它的弱点"
inside 黑熊精's entry still knows it is about 黑熊精.

Chroma gets our own vectors (``embedding_function=None``: its default embedder would download a
model). The collection records the embedder's name and whether it is complete, so a changed
embedder or a build cut short is rebuilt, never mixed or half-used. The few thousand vectors are
also held as one numpy matrix: an exact search over them takes about a millisecond.

With ``rag.chroma.url`` the vectors live on a Chroma server that several app replicas share (see
``ChromaServer``): one collection per knowledge base (named after its content hash, not the
embedder, so a replica on another embedder is refused instead of quietly building a second set),
built by exactly one replica. The builder claims the build by creating a lock collection
(``create_collection`` fails when the name exists, so only one replica wins), refreshes the claim
after every batch, and drops it when done; the others wait and then load. A claim silent for
``stale_build_s`` (a replica killed mid-build) is taken over.

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
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from modules.rag.embedding import Embedder
from modules.rag.text import quotable_sentences
from modules.rag.types import Chunk

log = logging.getLogger(__name__)

COLLECTION = "sentences"


class DenseMismatch(RuntimeError):
    """The shared server holds this knowledge base's vectors from another embedder."""


class DenseUnavailable(RuntimeError):
    """The Chroma server (rag.chroma.url) cannot be reached or used."""


@dataclass(frozen=True)
class ChromaServer:
    """A Chroma server shared by app replicas (``rag.chroma``)."""

    url: str
    timeout_s: float = 30.0
    stale_build_s: float = 600.0
    poll_s: float = 2.0

    def client(self):  # noqa: ANN201 - chromadb's own type
        import chromadb
        import httpx
        from chromadb.config import Settings as ChromaSettings

        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DenseUnavailable(f"rag.chroma.url={self.url!r} is not an http(s)://host:port address")
        ssl = parts.scheme == "https"
        port = parts.port or (443 if ssl else 8000)
        fix = 'start it (chroma run --path DIR --port N), or set rag.chroma.url to "" for a local index'
        base = f"{parts.scheme}://{parts.hostname}:{port}"
        try:  # chromadb's own connect check waits forever on an unanswering host
            httpx.get(f"{base}/api/v2/heartbeat", timeout=self.timeout_s).raise_for_status()
            client = chromadb.HttpClient(
                host=parts.hostname, port=port, ssl=ssl, settings=ChromaSettings(anonymized_telemetry=False)
            )
        except Exception as exc:
            raise DenseUnavailable(
                f"cannot reach the Chroma server at {self.url} (rag.chroma.url): {exc}; {fix}"
            ) from exc
        with contextlib.suppress(AttributeError):  # chromadb's HTTP session has no timeout of its own
            client._server._session.timeout = httpx.Timeout(self.timeout_s)  # type: ignore[attr-defined]
        return client


def server_collection(index_dir: Path) -> str:
    """The server-side collection of one knowledge base: named after its content hash (the index directory)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in index_dir.name)[-40:]
    return f"wulewule-kb-{safe}"


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
        server: ChromaServer | None = None,
    ) -> DenseIndex:
        """Load the vectors stored under ``directory``, or embed every sentence and store them.

        ``probes`` are off-topic questions that calibrate relevance (see the module docstring).
        With ``server`` the vectors live on that Chroma server instead, in the collection named
        after ``directory.parent`` (the index directory ``dense_dir`` was given).
        """
        units = sentence_units(chunks)
        titles = {c.chunk_id: c.title for c in chunks}
        if server is not None:
            name = server_collection(directory.parent)
            matrix = _SharedBuild(server, name, embedder, units, titles, progress, batch_size).run()
            return cls(embedder, units, matrix, probes)
        client = _client(directory)
        try:
            collection = client.get_collection(COLLECTION, embedding_function=None)
        except Exception:  # chromadb's NotFound type moved between versions
            collection = None
        if collection is not None:
            meta = collection.metadata or {}
            if meta.get("embedder") == embedder.name and meta.get("complete") and collection.count() == len(units):
                return cls(embedder, units, _stored_matrix(collection), probes)
            log.info("dense vectors under %s are incomplete or from another embedder; rebuilding", directory)
            client.delete_collection(COLLECTION)
        collection = client.create_collection(
            COLLECTION, embedding_function=None, metadata={"hnsw:space": "cosine", "embedder": embedder.name}
        )
        return cls(embedder, units, _embed_into(collection, embedder, units, titles, progress, batch_size), probes)

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


def _stored_matrix(collection: Any) -> np.ndarray:
    got = collection.get(include=["embeddings"])
    order = np.argsort(np.array([int(i) for i in got["ids"]]))
    return np.asarray(got["embeddings"], dtype=np.float32)[order]


def _embed_into(
    collection: Any,
    embedder: Embedder,
    units: Sequence[SentenceUnit],
    titles: dict[int, str],
    progress: Callable[[int, int], None] | None,
    batch_size: int,
    after_batch: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Embed every sentence into a fresh collection, then mark it complete; the vectors, in order."""
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
        if after_batch is not None:
            after_batch(start + len(batch), len(units))
        if progress is not None:
            progress(start + len(batch), len(units))
    # (modify() must not repeat the distance function, which is fixed at creation.)
    collection.modify(metadata={"embedder": embedder.name, "complete": True})
    log.info("embedded %d sentences with %s in %.1f s", len(units), embedder.name, time.perf_counter() - started)
    return np.concatenate(rows) if rows else np.zeros((0, 1), np.float32)


def _get_collection(client: Any, name: str) -> Any:
    try:
        return client.get_collection(name, embedding_function=None)
    except Exception as exc:  # chromadb's NotFound type moved between versions
        if "does not exist" in str(exc) or type(exc).__name__ in ("NotFoundError", "InvalidCollectionException"):
            return None
        raise


class _SharedBuild:
    """Load one knowledge base's vectors from a shared server, building them if no replica has."""

    def __init__(
        self,
        server: ChromaServer,
        name: str,
        embedder: Embedder,
        units: Sequence[SentenceUnit],
        titles: dict[int, str],
        progress: Callable[[int, int], None] | None,
        batch_size: int,
    ) -> None:
        self.server, self.name, self.embedder, self.units, self.titles = server, name, embedder, units, titles
        self.progress, self.batch_size = progress, batch_size
        self.lock_name = f"{name}-build"
        self.me = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self.client = server.client()
        self._lock: Any = None  # our claim, while we build

    def run(self) -> np.ndarray:
        while True:
            loaded = self._load_complete()
            if loaded is not None:
                return loaded
            lock = _get_collection(self.client, self.lock_name)
            if lock is None:
                if self._claim():
                    try:
                        return self._build()
                    finally:
                        self._release()
                continue  # another replica claimed it first: look again
            meta = lock.metadata or {}
            by, builder = meta.get("building_by", "?"), meta.get("embedder", "")
            if builder and builder != self.embedder.name:
                raise self._mismatch(str(builder), f"replica {by} is building it with")
            silent = time.time() - float(meta.get("alive_at", 0) or 0)
            if silent > self.server.stale_build_s:
                log.warning("replica %s's build of %s is silent for %.0f s; taking it over", by, self.name, silent)
                with contextlib.suppress(Exception):
                    self.client.delete_collection(self.lock_name)
                continue
            note = f"waiting for replica {by} to finish the vectors"
            log.info("%s (%s/%s)", note, meta.get("done", 0), meta.get("total", len(self.units)))
            waiting = getattr(self.progress, "waiting", None)
            if callable(waiting):
                waiting(note)
            if self.progress is not None and meta.get("total"):
                self.progress(int(meta.get("done", 0)), int(meta["total"]))
            time.sleep(self.server.poll_s)

    def _load_complete(self) -> np.ndarray | None:
        """The stored vectors when complete; a complete set from another embedder is refused."""
        collection = _get_collection(self.client, self.name)
        if collection is None:
            return None
        meta = collection.metadata or {}
        if not meta.get("complete"):
            return None
        if meta.get("embedder") != self.embedder.name:
            raise self._mismatch(str(meta.get("embedder")), "it was built with")
        if collection.count() != len(self.units):
            return None  # the same KB hash but other chunking: rebuilt by whoever claims the build
        return _stored_matrix(collection)

    def _mismatch(self, theirs: str, how: str) -> DenseMismatch:
        return DenseMismatch(
            f"the Chroma server {self.server.url} holds this knowledge base's vectors in collection "
            f"{self.name!r}; {how} embedder {theirs!r}, but this replica embeds with {self.embedder.name!r}. "
            f"Set rag.embedding.backend (and model) to the server's embedder {theirs!r}, point rag.chroma.url at "
            f"another server, or drop the collection {self.name!r} on the server to rebuild it"
        )

    def _claim_meta(self, done: int) -> dict[str, Any]:
        return {
            "building_by": self.me,
            "alive_at": time.time(),
            "embedder": self.embedder.name,
            "done": done,
            "total": len(self.units),
        }

    def _claim(self) -> bool:
        try:  # create_collection refuses an existing name: exactly one replica gets the lock
            self._lock = self.client.create_collection(self.lock_name, metadata=self._claim_meta(0))
        except Exception as exc:
            if "already exists" in str(exc) or type(exc).__name__ == "UniqueConstraintError":
                return False
            raise
        return True

    def _build(self) -> np.ndarray:
        # Another replica may have finished between our look and our claim.
        loaded = self._load_complete()
        if loaded is not None:
            return loaded
        if _get_collection(self.client, self.name) is not None:
            log.info("vectors in %s are incomplete (a build cut short); rebuilding", self.name)
            self.client.delete_collection(self.name)
        collection = self.client.create_collection(
            self.name, embedding_function=None, metadata={"hnsw:space": "cosine", "embedder": self.embedder.name}
        )

        def alive(done: int, total: int) -> None:
            # Keeps the claim fresh; fails (ending this build) if another replica took it over.
            self._lock.modify(metadata=self._claim_meta(done))

        return _embed_into(collection, self.embedder, self.units, self.titles, self.progress, self.batch_size, alive)

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            lock = _get_collection(self.client, self.lock_name)
            if lock is not None and (lock.metadata or {}).get("building_by") == self.me:
                self.client.delete_collection(self.lock_name)


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
        self.waiting_for = ""  # another replica building the shared vectors
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
        if self.waiting_for:
            return f"{self.waiting_for} ({self.done}/{self.total})" if self.total else self.waiting_for
        if self.total:
            return f"building {self.done}/{self.total}"
        return "loading"

    def _run(self) -> None:
        # The app's own start-up (the web page) comes first; the vectors are background work.
        self._go.wait(self._delay)
        # Embedding is background work: let questions being answered have the cores first.
        with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        try:
            self.index = self._load(_Progress(self))
        except Exception as exc:  # any failure leaves BM25 answering; the status says why
            log.warning("dense retrieval is off, BM25 + aliases answer (python -m app doctor): %s", exc)
            self.error = f"{type(exc).__name__}: {exc}"


class _Progress:
    """BackgroundDense's progress callback; ``waiting`` says whose build it waits for."""

    def __init__(self, job: BackgroundDense) -> None:
        self.job = job

    def __call__(self, done: int, total: int) -> None:
        self.job.done, self.job.total = done, total

    def waiting(self, note: str) -> None:
        self.job.waiting_for = note
