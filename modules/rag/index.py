"""The knowledge index: documents, chunks and BM25, cached on disk (dense vectors: modules/rag/dense.py).

The cache lives under ``<data_dir>/index/<key>/`` where the key hashes every knowledge file's
path and bytes together with the settings that shape the index, so editing the knowledge base or
changing a setting builds a fresh index on next use and an unchanged one loads in well under a
second. A build is written to a temporary directory and renamed into place, so a crash or a full
disk never leaves a half-written index behind; older indexes are removed after a good build.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from modules.rag.bm25 import BM25Index
from modules.rag.chunker import chunk_document
from modules.rag.entities import EntityMatcher
from modules.rag.loader import iter_knowledge_files, load_documents
from modules.rag.text import Tokenizer
from modules.rag.types import Chunk, Document

log = logging.getLogger(__name__)

INDEX_FORMAT = 1  # bump when the on-disk layout changes
# The code that turns files into tokens: editing it must invalidate every cached index.
_INDEX_CODE = ("loader.py", "chunker.py", "text.py", "bm25.py")


@dataclass(frozen=True)
class IndexSettings:
    chunk_chars: int = 320


def index_key(roots: Sequence[Path], settings: IndexSettings) -> str:
    """Hash of the knowledge files (paths and bytes) and the index settings."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": INDEX_FORMAT, **asdict(settings)}, sort_keys=True).encode())
    for name in _INDEX_CODE:
        h.update(hashlib.sha256((Path(__file__).parent / name).read_bytes()).digest())
    for root, path in iter_knowledge_files(roots):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:20]


def index_text(chunk: Chunk, doc: Document) -> str:
    """What BM25 and the embedder see for a chunk: the entity's names, the heading, the text."""
    return " ".join((*doc.names, chunk.section, chunk.text))


class KnowledgeIndex:
    """Everything retrieval needs, loaded from the cache or built."""

    def __init__(
        self,
        documents: list[Document],
        chunks: list[Chunk],
        bm25: BM25Index,
        tokenizer: Tokenizer,
        directory: Path,
        built: bool,
    ) -> None:
        self.documents = documents
        self.chunks = chunks
        self.bm25 = bm25
        self.tokenizer = tokenizer
        self.directory = directory
        self.built = built  # True when this process built it, False when loaded from cache
        self.cache_error = ""  # why the cache could not be written (the index then lives in memory only)
        self.entities = EntityMatcher(documents)
        self.docs_by_id = {d.doc_id: d for d in documents}
        self.chunks_by_doc: dict[str, list[Chunk]] = {}
        for c in chunks:
            self.chunks_by_doc.setdefault(c.doc_id, []).append(c)

    @classmethod
    def open(
        cls,
        roots: Sequence[Path],
        cache_dir: Path,
        settings: IndexSettings,
        source_base: Path | None = None,
    ) -> KnowledgeIndex:
        """Load the index for these roots and settings, building it when the cache is stale."""
        key = index_key(roots, settings)
        directory = cache_dir / key
        if (directory / "chunks.json").exists():
            try:
                return cls._load(directory)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("index cache %s unreadable (%s); rebuilding", directory, exc)
        return cls._build(roots, cache_dir, key, settings, source_base)

    @classmethod
    def _load(cls, directory: Path) -> KnowledgeIndex:
        documents = [_document_from_json(d) for d in json.loads((directory / "documents.json").read_text("utf-8"))]
        chunks = [Chunk(**c) for c in json.loads((directory / "chunks.json").read_text("utf-8"))]
        tokenizer = Tokenizer(name for d in documents for name in d.names)
        return cls(documents, chunks, BM25Index.load(directory), tokenizer, directory, built=False)

    @classmethod
    def _build(
        cls,
        roots: Sequence[Path],
        cache_dir: Path,
        key: str,
        settings: IndexSettings,
        source_base: Path | None,
    ) -> KnowledgeIndex:
        started = time.perf_counter()
        documents = load_documents(roots, source_base)
        if not documents:
            raise ValueError(f"no knowledge documents found under {', '.join(map(str, roots))}")
        chunks: list[Chunk] = []
        for doc in documents:
            chunks.extend(chunk_document(doc, settings.chunk_chars, first_id=len(chunks)))
        tokenizer = Tokenizer(name for d in documents for name in d.names)
        docs_by_id = {d.doc_id: d for d in documents}
        texts = [index_text(c, docs_by_id[c.doc_id]) for c in chunks]
        bm25 = BM25Index.build([tokenizer.tokens(t) for t in texts])

        try:
            final = cls._write_cache(cache_dir, key, documents, chunks, bm25)
        except OSError as exc:
            # An unwritable data dir or a full disk must not stop the app: the index is in memory
            # already; only the cache (and the dense vectors, which live beside it) are lost.
            log.warning("could not write the index cache under %s (%s); running from memory, BM25 only", cache_dir, exc)
            index = cls(documents, chunks, bm25, tokenizer, cache_dir / key, built=True)
            index.cache_error = f"{type(exc).__name__}: {exc.strerror or exc}"
            return index
        log.info(
            "built knowledge index: %d documents, %d chunks in %.1f s (%s)",
            len(documents),
            len(chunks),
            time.perf_counter() - started,
            final,
        )
        return cls(documents, chunks, bm25, tokenizer, final, built=True)

    @staticmethod
    def _write_cache(
        cache_dir: Path,
        key: str,
        documents: list[Document],
        chunks: list[Chunk],
        bm25: BM25Index,
    ) -> Path:
        """Write the index to a temp dir, then rename it into place: a reader never sees half an index."""
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache_dir))
        try:
            bm25.save(tmp)
            (tmp / "documents.json").write_text(
                json.dumps([_document_to_json(d) for d in documents], ensure_ascii=False), "utf-8"
            )
            (tmp / "chunks.json").write_text(json.dumps([asdict(c) for c in chunks], ensure_ascii=False), "utf-8")
            final = cache_dir / key
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in cache_dir.iterdir():
            if old.is_dir() and old.name != key and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
        return final


def _document_to_json(doc: Document) -> dict[str, object]:
    data = asdict(doc)
    data["extra"] = {k: v for k, v in doc.extra.items() if isinstance(v, (str, int, float, bool, list))}
    return data


def _document_from_json(data: dict[str, object]) -> Document:
    for key in ("aliases", "related"):
        data[key] = tuple(data[key])  # type: ignore[arg-type]
    return Document(**data)  # type: ignore[arg-type]
