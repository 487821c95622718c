"""The game vocabulary: KB names plus game terms, most important first, as speech recognition uses it."""

from __future__ import annotations

from modules.asr.hotwords import EXTRA_TERMS, game_vocabulary, is_common_word, spoken_form, word_frequency
from modules.rag.types import Document


def doc(title: str, category: str, *aliases: str, body: str = "正文") -> Document:
    return Document(doc_id=title, title=title, body=body, source=title, category=category, aliases=aliases)


def test_spoken_form():
    assert spoken_form("黑神话：悟空") == "黑神话悟空"
    assert spoken_form("魔将·劫波") == "魔将劫波"
    assert spoken_form("“虎先锋”") == "虎先锋"
    assert spoken_form("Black Bear Guai") is None
    assert spoken_form("酒") is None
    assert spoken_form("黑神话：钟馗 DLC") is None


def test_vocabulary_ranks_by_mentions_and_takes_turns_between_categories():
    docs = [
        doc("黄眉", "boss", "黄眉大王", body="黄眉黄眉黄眉黄眉 黑熊精"),
        doc("黑熊精", "boss", "Black Bear", body="黑熊精"),
        doc("定身法", "combat", "定身术", body="定身法 定身法 定身术"),
        doc("冯骥", "game", body="冯骥冯骥冯骥冯骥冯骥冯骥冯骥冯骥"),
    ]
    names = game_vocabulary(docs, extra=["筋斗云", "筋斗云"])
    # bosses, terms, combat take turns; the game category follows; aliases come after every entity's first name.
    assert names[:5] == ["黄眉", "筋斗云", "定身法", "黑熊精", "冯骥"]
    assert names[5:] == ["黄眉大王", "定身术"]
    assert len(names) == len(set(names))


def test_shipped_vocabulary(vocabulary):
    assert len(vocabulary) > 500
    for name in ("黑熊精", "黄风大圣", "黄眉", "筋斗云", "三昧神风", "铜头铁臂", "金箍棒"):
        assert name in vocabulary
    assert all(spoken_form(n) == n for n in vocabulary)
    assert set(EXTRA_TERMS) <= set(vocabulary)
    assert vocabulary.index("黄风大圣") < vocabulary.index("黄毛貂鼠")  # a main name before an alias


def test_common_words():
    assert is_common_word("土地") and is_common_word("价格")
    assert not is_common_word("黑熊精") and not is_common_word("黄眉")
    assert word_frequency("时候") > word_frequency("石猴")
