from pathlib import Path

import pytest

from llm.base import Answerer
from llm.extractive import NOTHING_RELEVANT_EN, NOTHING_RELEVANT_ZH, ExtractiveAnswerer
from modules.rag.index import IndexSettings, KnowledgeIndex
from modules.rag.retriever import HybridRetriever


@pytest.fixture
def setup(kb_dir: Path, tmp_path: Path):
    index = KnowledgeIndex.open([kb_dir], tmp_path / "cache", IndexSettings())
    retriever = HybridRetriever(index)
    answerer = ExtractiveAnswerer(index.tokenizer.tokens, index.bm25.idf)
    return retriever, answerer


def ask(setup, q: str) -> str:
    retriever, answerer = setup
    return "".join(answerer.stream(q, retriever.retrieve(q, 5)))


def test_is_an_answerer(setup):
    assert isinstance(setup[1], Answerer)


def test_answers_with_the_fact_and_a_citation(setup):
    answer = ask(setup, "红孩儿的父亲是谁？")
    assert "牛魔王" in answer
    assert "[1]" in answer


def test_prefers_the_section_the_question_is_about(setup):
    assert "闪避" in ask(setup, "黑熊精怎么打？")
    assert "第十六回" in ask(setup, "黑熊精在原著里做了什么？")
    assert "黑风洞" in ask(setup, "黑熊精在哪里打？")


def test_citations_point_at_the_passage_used(setup):
    retriever, answerer = setup
    passages = retriever.retrieve("黄眉是谁", 5)
    answer = "".join(answerer.stream("黄眉是谁", passages))
    n = int(answer.split("[", 1)[1].split("]", 1)[0])
    assert passages[n - 1].title == "黄眉"


def test_streams_in_pieces(setup):
    retriever, answerer = setup
    pieces = list(answerer.stream("黄眉是谁", retriever.retrieve("黄眉是谁", 5)))
    assert len(pieces) > 3


def test_says_so_when_nothing_is_relevant(setup):
    assert ask(setup, "今天股市怎么样") == NOTHING_RELEVANT_ZH
    assert ask(setup, "What is the capital of France?") == NOTHING_RELEVANT_EN


def test_partial_overlap_is_not_enough(setup):
    # Shares "牛魔王" with the KB but asks about something the KB does not say.
    answer = ask(setup, "牛魔王的坐骑避水金睛兽最喜欢吃什么水果和蔬菜")
    assert answer == NOTHING_RELEVANT_ZH


def test_english_question_gets_the_english_summary(setup):
    answer = ask(setup, "Where is the Black Bear Guai fought?")
    assert "Black Wind Mountain" in answer


def test_no_passages():
    answerer = ExtractiveAnswerer(lambda t: list(t), lambda t: 1.0)
    assert "".join(answerer.stream("黑熊精", [])) == NOTHING_RELEVANT_ZH


def test_select_returns_numbered_sentences_for_a_compact_context(setup):
    retriever, answerer = setup
    passages = retriever.retrieve("红孩儿的父亲是谁？", 5)
    picks = answerer.select("红孩儿的父亲是谁？", passages, 2)
    assert 1 <= len(picks) <= 2
    n, sentence = picks[0]
    assert "牛魔王" in sentence and passages[n - 1].title == "红孩儿"
    assert answerer.select("今天股市怎么样", retriever.retrieve("今天股市怎么样", 5), 3) == []
