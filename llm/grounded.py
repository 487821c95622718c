"""A chat model made into an Answerer: it answers from the retrieved passages and cites them."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Generator, Iterator, Sequence

from llm.base import Answerer, ChatModel, ChatModelError, ChatTurn
from llm.extractive import NOTHING_RELEVANT_EN, NOTHING_RELEVANT_ZH
from llm.prompt import build_messages, format_sentences, rewrite_messages
from modules.rag.text import mostly_english
from modules.rag.types import Passage

log = logging.getLogger(__name__)

_CITATION = re.compile(r"\[\d+\]")
SUBSTANCE_CHARS = 4  # characters besides citations and punctuation before an answer counts as one


class GroundedAnswerer:
    """Prompts a ChatModel with numbered passages and the conversation, and streams its answer."""

    def __init__(
        self,
        model: ChatModel,
        system_prompt: str,
        *,
        max_tokens: int = 512,
        temperature: float = 0.3,
        context_tokens: int = 4096,
        history_tokens: int = 1024,
        compact: Callable[[str, Sequence[Passage]], list[tuple[int, str]]] | None = None,
        compact_sentences: int = 6,
        fallback: Answerer | None = None,
    ) -> None:
        """``compact`` picks the sentences a small model reads instead of whole passages; ``fallback``
        answers when the model's answer has no substance."""
        self.model = model
        self.name = model.name
        self.system_prompt = system_prompt
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.context_tokens = context_tokens
        self.history_tokens = history_tokens
        self.compact = compact
        self.compact_sentences = compact_sentences
        self.fallback = fallback

    def stream(
        self, question: str, passages: Sequence[Passage], history: Sequence[ChatTurn] = ()
    ) -> Generator[str, None, None]:
        if not passages:
            # Nothing retrieved: say so ourselves rather than let a model improvise.
            yield NOTHING_RELEVANT_EN if mostly_english(question) else NOTHING_RELEVANT_ZH
            return
        sources = None
        if self.compact is not None:
            picks = self.compact(question, passages)
            if not picks:
                yield NOTHING_RELEVANT_EN if mostly_english(question) else NOTHING_RELEVANT_ZH
                return
            sources = format_sentences(picks, passages)
        messages = build_messages(
            self.system_prompt,
            question,
            passages,
            history,
            context_tokens=self.context_tokens,
            history_tokens=self.history_tokens,
            max_tokens=self.max_tokens,
            sources=sources,
        )
        yield from self._with_substance(
            self.model.stream_chat(messages, self.max_tokens, self.temperature), question, passages, history
        )

    def _with_substance(
        self, pieces: Iterator[str], question: str, passages: Sequence[Passage], history: Sequence[ChatTurn]
    ) -> Iterator[str]:
        """The model's pieces, held back until they say something; an answer that never does (a bare
        "[1]", as small models write) is replaced by the fallback answerer's."""
        held: list[str] = []
        speaking = False
        try:
            for piece in pieces:
                if speaking:
                    yield piece
                    continue
                held.append(piece)
                if len(_CITATION.sub("", "".join(held)).strip(" \n。.，,:：")) >= SUBSTANCE_CHARS:
                    speaking = True
                    yield "".join(held)
        except ChatModelError:
            if held and not speaking:
                yield "".join(held)  # keep what the model managed to write before it failed
            raise
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # the player stopped: stop the model too
        if not speaking:
            if self.fallback is None:
                yield "".join(held)
            else:
                log.info("%s gave no usable answer (%r); answering from the knowledge base", self.name, "".join(held))
                yield from self.fallback.stream(question, passages, history)

    def rewrite(self, question: str, history: Sequence[ChatTurn]) -> str:
        """The follow-up as a stand-alone question; the question unchanged if the model fails."""
        try:
            text = "".join(self.model.stream_chat(rewrite_messages(question, history), 96, 0.0))
        except ChatModelError as exc:
            log.warning("follow-up rewrite failed (%s); using the question as asked", exc)
            return question
        line = text.strip().splitlines()[0].strip().strip('"“”「」') if text.strip() else ""
        for prefix in ("独立问题：", "独立问题:", "问题：", "Question:"):
            line = line.removeprefix(prefix).strip()
        # A rewrite that is empty or rambles is worse than the original.
        return line if 0 < len(line) <= max(4 * len(question), 80) else question
