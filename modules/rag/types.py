"""The data that flows through retrieval, and the retriever seam."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Document:
    """One knowledge-base entry (a Markdown file, a text file, or one JSONL record)."""

    doc_id: str  # stable id: the path relative to its knowledge root, plus "#n" for JSONL lines
    title: str
    body: str
    source: str  # where it came from, for the player: "assets/knowledge/bosses/hei-xiong-jing.md"
    category: str = ""
    aliases: tuple[str, ...] = ()
    chapter: int | None = None
    related: tuple[str, ...] = ()
    summary_en: str = ""
    extra: dict[str, object] = field(default_factory=dict, hash=False, compare=False)

    @property
    def names(self) -> tuple[str, ...]:
        """The title followed by every alias."""
        return (self.title, *self.aliases)


@dataclass(frozen=True)
class Chunk:
    """A retrievable piece of a document: one section, or part of one."""

    chunk_id: int
    doc_id: str
    title: str
    section: str
    text: str
    source: str


@dataclass(frozen=True)
class Passage:
    """A chunk retrieved for a query, with the score that ranked it (higher is better)."""

    chunk: Chunk
    score: float

    @property
    def title(self) -> str:
        return self.chunk.title

    @property
    def text(self) -> str:
        return self.chunk.text


@runtime_checkable
class Retriever(Protocol):
    """Anything that turns a question into ranked passages."""

    def retrieve(self, query: str, top_k: int) -> list[Passage]: ...
