import pytest

from llm.base import Answerer
from llm.extractive import NOTHING_RELEVANT_EN, NOTHING_RELEVANT_ZH
from llm.grounded import GroundedAnswerer
from tests.llm.scripted import ScriptedModel
from tests.llm.test_prompt import PASSAGES


def test_streams_what_the_model_writes_from_the_passages():
    model = ScriptedModel(["红孩儿的父亲", "是牛魔王[2]。"])
    answerer = GroundedAnswerer(model, "SYSTEM", max_tokens=64)
    assert isinstance(answerer, Answerer)
    assert list(answerer.stream("红孩儿的父亲是谁？", PASSAGES)) == ["红孩儿的父亲", "是牛魔王[2]。"]
    sent = model.calls[0]
    assert sent[0].content == "SYSTEM" and "[2] 红孩儿" in sent[-1].content


def test_no_passages_means_no_model_call():
    model = ScriptedModel(["should not be used"])
    answerer = GroundedAnswerer(model, "S")
    assert "".join(answerer.stream("今天天气", [])) == NOTHING_RELEVANT_ZH
    assert "".join(answerer.stream("What is the weather?", [])) == NOTHING_RELEVANT_EN
    assert model.calls == []


def test_closing_the_stream_closes_the_model():
    model = ScriptedModel(["黑熊精在", "黑风山", "。"])
    stream = GroundedAnswerer(model, "S").stream("q", PASSAGES)
    assert next(stream) == "黑熊精在"
    stream.close()
    assert model.closed


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (["独立问题：红孩儿的父亲是谁？"], "红孩儿的父亲是谁？"),
        (["“红孩儿的父亲是谁？”\n解释……"], "红孩儿的父亲是谁？"),
        ([""], "那他的父亲呢？"),
        (["很长" * 200], "那他的父亲呢？"),
    ],
)
def test_rewrite_cleans_or_falls_back(reply, expected):
    answerer = GroundedAnswerer(ScriptedModel(reply), "S")
    assert answerer.rewrite("那他的父亲呢？", []) == expected


def test_rewrite_survives_a_failing_model():
    answerer = GroundedAnswerer(ScriptedModel(["x"], fail_after=0), "S")
    assert answerer.rewrite("那他的父亲呢？", []) == "那他的父亲呢？"


def test_compact_context_sends_only_the_selected_sentences():
    model = ScriptedModel(["ok"])
    picks = [(2, "红孩儿的父亲是牛魔王。")]
    answerer = GroundedAnswerer(model, "S", compact=lambda q, ps: picks)
    assert "".join(answerer.stream("红孩儿的父亲是谁？", PASSAGES)) == "ok"
    user = model.calls[0][-1].content
    assert "[2] 红孩儿：红孩儿的父亲是牛魔王。" in user
    assert "黑熊精在黑风山" not in user  # the unselected passage is left out


def test_compact_context_with_nothing_selected_declines_without_the_model():
    model = ScriptedModel(["should not be used"])
    answerer = GroundedAnswerer(model, "S", compact=lambda q, ps: [])
    assert "".join(answerer.stream("量子力学", PASSAGES)) == NOTHING_RELEVANT_ZH
    assert model.calls == []


def test_a_bare_citation_is_replaced_by_the_fallback_answer():
    class Fixed:
        name = "fixed"

        def stream(self, question, passages, history=()):
            yield "牛魔王是红孩儿的父亲[2]。"

    answerer = GroundedAnswerer(ScriptedModel(["[", "1", "]"]), "S", fallback=Fixed())
    assert "".join(answerer.stream("红孩儿的父亲是谁？", PASSAGES)) == "牛魔王是红孩儿的父亲[2]。"
    without = GroundedAnswerer(ScriptedModel(["[1]"]), "S")
    assert "".join(without.stream("红孩儿的父亲是谁？", PASSAGES)) == "[1]"


def test_a_real_answer_streams_through_after_its_first_words():
    model = ScriptedModel(["[1]", "红孩儿", "的父亲", "是牛魔王。"])
    pieces = list(GroundedAnswerer(model, "S", fallback=None).stream("q", PASSAGES))
    assert pieces == ["[1]红孩儿的父亲", "是牛魔王。"]  # held back only until it says something
