"""Prompts for grounded answers: numbered passages, the rules, and history within a token budget."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from llm.base import ChatTurn
from modules.rag.types import Passage

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9\u3400-\u9fff\uf900-\ufaff]")

REWRITE_SYSTEM = (
    "你负责把对话里的最后一个追问改写成一个不依赖上下文、意思完整的独立问题，"
    "把“他/她/它/那个”等指代换成具体的名字。只输出改写后的问题本身，不要回答它，不要加任何解释。"
    "Rewrite the last question as a stand-alone question in its own language; output only the question."
)


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate: one token per Chinese character, ~1.3 per English word or symbol."""
    cjk = len(_CJK.findall(text))
    other = len(_WORD.findall(text))
    return cjk + (other * 4 + 2) // 3


def format_passages(passages: Sequence[Passage], budget: int, count: Callable[[str], int] = approx_tokens) -> str:
    """Passages as numbered, titled blocks, best first, as many as fit the token budget."""
    blocks: list[str] = []
    used = 0
    for i, p in enumerate(passages, 1):
        heading = f"{p.chunk.title} · {p.chunk.section}" if p.chunk.section else p.chunk.title
        block = f"[{i}] {heading}\n{p.text}"
        cost = count(block)
        if blocks and used + cost > budget:
            break
        blocks.append(block)
        used += cost
    return "\n\n".join(blocks)


def format_sentences(picks: Sequence[tuple[int, str]], passages: Sequence[Passage]) -> str:
    """Selected sentences as a compact context, each under its passage's number and title."""
    return "\n".join(f"[{n}] {passages[n - 1].chunk.title}：{sentence}" for n, sentence in picks)


def trim_history(
    history: Sequence[ChatTurn], budget: int, count: Callable[[str], int] = approx_tokens
) -> list[ChatTurn]:
    """The most recent turns that fit the budget, starting with a user turn."""
    kept: list[ChatTurn] = []
    used = 0
    for turn in reversed(history):
        if turn.role == "system":
            continue
        cost = count(turn.content)
        if used + cost > budget:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    while kept and kept[0].role != "user":
        kept.pop(0)
    return kept


def build_messages(
    system_prompt: str,
    question: str,
    passages: Sequence[Passage],
    history: Sequence[ChatTurn],
    *,
    context_tokens: int,
    history_tokens: int,
    max_tokens: int,
    count: Callable[[str], int] = approx_tokens,
    sources: str | None = None,
) -> list[ChatTurn]:
    """System prompt, recent history, then the passages and the question as the last user turn.

    The window is shared out as: answer (max_tokens), system prompt and question, history (at most
    history_tokens), and what is left for passages, of which the best-ranked come first. ``sources``
    replaces the formatted passages (a compact context of selected sentences).
    """
    past = trim_history(history, history_tokens, count)
    fixed = count(system_prompt) + count(question) + sum(count(t.content) for t in past) + 64
    room = max(context_tokens - max_tokens - fixed, 200)
    if sources is None:
        sources = format_passages(passages, room, count)
    user = f"资料 / Passages:\n{sources}\n\n问题 / Question: {question}"
    return [ChatTurn("system", system_prompt), *past, ChatTurn("user", user)]


def rewrite_messages(question: str, history: Sequence[ChatTurn], budget: int = 600) -> list[ChatTurn]:
    """Messages asking a model to make a follow-up stand-alone."""
    past = trim_history(history, budget)
    transcript = "\n".join(f"{'玩家' if t.role == 'user' else '助手'}: {t.content}" for t in past)
    return [
        ChatTurn("system", REWRITE_SYSTEM),
        ChatTurn("user", f"对话：\n{transcript}\n\n追问：{question}\n\n独立问题："),
    ]
