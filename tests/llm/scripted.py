"""A scripted ChatModel for testing the orchestration around a model (not a stand-in for loading one)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from llm.base import ChatModelError, ChatTurn


class ScriptedModel:
    """Yields the given pieces (raising ChatModelError after `fail_after` pieces) and records calls."""

    name = "scripted"

    def __init__(self, pieces: Sequence[str], fail_after: int | None = None) -> None:
        self.pieces = list(pieces)
        self.fail_after = fail_after
        self.calls: list[list[ChatTurn]] = []
        self.closed = False

    def start(self) -> None:
        """Nothing to start."""

    def stream_chat(self, messages: Sequence[ChatTurn], max_tokens: int, temperature: float) -> Iterator[str]:
        self.calls.append(list(messages))
        try:
            for i, piece in enumerate(self.pieces):
                if self.fail_after is not None and i == self.fail_after:
                    raise ChatModelError("the chat server at http://127.0.0.1:9 stopped mid-answer")
                yield piece
        finally:
            self.closed = True
