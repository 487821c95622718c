"""Lint the shipped knowledge base: it parses, names are unique, links resolve, chapters and bosses
agree, entries are substantial, and no long span is copied from the collected reference notes."""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict

import pytest

from modules.rag.loader import iter_knowledge_files, load_file, split_front_matter
from modules.rag.text import split_sentences
from modules.rag.types import Document
from tests.conftest import REPO

KB = REPO / "assets" / "knowledge"
REFERENCE = REPO.parent / "shared" / "reference" / "game-facts"
FOLDER_CATEGORY = {
    "game": "game", "chapters": "chapter", "areas": "area", "bosses": "boss", "characters": "character",
    "story": "story", "combat": "combat", "novel": "novel", "culture": "culture", "art": "art", "memes": "meme",
    "faq": "faq",
}  # fmt: skip


def _load() -> list[Document]:
    docs = []
    for root, path in iter_knowledge_files([KB]):
        docs.extend(load_file(path, root))  # raises (and fails the test) on any broken file
    return docs


DOCS = _load()


def test_every_file_has_front_matter_with_the_required_keys():
    for root, path in iter_knowledge_files([KB]):
        meta, _ = split_front_matter(path.read_text("utf-8"))
        rel = path.relative_to(root)
        assert {"title", "aliases", "category"} <= set(meta), rel
        assert isinstance(meta["aliases"], list) and meta["aliases"], f"{rel}: aliases must be a non-empty list"
        assert meta["category"] == FOLDER_CATEGORY[rel.parts[0]], f"{rel}: category {meta['category']!r}"


def test_titles_and_aliases_are_unique():
    owners: dict[str, set[str]] = defaultdict(set)
    for doc in DOCS:
        for name in doc.names:
            owners[name.strip().lower()].add(doc.doc_id)
    clashes = {name: sorted(ids) for name, ids in owners.items() if len(ids) > 1}
    assert clashes == {}


def test_related_links_resolve():
    names = {name.lower() for doc in DOCS for name in doc.names}
    broken = [(doc.doc_id, r) for doc in DOCS for r in doc.related if r.lower() not in names]
    assert broken == []


def test_chapter_boss_indexes_and_boss_entries_agree():
    bosses = {d.title: d for d in DOCS if d.category == "boss"}
    by_alias = {name: d.title for d in bosses.values() for name in d.names}
    listed: dict[str, int] = {}
    chapters = [d for d in DOCS if d.category == "chapter"]
    assert sorted(d.chapter for d in chapters) == [0, 1, 2, 3, 4, 5, 6]
    for chapter in chapters:
        names = chapter.extra.get("bosses")
        assert isinstance(names, list) and names, f"{chapter.title} has no bosses list"
        for name in names:
            assert name in by_alias, f"{chapter.title} lists {name!r}, which has no boss entry"
            title = by_alias[name]
            assert bosses[title].chapter == chapter.chapter, f"{title} is chapter {bosses[title].chapter}"
            listed[title] = chapter.chapter  # type: ignore[assignment]
    unlisted = sorted(t for t in bosses if t not in listed)
    assert unlisted == [], "boss entries missing from their chapter's bosses list"


def test_every_entry_is_a_few_sentences_at_least():
    short = [d.doc_id for d in DOCS if len(split_sentences(d.body)) < 3 or len(d.body) < 150]
    assert short == []


def test_size():
    assert len(DOCS) >= 250
    assert sum(len(d.body) for d in DOCS) >= 100_000


def test_major_entries_have_english_names():
    for doc in DOCS:
        if doc.category in ("boss", "chapter", "character", "area"):
            assert any(a.isascii() for a in doc.aliases) or doc.summary_en, f"{doc.doc_id} has no English name"


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def _exempt(span: str) -> bool:
    """Spans that are facts, not prose: lists of names, quoted game lines, English item names."""
    return span.count("、") >= 2 or "“" in span or "”" in span or sum(c.isascii() for c in span) > len(span) / 2


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="the reference notes live in ../shared/reference/game-facts")
def test_no_prose_is_copied_from_the_reference_notes():
    size = 20
    ref = _norm("".join(p.read_text("utf-8") for p in REFERENCE.glob("*.txt")))
    grams = {ref[i : i + size] for i in range(len(ref) - size + 1)}
    copied = {}
    for doc in DOCS:
        body = re.sub(r"“[^”]*”", "“”", _norm(doc.body))  # quoted game lines are citations
        spans = [body[i : i + size] for i in range(len(body) - size + 1)]
        hits = [s for s in spans if s in grams and not _exempt(s)]
        if hits:
            copied[doc.doc_id] = hits[0]
    assert copied == {}
