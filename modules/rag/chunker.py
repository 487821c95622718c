"""Split documents into chunks at Chinese-aware boundaries: headings first, then sentences."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modules.rag.text import split_sentences, strip_markdown
from modules.rag.types import Chunk, Document

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True)
class Section:
    heading: str
    sentences: list[str]


def sections(body: str) -> list[Section]:
    """The body cut at Markdown headings; each section's text split into sentences."""
    out: list[Section] = []
    heading = ""
    lines: list[str] = []

    def flush() -> None:
        text = "\n".join(x for x in (strip_markdown(line) for line in lines) if x)
        sentences = split_sentences(text)
        if sentences:
            out.append(Section(heading, sentences))

    for line in body.splitlines():
        match = _HEADING.match(line)
        if match:
            flush()
            heading, lines = match.group(2).strip(), []
        else:
            lines.append(line)
    flush()
    return out


def _hard_split(sentence: str, limit: int) -> list[str]:
    """A sentence longer than the limit, cut at commas when possible, else every `limit` chars."""
    parts = re.split(r"(?<=[，,、：:])", sentence)
    out, buf = [], ""
    for part in parts:
        while len(part) > limit:
            if buf:
                out.append(buf)
                buf = ""
            out.append(part[:limit])
            part = part[limit:]
        if len(buf) + len(part) > limit and buf:
            out.append(buf)
            buf = ""
        buf += part
    if buf:
        out.append(buf)
    return out


def chunk_document(doc: Document, chunk_chars: int, first_id: int = 0) -> list[Chunk]:
    """Chunks of at most ~chunk_chars characters that never cross a heading or split a sentence.

    The English summary from the front matter becomes a chunk of its own so English questions
    can match it and English answers can quote it.
    """
    chunks: list[Chunk] = []

    def add(section: str, text: str) -> None:
        chunks.append(Chunk(first_id + len(chunks), doc.doc_id, doc.title, section, text, doc.source))

    for sec in sections(doc.body):
        buf = ""
        for sentence in sec.sentences:
            pieces = [sentence] if len(sentence) <= chunk_chars else _hard_split(sentence, chunk_chars)
            for piece in pieces:
                if buf and len(buf) + len(piece) > chunk_chars:
                    add(sec.heading, buf)
                    buf = ""
                buf = piece if not buf else buf + _glue(buf, piece) + piece
        if buf:
            add(sec.heading, buf)
    if doc.summary_en:
        add("English summary", doc.summary_en)
    return chunks


def _glue(left: str, right: str) -> str:
    """What goes between two sentences in a chunk, so that splitting finds them again."""
    if left[-1] in "。！？；!?…”’」』）":
        return ""
    if left[-1] == "." and right[:1].isascii():
        return " "
    return "\n"  # a list item or a line without an end mark
