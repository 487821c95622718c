"""A chat model made into an Answerer: it answers from the retrieved passages and cites them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence

from llm.base import ChatModel, ChatModelError, ChatTurn
from llm.extractive import NOTHING_RELEVANT_EN, NOTHING_RELEVANT_ZH
from llm.prompt import build_messages, format_sentences, rewrite_messages
from modules.rag.text import mostly_english
from modules.rag.types import Passage

log = logging.getLogger(__name__)


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
    ) -> None:
        """``compact`` picks the sentences a small model reads instead of whole passages."""
        self.model = model
        self.name = model.name
        self.system_prompt = system_prompt
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.context_tokens = context_tokens
        self.history_tokens = history_tokens
        self.compact = compact
        self.compact_sentences = compact_sentences

    def stream(self, question: str, passages: Sequence[Passage], history: Sequence[ChatTurn] = ()) -> Iterator[str]:
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
        yield from self.model.stream_chat(messages, self.max_tokens, self.temperature)

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
