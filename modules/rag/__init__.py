"""Retrieval over the game knowledge base: load, chunk, index (BM25 + optional dense), fuse, rerank."""

from modules.rag.types import Chunk, Document, Passage, Retriever

__all__ = ["Chunk", "Document", "Passage", "Retriever"]
