from pathlib import Path

import pytest

from modules.rag.index import IndexSettings, KnowledgeIndex
from modules.rag.retriever import HybridRetriever
from modules.rag.types import Retriever


@pytest.fixture
def retriever(kb_dir: Path, tmp_path: Path) -> HybridRetriever:
    return HybridRetriever(KnowledgeIndex.open([kb_dir], tmp_path / "cache", IndexSettings()))


def test_is_a_retriever(retriever):
    assert isinstance(retriever, Retriever)


def test_chinese_question_finds_its_entry(retriever):
    passages = retriever.retrieve("黄眉原本是谁的童子？", top_k=3)
    assert passages[0].title == "黄眉"
    assert passages == sorted(passages, key=lambda p: -p.score)


def test_alias_and_english_name_find_the_chinese_entry(retriever):
    assert retriever.retrieve("黑风大王的打法", 3)[0].title == "黑熊精"
    top = retriever.retrieve("Where is the Black Bear Guai fought?", 3)
    assert top[0].title == "黑熊精"


def test_chapter_synonyms(retriever):
    for q in ("第一章讲了什么", "第1回讲了什么", "火照黑云讲了什么", "What happens in chapter 1?"):
        titles = [p.title for p in retriever.retrieve(q, 2)]
        assert "第一回 火照黑云" in titles, q


def test_section_text_is_searchable(retriever):
    passages = retriever.retrieve("袈裟被谁偷走了", 2)
    assert passages[0].title == "黑熊精" and passages[0].chunk.section == "原著"


def test_unrelated_or_empty_queries(retriever):
    assert retriever.retrieve("   ", 5) == []
    assert retriever.retrieve("量子色动力学", 5) == []


def test_top_k_is_respected(retriever):
    assert len(retriever.retrieve("黑熊精 红孩儿 黄眉", 2)) == 2
