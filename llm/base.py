"""The answerer seam (question + passages + history -> text stream) and the chat-model seam."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from modules.rag.types import Passage


@dataclass(frozen=True)
class ChatTurn:
    """One message of a conversation."""

    role: Literal["system", "user", "assistant"]
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


class ChatModelError(RuntimeError):
    """A chat backend failed; the message names the backend and says what to do about it."""


@runtime_checkable
class Answerer(Protocol):
    """Writes a grounded answer. Citations are ``[n]``, n indexing ``passages`` from 1.

    ``stream`` yields text pieces as they are ready; closing the generator early (the player
    pressed stop, the client went away) must end the work. The full answer is the stream joined.
    """

    name: str

    def stream(self, question: str, passages: Sequence[Passage], history: Sequence[ChatTurn]) -> Iterator[str]: ...


@runtime_checkable
class ChatModel(Protocol):
    """A chat model backend: messages in, text pieces out as they are generated.

    Closing the returned generator must stop generation (abort the HTTP request, end the loop).
    Failures raise ChatModelError with a message fit for the player.
    """

    name: str

    def stream_chat(self, messages: Sequence[ChatTurn], max_tokens: int, temperature: float) -> Iterator[str]: ...
