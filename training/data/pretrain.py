"""Incremental-pretraining data: a folder of .txt / .md texts cut into overlapping, de-duplicated chunks.

Chunks end at sentence ends (Chinese and English punctuation), so the model never learns from a sentence cut in
half; a sentence longer than a chunk is cut at commas, and only as a last resort mid-phrase. The last sentences of
a chunk start the next one (``overlap_chars``), so what straddles a boundary is still seen whole once. Scraped
texts come in UTF-8 or GB18030 (GBK); Markdown loses its front matter and markup. Output: xtuner's
``{"conversation": [{"input": "", "output": chunk}]}`` lines, plus a stats report.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from modules.rag.loader import KnowledgeFileError, split_front_matter
from modules.rag.text import split_sentences, strip_markdown
from training.data.dedup import Deduplicator
from training.data.records import pretrain_record, write_conversations
from training.settings import PretrainDataSettings

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md", ".markdown")
ENCODINGS = ("utf-8-sig", "gb18030")  # gb18030 is a superset of GBK and GB2312, common in Chinese web text
_HEADING = re.compile(r"^#{1,6}\s+")
_SOFT_BREAK = re.compile(r"(?<=[，,、：:；;])")
_CJK_ENDS = "。！？；…”’」』）"
_LATIN_ENDS = ".!?;:)\"'"


class PretrainDataError(ValueError):
    """Nothing usable to build pretraining data from; the message says what was looked at."""


@dataclass
class PretrainStats:
    """What a build read, dropped and wrote."""

    files: int = 0
    skipped: list[str] = field(default_factory=list)  # "path: reason"
    chunks: int = 0  # before de-duplication
    too_short: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    written: int = 0
    chars: int = 0
    min_chars: int = 0
    mean_chars: float = 0.0
    max_chars: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def table(self) -> str:
        """The report as aligned lines for the terminal."""
        rows = [
            ("files read", self.files),
            ("files skipped", len(self.skipped)),
            ("chunks", self.chunks),
            ("too short", self.too_short),
            ("exact duplicates", self.exact_duplicates),
            ("near duplicates", self.near_duplicates),
            ("written", self.written),
            ("characters", self.chars),
            ("chunk chars min/mean/max", f"{self.min_chars} / {self.mean_chars:.0f} / {self.max_chars}"),
        ]
        lines = [f"{name:<26}{value}" for name, value in rows]
        lines += [f"  skipped {item}" for item in self.skipped]
        return "\n".join(lines)


def iter_text_files(sources: Iterable[Path]) -> Iterator[Path]:
    """Every .txt / .md file under the sources (files are taken as given), in a stable order."""
    for source in sources:
        if source.is_file():
            yield source
        elif source.is_dir():
            for path in sorted(source.rglob("*")):
                hidden = any(part.startswith(".") for part in path.relative_to(source).parts)
                if path.is_file() and path.suffix.lower() in SUFFIXES and not hidden:
                    yield path


def read_text(path: Path) -> str:
    """The plain text of a file: decoded (UTF-8, else GB18030), Markdown front matter and markup removed."""
    raw = path.read_bytes()
    for encoding in ENCODINGS:
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise KnowledgeFileError(f"neither {' nor '.join(ENCODINGS)} text")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if path.suffix.lower() in (".md", ".markdown"):
        _, body = split_front_matter(text)
        # Headings become lines of their own: they end a sentence without needing punctuation.
        text = "\n".join(strip_markdown(_HEADING.sub("", line)) for line in body.split("\n"))
    return text


def _pieces(sentence: str, limit: int) -> list[str]:
    """A sentence longer than the limit, cut at commas when possible, else every ``limit`` characters."""
    if len(sentence) <= limit:
        return [sentence]
    out: list[str] = []
    buf = ""
    for part in _SOFT_BREAK.split(sentence):
        while len(part) > limit:
            if buf:
                out.append(buf)
                buf = ""
            out.append(part[:limit])
            part = part[limit:]
        if buf and len(buf) + len(part) > limit:
            out.append(buf)
            buf = ""
        buf += part
    if buf:
        out.append(buf)
    return out


def _join(left: str, right: str) -> str:
    """Two sentences as one text: Chinese ones run on, English ones get a space, anything else a line break."""
    if not left:
        return right
    if left[-1] in _CJK_ENDS:
        return left + right
    if left[-1] in _LATIN_ENDS:
        return left + " " + right
    return left + "\n" + right


def chunk_text(text: str, chunk_chars: int, overlap_chars: int = 0) -> list[str]:
    """Chunks of at most ``chunk_chars`` characters (plus joining spaces) that end at sentence ends."""
    if chunk_chars < 1 or not 0 <= overlap_chars < chunk_chars:
        raise ValueError(f"need 0 <= overlap_chars < chunk_chars, got {overlap_chars} and {chunk_chars}")
    pieces = [p for s in split_sentences(text) for p in _pieces(s, chunk_chars)]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for piece in pieces:
        if current and size + len(piece) > chunk_chars:
            chunks.append(_render(current))
            current, size = _tail(current, overlap_chars, room=chunk_chars - len(piece))
        current.append(piece)
        size += len(piece)
    if current:  # it always holds the last piece, never only the overlap
        chunks.append(_render(current))
    return chunks


def _render(sentences: Sequence[str]) -> str:
    text = ""
    for sentence in sentences:
        text = _join(text, sentence)
    return text


def _tail(sentences: list[str], overlap_chars: int, room: int) -> tuple[list[str], int]:
    """The last whole sentences of a chunk that fit the overlap and leave room for the next sentence."""
    kept: list[str] = []
    size = 0
    for sentence in reversed(sentences):
        if size + len(sentence) > min(overlap_chars, room):
            break
        kept.insert(0, sentence)
        size += len(sentence)
    return kept, size


def build_pretrain_data(sources: Sequence[Path], out: Path, settings: PretrainDataSettings) -> PretrainStats:
    """Chunk, de-duplicate and write every text under the sources; the stats go beside ``out`` as JSON too."""
    stats = PretrainStats()
    dedup = Deduplicator(settings.near_duplicate, shingle_size=5)
    kept: list[str] = []
    files = list(iter_text_files(sources))
    if not files:
        looked = ", ".join(str(s) for s in sources) or "(no sources configured)"
        raise PretrainDataError(
            f"no .txt or .md files under {looked}. Put the collected texts there or set data.pretrain.sources"
        )
    for path in files:
        try:
            text = read_text(path)
        except (KnowledgeFileError, OSError) as exc:
            stats.skipped.append(f"{path}: {exc}")
            log.warning("skipping %s: %s", path, exc)
            continue
        stats.files += 1
        for chunk in chunk_text(text, settings.chunk_chars, settings.overlap_chars):
            stats.chunks += 1
            if len(chunk) < settings.min_chars:
                stats.too_short += 1
                continue
            duplicate = dedup.check(chunk)
            if duplicate is None:
                kept.append(chunk)
            elif duplicate.kind == "exact":
                stats.exact_duplicates += 1
            else:
                stats.near_duplicates += 1
    if not kept:
        raise PretrainDataError(
            f"the {stats.files} file(s) under {', '.join(str(s) for s in sources)} gave no chunk of at least "
            f"{settings.min_chars} characters (data.pretrain.min_chars)"
        )
    stats.written = write_conversations(out, (pretrain_record(c) for c in kept))
    sizes = [len(c) for c in kept]
    stats.chars = sum(sizes)
    stats.min_chars, stats.max_chars = min(sizes), max(sizes)
    stats.mean_chars = round(stats.chars / len(sizes), 1)
    stats_path(out).write_text(json.dumps(stats.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return stats


def stats_path(out: Path) -> Path:
    """Where the stats report of a data file goes: ``pretrain.jsonl`` -> ``pretrain.stats.json``."""
    return out.with_suffix(".stats.json")
