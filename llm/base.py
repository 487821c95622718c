"""The answerer seam (question + passages + history -> text stream) and the chat-model seam."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
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

    @property
    def model(self) -> ChatModel | None:
        """The chat model behind the answers; None when they are composed without one."""
        ...

    def stream(
        self, question: str, passages: Sequence[Passage], history: Sequence[ChatTurn]
    ) -> Generator[str, None, None]: ...

    def rewrite(self, question: str, history: Sequence[ChatTurn]) -> str | None:
        """A follow-up made stand-alone by the model; None when this answerer has no model for it."""
        ...


@runtime_checkable
class ChatModel(Protocol):
    """A chat model backend: messages in, text pieces out as they are generated.

    Closing the returned generator must stop generation (abort the HTTP request, end the loop).
    Failures raise ChatModelError with a message fit for the player.
    """

    name: str

    def start(self) -> None:
        """Be ready to answer now (a managed server starts); a no-op where building the model loaded it."""
        ...

    def stream_chat(self, messages: Sequence[ChatTurn], max_tokens: int, temperature: float) -> Iterator[str]: ...
