import pytest

from modules.rag.bm25 import BM25Index


def test_scores_rank_the_matching_chunk_first():
    index = BM25Index.build([["黑熊精", "黑风山"], ["黄风大圣", "黄风岭"], ["黑风山", "土地庙"]])
    scores = index.scores(["黑熊精"])
    assert scores.argmax() == 0
    assert scores[1] == 0


def test_unknown_tokens_score_zero():
    index = BM25Index.build([["a"], ["b"]])
    assert index.scores(["zzz"]).tolist() == [0.0, 0.0]
    assert index.idf("zzz") > index.idf("a") > 0  # unknown words count as the rarest


def test_rare_tokens_weigh_more():
    index = BM25Index.build([["common", "rare"], ["common"], ["common"], ["common"]])
    assert index.idf("rare") > index.idf("common") > 0


def test_empty_chunks_are_allowed_but_no_chunks_is_an_error():
    index = BM25Index.build([[], ["x"]])
    assert index.scores(["x"]).argmax() == 1
    with pytest.raises(ValueError, match="no chunks"):
        BM25Index.build([])


def test_save_and_load_round_trip(tmp_path):
    index = BM25Index.build([["黑熊精"], ["黄风大圣"]])
    index.save(tmp_path)
    loaded = BM25Index.load(tmp_path)
    assert loaded.scores(["黄风大圣"]).tolist() == index.scores(["黄风大圣"]).tolist()
    assert loaded.idf("黑熊精") == index.idf("黑熊精")
