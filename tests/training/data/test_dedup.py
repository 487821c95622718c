"""Exact and near-duplicate detection: MinHash candidates confirmed by exact Jaccard."""

from __future__ import annotations

import pytest

from training.data.dedup import Deduplicator, dedup_key, jaccard, shingles

TEXT = (
    "黑熊精是第一回的最终头目，盘踞在黑风山。黑熊精原本是观音禅院附近的妖怪，"
    "在《西游记》第十六回到第十七回偷走了唐僧的袈裟，后来被观音菩萨收为守山大神。"
)


def test_key_ignores_case_spacing_and_punctuation():
    assert dedup_key("Black Bear, Guai！ 黑熊精。") == dedup_key("black bear guai黑熊精")
    assert dedup_key("ＡＢＣ") == "abc"  # full-width letters (NFKC)


def test_exact_repeat_is_flagged_and_points_at_the_first():
    dedup = Deduplicator()
    assert dedup.check("第一段，完全不同的文字。") is None
    assert dedup.check(TEXT) is None
    repeat = dedup.check(TEXT.replace("，", ", "))
    assert repeat is not None and repeat.kind == "exact" and repeat.of == 1
    assert len(dedup) == 2


def test_near_repeat_is_flagged_with_its_similarity():
    dedup = Deduplicator(threshold=0.8)
    assert dedup.check(TEXT) is None
    near = dedup.check(TEXT.replace("守山大神", "守山神将"))  # four characters changed
    assert near is not None and near.kind == "near" and near.of == 0
    assert near.similarity == pytest.approx(
        jaccard(shingles(TEXT, 5), shingles(TEXT.replace("守山大神", "守山神将"), 5))
    )
    assert near.similarity >= 0.8


def test_related_but_different_texts_are_kept():
    dedup = Deduplicator(threshold=0.85)
    half = TEXT[: len(TEXT) // 2] + "红孩儿是第五回的最终头目，住在火焰山，他的父亲是牛魔王，母亲是铁扇公主。"
    assert dedup.check(TEXT) is None
    assert dedup.check(half) is None  # shares half its shingles: similar, not a repeat
    assert jaccard(shingles(TEXT, 5), shingles(half, 5)) < 0.85


def test_short_questions_with_bigrams():
    dedup = Deduplicator(threshold=0.85, shingle_size=2)
    assert dedup.check("红孩儿的父亲是谁？") is None
    assert dedup.check("红孩儿的母亲是谁？") is None
    assert dedup.check("红孩儿的父亲是谁") is not None


def test_the_same_corpus_dedups_the_same_way():
    texts = [TEXT, TEXT.replace("黑风山", "黑风岭"), "另一段话。" * 10, TEXT[::-1]]
    runs = [[Deduplicator().check(t) is None for t in texts] for _ in range(2)]
    assert runs[0] == runs[1]


@pytest.mark.parametrize("kwargs", [{"threshold": 0}, {"threshold": 1.5}, {"shingle_size": 0}, {"bands": 0}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        Deduplicator(**kwargs)
