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


# -- kinds of question: yes/no verdicts, lists, and the meaning of sentences ------------------

FAQ = {
    "faq/multiplayer.md": """---
title: 多人联机
aliases: [联机, co-op, multiplayer]
category: faq
summary_en: "No. Black Myth: Wukong is a single-player game with no co-op or multiplayer mode."
---
《黑神话：悟空》没有多人联机模式，是一款纯单人游戏。《黑神话：悟空》也没有召唤其他玩家助战的功能。
""",
    "faq/controller.md": """---
title: 手柄支持
aliases: [手柄, controller]
category: faq
summary_en: "Yes. The PC version of Black Myth: Wukong fully supports controllers."
---
《黑神话：悟空》的PC版支持手柄，Xbox手柄和PS5手柄都能直接使用。《黑神话：悟空》也可以用键盘和鼠标游玩。
""",
    "story/overview.md": """---
title: 头目一览
aliases: [所有头目]
category: story
---
《黑神话：悟空》各回的最终头目依次是黑熊精、黄风大圣、黄眉、百眼魔君、红孩儿和大圣残躯。每一回都有若干可选头目。
""",
}


@pytest.fixture
def faq_setup(tmp_path: Path):
    from tests.conftest import ENTRIES, write_kb

    root = write_kb(tmp_path / "kb", {**ENTRIES, **FAQ})
    index = KnowledgeIndex.open([root], tmp_path / "cache", IndexSettings())
    answerer = ExtractiveAnswerer(index.tokenizer.tokens, index.bm25.idf, expand=index.entities.expand)
    return HybridRetriever(index), answerer


def test_a_yes_no_question_gets_the_verdict_first(faq_setup):
    assert ask(faq_setup, "黑神话可以联机吗").startswith("不可以。")
    assert ask(faq_setup, "有没有多人联机模式").startswith("没有。")
    assert ask(faq_setup, "PC版支持手柄吗？").startswith("支持。")
    assert ask(faq_setup, "Does Black Myth: Wukong have co-op?").startswith("No.")
    assert ask(faq_setup, "Can I play with a controller?").startswith("Yes.")


def test_what_questions_are_not_taken_for_yes_no(faq_setup):
    answer = ask(faq_setup, "红孩儿的父亲是谁？")
    assert not answer.startswith(("是。", "有。", "Yes", "No"))


def test_a_list_question_is_answered_with_the_list(faq_setup):
    answer = ask(faq_setup, "每一回的最终头目分别是谁")
    assert "黑熊精、黄风大圣、黄眉" in answer


def test_list_answers_put_one_entry_per_line(setup):
    retriever, answerer = setup
    answer = "".join(answerer.stream("第几回的最终头目分别是谁", retriever.retrieve("黑熊精 红孩儿 黄眉 最终头目", 5)))
    lines = [line for line in answer.splitlines() if line.startswith("- ")]
    assert len(lines) >= 2 and all("[" in line for line in lines)


class FixedScorer:
    """Stands in for the sentence vectors: one sentence is close in meaning, the rest are not."""

    def __init__(self, close: str, index):
        self.close = close
        self.index = index

    def sentence_scores(self, question, chunk_id, positions):
        from modules.rag.text import split_sentences

        sentences = split_sentences(self.index.chunks[chunk_id].text)
        return [6.0 if self.close in sentences[p] else 0.0 for p in positions]


def test_meaning_picks_the_sentence_words_cannot(setup):
    retriever, _ = setup
    index = retriever.index
    question = "黑熊精以前住哪"  # 住 is in no sentence; the words alone tie every 黑熊精 sentence
    scorer = FixedScorer("观音禅院附近", index)
    answerer = ExtractiveAnswerer(index.tokenizer.tokens, index.bm25.idf, max_sentences=1, semantic=lambda: scorer)
    assert "观音禅院" in "".join(answerer.stream(question, retriever.retrieve(question, 5)))


def test_meaning_alone_can_answer_but_off_topic_meaning_cannot(setup):
    retriever, _ = setup
    index = retriever.index
    question = "熊老大的家在哪"  # no term in common with the knowledge base
    passages = retriever.retrieve("黑熊精", 5)
    close = ExtractiveAnswerer(index.tokenizer.tokens, index.bm25.idf, semantic=lambda: FixedScorer("黑风洞", index))
    assert "黑风洞" in close.compose(question, passages)
    far = ExtractiveAnswerer(index.tokenizer.tokens, index.bm25.idf, semantic=lambda: FixedScorer("(none)", index))
    assert far.compose(question, passages) == NOTHING_RELEVANT_ZH


def test_a_year_no_passage_mentions_is_declined(setup):
    assert ask(setup, "红孩儿在2031年会怎么样") == NOTHING_RELEVANT_ZH
    assert "牛魔王" in ask(setup, "红孩儿的父亲是谁")  # no year: answered as before


def test_characters_left_standing_alone_read_as_an_unknown_name():
    from llm.extractive import _stray_characters

    assert _stray_characters(["紫", "霄", "雷", "猿", "第二回", "位置"]) == {"紫", "霄", "雷", "猿"}
    assert _stray_characters(["蓝", "不够", "土地庙", "回", "蓝"]) == set()  # lone words, not a run
