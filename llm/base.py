"""The answerer seam: question + retrieved passages + history -> a stream of text pieces."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from modules.rag.types import Passage


@dataclass(frozen=True)
class ChatTurn:
    """One message of the conversation so far."""

    role: Literal["system", "user", "assistant"]
    content: str


@runtime_checkable
class Answerer(Protocol):
    """Writes a grounded answer. Citations are ``[n]``, n indexing ``passages`` from 1.

    ``stream`` yields text pieces as they are ready; stopping iteration early (the player pressed
    stop) must end the work. The non-streaming answer is the stream joined.
    """

    name: str

    def stream(self, question: str, passages: Sequence[Passage], history: Sequence[ChatTurn]) -> Iterator[str]: ...


@runtime_checkable
class ChatModel(Protocol):
    """A chat model backend (LMDeploy, OpenAI-compatible, transformers, llama.cpp) for later issues."""

    name: str

    def stream_chat(self, messages: Sequence[ChatTurn], max_tokens: int) -> Iterator[str]: ...
