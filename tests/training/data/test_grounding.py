"""The grounding check: citations must exist, and each sentence must be covered by what it cites."""

from __future__ import annotations

import pytest

from training.data.grounding import GroundingChecker, answer_sentences, citations_in

SOURCES = [
    "黑熊精是第一回的最终头目，盘踞在黑风山。黑熊精原本是观音禅院附近的妖怪。",
    "红孩儿是第五回的最终头目，住在火焰山。红孩儿的父亲是牛魔王，母亲是铁扇公主。",
    "The Black Bear Guai is the final boss of Chapter 1, fought at the summit of Black Wind Mountain.",
]


@pytest.fixture(scope="module")
def checker():
    return GroundingChecker(min_coverage=0.8)


def test_a_supported_answer_is_grounded(checker):
    report = checker.check("黑熊精盘踞在黑风山[1]。红孩儿的父亲是牛魔王[2]。", SOURCES)
    assert report.grounded and report.reasons == ()
    assert [s.citations for s in report.sentences] == [(1,), (2,)]
    assert report.coverage == 1.0


def test_an_unsupported_sentence_is_rejected_with_what_is_missing(checker):
    report = checker.check("黑熊精盘踞在黑风山[1]。红孩儿的父亲是玉皇大帝，他住在月亮上[2]。", SOURCES)
    assert not report.grounded
    assert len(report.reasons) == 1 and "玉皇大帝" in report.reasons[0] and "[2]" in report.reasons[0]
    bad = report.sentences[1]
    assert not bad.supported and bad.coverage < 0.8 and "月亮" in bad.missing


def test_a_fact_cited_to_the_wrong_passage_is_rejected(checker):
    # True in the knowledge base, but not in passage [1], which the sentence cites.
    assert not checker.check("红孩儿的父亲是牛魔王[1]。", SOURCES).grounded


def test_citations_must_name_existing_sources(checker):
    report = checker.check("黑熊精盘踞在黑风山[4]。", SOURCES)
    assert not report.grounded and "cites [4] but there are 3 sources" in report.reasons[0]
    assert not checker.check("黑熊精盘踞在黑风山[0]。", SOURCES).grounded


def test_an_answer_without_citations_or_text_is_rejected(checker):
    assert checker.check("黑熊精盘踞在黑风山。", SOURCES).reasons == ("cites no passage",)
    assert checker.check("   ", SOURCES).reasons == ("empty answer",)


def test_citation_after_the_full_stop_stays_with_its_sentence(checker):
    assert answer_sentences("黑熊精在黑风山。[1] 红孩儿住在火焰山。[2]") == [
        "黑熊精在黑风山[1]。",
        "红孩儿住在火焰山[2]。",
    ]
    report = checker.check("黑熊精盘踞在黑风山。[1]红孩儿住在火焰山。[2]", SOURCES)
    assert report.grounded and [s.citations for s in report.sentences] == [(1,), (2,)]


def test_a_sentence_without_its_own_citation_is_checked_against_all_cited(checker):
    assert checker.check("黑熊精盘踞在黑风山。红孩儿住在火焰山[2]。", [*SOURCES, ""]).grounded is False  # [1] uncited
    assert checker.check("黑熊精是第一回的最终头目。红孩儿住在火焰山[1][2]。", SOURCES).grounded


def test_english_answers(checker):
    answer = "From the knowledge base (in Chinese): The Black Bear Guai is fought at Black Wind Mountain [3]."
    assert checker.check(answer, SOURCES).grounded
    assert not checker.check("The Black Bear Guai lives in the ocean near Shanghai [3].", SOURCES).grounded


def test_a_sentence_with_no_content_words_passes(checker):
    assert checker.check("黑熊精盘踞在黑风山[1]。是的。", SOURCES).grounded


def test_coverage_threshold_is_configurable(checker):
    answer = "黑熊精盘踞在黑风山，喜欢吃桃子[1]。"
    assert not GroundingChecker(0.9, checker.tokenize).check(answer, SOURCES).grounded
    assert GroundingChecker(0.5, checker.tokenize).check(answer, SOURCES).grounded


@pytest.mark.parametrize("value", [0, 1.2, -0.1])
def test_bad_threshold(value):
    with pytest.raises(ValueError):
        GroundingChecker(value)


def test_citation_forms():
    assert citations_in("a[1][2]，b[1, 3]，c[2、4]，d[3，5]") == (1, 2, 3, 4, 5)
    assert citations_in("no citations [x] [] [1a]") == ()
