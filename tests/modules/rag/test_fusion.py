import pytest

from modules.rag.fusion import reciprocal_rank_fusion


def test_items_in_both_lists_rise():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "b", "d"]], k=60)
    assert {item for item, _ in fused[:2]} == {"b", "c"}
    scores = dict(fused)
    assert scores["b"] == pytest.approx(2 / 62)
    assert scores["a"] == pytest.approx(1 / 61)
    assert scores["b"] > scores["a"]


def test_single_list_keeps_its_order_and_ties_are_stable():
    assert [i for i, _ in reciprocal_rank_fusion([["x", "y", "z"]])] == ["x", "y", "z"]
    assert [i for i, _ in reciprocal_rank_fusion([["x"], ["y"]])] == ["x", "y"]


def test_empty_and_bad_k():
    assert reciprocal_rank_fusion([]) == []
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], k=0)


def test_weights_let_a_noisier_ranking_count_for_less():
    fused = dict(reciprocal_rank_fusion([["a", "b"], ["b", "a"]], k=60, weights=[1.0, 0.5]))
    assert fused["a"] == pytest.approx(1 / 61 + 0.5 / 62)
    assert fused["a"] > fused["b"]
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0])
