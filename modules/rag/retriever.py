"""Hybrid retrieval: BM25 + entity matches (+ dense vectors) fused by reciprocal rank, then reranked."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from modules.rag.dense import DenseIndex
from modules.rag.fusion import reciprocal_rank_fusion
from modules.rag.index import KnowledgeIndex
from modules.rag.rerank import CrossEncoderReranker
from modules.rag.text import normalize
from modules.rag.types import Passage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryAnalysis:
    """A question as retrieval sees it."""

    text: str  # the question with chapter mentions made canonical and entity titles appended
    tokens: list[str]
    entities: list[str]  # titles of the knowledge-base entities it names


class HybridRetriever:
    """The default retriever; every part past BM25 is optional and switched by configuration."""

    def __init__(
        self,
        index: KnowledgeIndex,
        candidates: int = 40,
        rrf_k: int = 60,
        dense: DenseIndex | None = None,
        reranker: CrossEncoderReranker | None = None,
        rerank_top_n: int = 20,
        entity_chunks: int = 3,
        dense_weight: float = 1.0,
    ) -> None:
        self.index = index
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.dense = dense
        self.reranker = reranker
        self.rerank_top_n = rerank_top_n
        self.entity_chunks = entity_chunks
        self.dense_weight = dense_weight  # the dense ranking's weight in the fusion (BM25 and entities: 1)

    def analyze(self, query: str) -> QueryAnalysis:
        entities = self.index.entities.find(query)
        expanded = self.index.entities.expand(query)
        return QueryAnalysis(expanded, self.index.tokenizer.tokens(expanded), entities)

    def retrieve(self, query: str, top_k: int) -> list[Passage]:
        if not normalize(query):
            return []
        analysis = self.analyze(query)
        scores = self.index.bm25.scores(analysis.tokens)
        order = np.argsort(-scores, kind="stable")[: self.candidates]
        rankings: list[list[int]] = [[int(i) for i in order if scores[i] > 0]]

        # Entries the question names get a boost, but only their best-matching chunks: the rest of
        # a long entry must not crowd out a better passage elsewhere.
        entity_docs = [d.doc_id for d in self.index.documents if d.title in analysis.entities]
        if entity_docs:
            ranked_entities: list[int] = []
            for doc_id in entity_docs:
                ids = [c.chunk_id for c in self.index.chunks_by_doc.get(doc_id, [])]
                ranked_entities.extend(sorted(ids, key=lambda i: -scores[i])[: self.entity_chunks])
            rankings.append(sorted(ranked_entities, key=lambda i: -scores[i]))

        weights = [1.0] * len(rankings)
        dense = self.dense  # set by a background build once the vectors are ready
        if dense is not None:
            rankings.append([cid for cid, _ in dense.rank_chunks(query, self.candidates)])
            weights.append(self.dense_weight)

        fused = reciprocal_rank_fusion(rankings, k=self.rrf_k, weights=weights)
        if not fused:
            return []
        passages = [Passage(self.index.chunks[cid], score) for cid, score in fused]
        if self.reranker is not None:
            head = passages[: self.rerank_top_n]
            rescored = self.reranker.scores(query, [p.text for p in head])
            head = [Passage(p.chunk, s) for p, s in sorted(zip(head, rescored, strict=True), key=lambda x: -x[1])]
            passages = head + passages[self.rerank_top_n :]
        return passages[:top_k]
