"""Dense retrieval: sentence vectors in Chroma, on the bundled embedder and on a tiny random model."""

from pathlib import Path

import numpy as np
import pytest

from modules.rag.dense import BackgroundDense, DenseIndex, dense_dir, sentence_units
from modules.rag.embedding import SentenceTransformerEmbedder
from modules.rag.index import IndexSettings, KnowledgeIndex
from modules.rag.rerank import CrossEncoderReranker
from modules.rag.retriever import HybridRetriever

pytestmark = pytest.mark.slow


class CountingEmbedder:
    """Wraps an embedder and counts what it embeds (to prove the cache is used)."""

    def __init__(self, inner, name: str | None = None):
        self.inner = inner
        self.name = name or inner.name
        self.passages = 0
        self.queries = 0

    def embed_queries(self, texts):
        self.queries += len(texts)
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts):
        self.passages += len(texts)
        return self.inner.embed_passages(texts)


@pytest.fixture
def index(kb_dir: Path, tmp_path: Path) -> KnowledgeIndex:
    return KnowledgeIndex.open([kb_dir], tmp_path / "cache", IndexSettings())


def test_sentence_vectors_are_built_once_then_loaded(index, tiny_bert_dir):
    embedder = CountingEmbedder(SentenceTransformerEmbedder(tiny_bert_dir))
    directory = dense_dir(index.directory, embedder.name)
    progress: list[tuple[int, int]] = []
    built = DenseIndex.open(embedder, directory, index.chunks, lambda d, t: progress.append((d, t)), batch_size=4)
    units = sentence_units(index.chunks)
    assert embedder.passages == len(units) == len(built.units)
    assert progress[-1] == (len(units), len(units))
    again = CountingEmbedder(SentenceTransformerEmbedder(tiny_bert_dir))
    loaded = DenseIndex.open(again, directory, index.chunks)
    assert again.passages == 0  # read back from Chroma, not re-embedded
    np.testing.assert_allclose(loaded.matrix, built.matrix, atol=1e-6)


def test_a_changed_embedder_rebuilds_instead_of_mixing(index, tiny_bert_dir):
    first = CountingEmbedder(SentenceTransformerEmbedder(tiny_bert_dir), name="model-a")
    directory = index.directory / "dense"
    DenseIndex.open(first, directory, index.chunks)
    second = CountingEmbedder(SentenceTransformerEmbedder(tiny_bert_dir), name="model-b")
    DenseIndex.open(second, directory, index.chunks)
    assert second.passages == len(sentence_units(index.chunks))  # model-a's vectors were not reused


def test_rank_chunks_and_sentence_scores(index, tiny_bert_dir):
    dense = DenseIndex.open(SentenceTransformerEmbedder(tiny_bert_dir), index.directory / "d", index.chunks)
    ranked = dense.rank_chunks("黑熊精在哪里", 3)
    assert len(ranked) == 3 and ranked == sorted(ranked, key=lambda r: -r[1])
    assert {cid for cid, _ in ranked} <= {c.chunk_id for c in index.chunks}
    chunk = index.chunks[0]
    scores = dense.sentence_scores("黑熊精在哪里", chunk.chunk_id, [0, 1, 99])
    assert isinstance(scores[0], float) and scores[2] is None  # position 99 does not exist
    # No probes: relevance is the raw cosine.
    assert scores[0] == pytest.approx(float(dense.similarities("黑熊精在哪里")[dense._rows[(chunk.chunk_id, 0)]]))


def test_off_topic_probes_calibrate_relevance(index):
    from modules.rag.embedding import load_embedder

    probes = ["今天天气怎么样", "红烧肉怎么做", "How do I fix a leaking faucet?", "推荐一款机械键盘"]
    dense = DenseIndex.open(load_embedder("use"), index.directory / "cal", index.chunks, probes=probes)
    assert 0 < dense.off_topic_mean < 1 and dense.off_topic_spread >= 0.02
    on_topic = max(s for s in dense.sentence_scores("红孩儿的父亲是谁", 5, range(5)) if s is not None)
    (_, off_topic), *_ = dense.rank_chunks("明天上海下雨吗", 1)
    assert on_topic > off_topic


def test_bundled_embedder_finds_the_passage_by_meaning(index):
    from modules.rag.embedding import load_embedder

    dense = DenseIndex.open(load_embedder("use"), index.directory / "use", index.chunks)
    titles = {c.chunk_id: c.title for c in index.chunks}
    # No word of the question is in the entry's sentence about the father (父亲是牛魔王).
    (best, _), *_ = dense.rank_chunks("Who is Red Boy's dad?", 1)
    assert titles[best] == "红孩儿"


def test_background_build_reports_progress_and_failure(index, tiny_bert_dir):
    embedder = SentenceTransformerEmbedder(tiny_bert_dir)
    job = BackgroundDense(lambda progress: DenseIndex.open(embedder, index.directory / "bg", index.chunks, progress))
    assert job.start().wait(60) is not None and job.state == "ready"

    def broken(progress):
        raise OSError("disk full")

    failed = BackgroundDense(broken).start()
    assert failed.wait(10) is None
    assert failed.state == "failed: OSError: disk full"


def test_hybrid_retrieval_with_dense_and_reranker(index, tiny_bert_dir, tiny_cross_encoder_dir):
    dense = DenseIndex.open(SentenceTransformerEmbedder(tiny_bert_dir), index.directory / "d", index.chunks)
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


def test_a_delayed_build_starts_at_once_when_someone_waits(index, tiny_bert_dir):
    import time

    embedder = SentenceTransformerEmbedder(tiny_bert_dir)
    job = BackgroundDense(lambda progress: DenseIndex.open(embedder, index.directory / "late", index.chunks, progress))
    job.start(delay=60)
    time.sleep(0.2)
    assert job.index is None and job.state == "loading"  # still waiting out the delay
    started = time.perf_counter()
    assert job.wait(30) is not None
    assert time.perf_counter() - started < 30
