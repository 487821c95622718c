"""Answer writers: the extractive default and (later) chat-model backends behind one interface."""

from llm.base import Answerer, ChatTurn

__all__ = ["Answerer", "ChatTurn"]
