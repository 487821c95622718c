"""Dense retrieval and reranking on tiny random models saved by the tests (real loading code)."""

from pathlib import Path

import pytest

from modules.rag.dense import DenseIndex
from modules.rag.index import IndexSettings, KnowledgeIndex
from modules.rag.rerank import CrossEncoderReranker
from modules.rag.retriever import HybridRetriever

pytestmark = pytest.mark.slow


def test_dense_index_builds_persists_and_queries(kb_dir: Path, tmp_path: Path, tiny_bert_dir: Path):
    settings = IndexSettings(embedding_model=str(tiny_bert_dir))
    index = KnowledgeIndex.open([kb_dir], tmp_path / "cache", settings)
    assert (index.directory / "chroma").is_dir()
    dense = DenseIndex(tiny_bert_dir, index.directory / "chroma")
    assert dense.count() == len(index.chunks)
    # A chunk's own text is its nearest neighbour, even with random weights.
    chunk = index.chunks[3]
    hits = dense.query(chunk.text, 3)
    assert len(hits) == 3
    ids = [cid for cid, _ in hits]
    assert all(0 <= cid < len(index.chunks) for cid in ids)
    assert hits == sorted(hits, key=lambda h: -h[1])


def test_hybrid_retrieval_with_dense_and_reranker(kb_dir, tmp_path, tiny_bert_dir, tiny_cross_encoder_dir):
    index = KnowledgeIndex.open([kb_dir], tmp_path / "cache", IndexSettings(embedding_model=str(tiny_bert_dir)))
    dense = DenseIndex(tiny_bert_dir, index.directory / "chroma")
    reranker = CrossEncoderReranker(tiny_cross_encoder_dir)
    retriever = HybridRetriever(index, dense=dense, reranker=reranker, rerank_top_n=4)
    passages = retriever.retrieve("红孩儿的父亲是谁", 4)
    assert len(passages) == 4
    head_scores = [p.score for p in passages]
    assert head_scores == sorted(head_scores, reverse=True)  # reranked head is ordered by the cross-encoder
    assert "红孩儿" in {p.title for p in passages}


def test_reranker_scores_each_pair(tiny_cross_encoder_dir):
    reranker = CrossEncoderReranker(tiny_cross_encoder_dir)
    scores = reranker.scores("黑熊精", ["黑熊精在黑风山。", "红孩儿在火焰山。"])
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)
    assert reranker.scores("q", []) == []
