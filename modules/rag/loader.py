"""Read knowledge files into Documents: Markdown with YAML front matter, plain text and JSONL.

A file that cannot be read (broken encoding, bad front matter, a bad JSONL line) is skipped with a
warning naming it; one bad file never stops the rest from loading.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from modules.jsonl import JsonlError, json_objects
from modules.rag.types import Document

log = logging.getLogger(__name__)

SUFFIXES = (".md", ".markdown", ".txt", ".jsonl")
SKIPPED_NAMES = {"README.md"}


class KnowledgeFileError(ValueError):
    """A knowledge file that cannot be turned into documents."""


def iter_knowledge_files(roots: Iterable[Path]) -> Iterator[tuple[Path, Path]]:
    """(root, file) for every knowledge file under the roots, in a stable order."""
    for root in roots:
        if root.is_file():
            yield root.parent, root
            continue
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            hidden = any(part.startswith(".") for part in path.relative_to(root).parts)
            if path.is_file() and path.suffix.lower() in SUFFIXES and path.name not in SKIPPED_NAMES and not hidden:
                yield root, path


def load_documents(roots: Iterable[Path], source_base: Path | None = None) -> list[Document]:
    """Every document under the roots; unreadable files are logged and skipped."""
    documents: list[Document] = []
    for root, path in iter_knowledge_files(roots):
        try:
            documents.extend(load_file(path, root, source_base))
        except KnowledgeFileError as exc:
            log.warning("skipping knowledge file %s: %s", path, exc)
    return documents


def load_file(path: Path, root: Path, source_base: Path | None = None) -> list[Document]:
    """The documents in one file; raises KnowledgeFileError when it cannot be read."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise KnowledgeFileError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise KnowledgeFileError(str(exc)) from None
    rel = path.relative_to(root).as_posix()
    source = _display_source(path, source_base)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _load_jsonl(text, rel, source)
    if suffix in (".md", ".markdown"):
        return [_load_markdown(text, rel, source, path.stem)]
    body = text.strip()
    if not body:
        raise KnowledgeFileError("empty file")
    return [Document(doc_id=rel, title=path.stem, body=body, source=source)]


def _display_source(path: Path, base: Path | None) -> str:
    if base is not None:
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def split_front_matter(text: str) -> tuple[dict[str, object], str]:
    """(front matter mapping, body) of a Markdown text; no front matter gives an empty mapping."""
    if not text.startswith("---"):
        return {}, text
    lines = text.split("\n")
    if lines[0].strip() != "---":
        return {}, text
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            try:
                meta = yaml.safe_load("\n".join(lines[1:i])) or {}
            except yaml.YAMLError as exc:
                raise KnowledgeFileError(f"front matter is not valid YAML: {exc}") from None
            if not isinstance(meta, dict):
                raise KnowledgeFileError("front matter must be a mapping")
            return meta, "\n".join(lines[i + 1 :])
    raise KnowledgeFileError("front matter is not closed with '---'")


def _str_tuple(value: object, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(v).strip() for v in value if str(v).strip())
    raise KnowledgeFileError(f"front matter {key!r} must be a list of strings")


def _load_markdown(text: str, rel: str, source: str, stem: str) -> Document:
    meta, body = split_front_matter(text.replace("\r\n", "\n"))
    title = str(meta.get("title") or _first_heading(body) or stem).strip()
    chapter = meta.get("chapter")
    if chapter is not None and not isinstance(chapter, int):
        raise KnowledgeFileError(f"front matter 'chapter' must be an integer, got {chapter!r}")
    body = body.strip()
    if not body:
        raise KnowledgeFileError("no text after the front matter")
    known = {"title", "aliases", "category", "chapter", "related", "summary_en"}
    return Document(
        doc_id=rel,
        title=title,
        body=body,
        source=source,
        category=str(meta.get("category") or (rel.split("/")[0] if "/" in rel else "")),
        aliases=_str_tuple(meta.get("aliases"), "aliases"),
        chapter=chapter,
        related=_str_tuple(meta.get("related"), "related"),
        summary_en=str(meta.get("summary_en") or "").strip(),
        extra={k: v for k, v in meta.items() if k not in known},
    )


def _first_heading(body: str) -> str:
    for line in body.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def _load_jsonl(text: str, rel: str, source: str) -> list[Document]:
    docs = []
    try:
        records = list(json_objects(text))
    except JsonlError as exc:
        raise KnowledgeFileError(str(exc)) from None
    for n, record in records:
        body = record.get("text") or record.get("content") or record.get("body")
        if not isinstance(body, str) or not body.strip():
            raise KnowledgeFileError(f"line {n} has no 'text'")
        title = str(record.get("title") or f"{Path(rel).stem} #{n}")
        docs.append(
            Document(
                doc_id=f"{rel}#{n}",
                title=title,
                body=body.strip(),
                source=f"{source}#{n}",
                category=str(record.get("category") or ""),
                aliases=_str_tuple(record.get("aliases"), "aliases"),
            )
        )
    if not docs:
        raise KnowledgeFileError("no records")
    return docs
