"""Turn a follow-up ("那他的父亲呢？") into a stand-alone question using the conversation.

Without a chat model this is rule-based: a question that names no knowledge-base entity but
leans on the conversation (a pronoun, a leading 那/还有/what about, or just a few characters
like "怎么打？") gets the entity the conversation was last about.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from llm.base import ChatTurn

_PRONOUN_ZH = re.compile(r"他们|她们|它们|这个boss|这个家伙|这个人|此人|这位|那位|他|她|它")
_PRONOUN_EN = re.compile(r"\b(he|him|his|she|her|hers|it|its|they|them|their)\b", re.IGNORECASE)
_LEAD = re.compile(r"^(那么|那|还有|然后|另外|再问一下|and then|and|what about|how about)\s*[,，]?\s*", re.IGNORECASE)
_SHORT = 6


def leans_on_context(question: str, find_entities: Callable[[str], list[str]]) -> bool:
    """True when a question names no entity and leans on the conversation to make sense."""
    if find_entities(question):
        return False
    leans = bool(_PRONOUN_ZH.search(question) or _PRONOUN_EN.search(question) or _LEAD.match(question))
    return leans or len(question.strip()) <= _SHORT


def resolve_followup(
    question: str,
    history: Sequence[ChatTurn],
    find_entities: Callable[[str], list[str]],
) -> str:
    """The question made stand-alone, or unchanged when it already is (or there is no context)."""
    if not history or not leans_on_context(question, find_entities):
        return question
    entity = _last_entity(history, find_entities)
    if entity is None:
        return question
    body = _LEAD.sub("", question.strip())
    if _PRONOUN_ZH.search(body):
        return _PRONOUN_ZH.sub(entity, body, count=1)
    if _PRONOUN_EN.search(body):
        return _PRONOUN_EN.sub(
            lambda m: entity + ("'s" if m.group(1).lower() in ("his", "its", "their", "hers") else ""), body, count=1
        )
    return f"{entity}{body}" if not body[:1].isascii() else f"{body} ({entity})"


def _last_entity(history: Sequence[ChatTurn], find_entities: Callable[[str], list[str]]) -> str | None:
    """The entity the conversation was last about: the latest question naming one, else an answer."""
    for role in ("user", "assistant"):
        for turn in reversed(history):
            if turn.role == role:
                found = find_entities(turn.content)
                if found:
                    return found[0]
    return None
