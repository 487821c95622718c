"""The chat model that writes questions and paraphrases: any OpenAI-compatible server, or none.

It is a plain ``llm.base.ChatModel``, so the data stages take whatever implements ``stream_chat``; this module
only builds one from ``data.generator`` and turns a reply into clean lines.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from llm.base import ChatModel, ChatModelError, ChatTurn
from training.settings import GeneratorSettings

_LIST_MARK = re.compile(r"^\s*(?:[-*•·]|\d{1,3}\s*[.、)）:：]|[（(]\d{1,3}[)）]|Q\d*\s*[:：]|问题\s*\d*\s*[:：])\s*")


class GeneratorError(RuntimeError):
    """The question/paraphrase model failed; the message names the server and the setting to check."""


def create_generator(settings: GeneratorSettings) -> ChatModel | None:
    """The configured generator, or None when ``data.generator.base_url`` is empty."""
    if not settings.base_url.strip():
        return None
    from llm.openai_chat import OpenAIChatModel

    return OpenAIChatModel(
        settings.base_url,
        settings.model,
        api_key=os.environ.get(settings.api_key_env) or None,
        read_timeout=settings.read_timeout,
        name="generator",
        url_key="data.generator.base_url",
    )


def ask_lines(model: ChatModel, messages: Sequence[ChatTurn], temperature: float, max_tokens: int = 512) -> list[str]:
    """The model's reply split into lines, list marks and quotes removed, blanks dropped."""
    try:
        reply = "".join(model.stream_chat(messages, max_tokens, temperature))
    except ChatModelError as exc:
        raise GeneratorError(f"{exc} (data.generator.base_url; rerun to resume where it stopped)") from None
    lines = []
    for line in reply.splitlines():
        line = _LIST_MARK.sub("", line).strip().strip("\"'“”「」")
        if line:
            lines.append(line)
    return lines
