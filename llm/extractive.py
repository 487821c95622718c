"""The embedded default answerer: no model, just the best knowledge-base sentences, cited.

It scores every sentence of the retrieved passages by how much of the question (weighted by
inverse document frequency) it covers, prefers the section the question is about (打法 for "怎么打",
位置 for "在哪" …), and composes the top few into a short answer with ``[n]`` citations. When even the
best passage covers too little of the question it says so instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from llm.base import ChatTurn
from modules.rag.text import mostly_english, split_sentences
from modules.rag.types import Passage

NOTHING_RELEVANT_ZH = (
    "知识库里没有找到能回答这个问题的内容，俺老孙不瞎编。"
    "可以换个说法，或者问问《黑神话：悟空》的章节、妖王、角色、法术、装备和原著典故。"
)
NOTHING_RELEVANT_EN = (
    "I could not find anything in the knowledge base that answers this, and I would rather not guess. "
    "Try rephrasing, or ask about Black Myth: Wukong's chapters, bosses, characters, spells, gear or its "
    "links to Journey to the West."
)

# Question intent -> the section headings that answer it.
_INTENTS: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    (
        re.compile(
            r"是谁|是什么|叫什么|什么名字|名字|名称|身份|来历|简介|who (?:is|are|was)|what (?:is|are|was)|called", re.I
        ),
        ("", "身份", "简介", "概述", "来历"),
    ),
    (
        re.compile(
            r"怎么打|如何打|打法|攻略|技巧|难打|打不过|怎么过|怎么躲|躲|弱点|机制"
            r"|how (?:do i |to )?(?:beat|defeat|fight)|tips?\b|dodge|weak",
            re.I,
        ),
        ("打法", "技巧", "攻略", "机制", "应对"),
    ),
    (
        re.compile(r"在哪|哪里|哪儿|位置|什么地方|在哪个|where|location", re.I),
        ("位置", "地点", "场景", "区域", "获取", "入口"),
    ),
    (re.compile(r"原著|西游记|小说|第几回|novel|journey to the west", re.I), ("原著", "西游记", "典故", "出处")),
    (re.compile(r"掉落|奖励|获得|得到|给什么|drop|reward|loot", re.I), ("掉落", "奖励", "获得", "获取")),
    (
        re.compile(r"怎么触发|条件|怎么进|如何进入|怎么去|how (?:do i |to )?(?:get|unlock|reach|trigger)", re.I),
        ("条件", "触发", "入口", "进入", "前往", "解锁"),
    ),
]


@dataclass(frozen=True)
class _Candidate:
    sentence: str
    passage_index: int
    position: int
    score: float
    coverage: float
    tokens: frozenset[str]


class ExtractiveAnswerer:
    """Composes a cited answer from knowledge-base sentences; the no-download default."""

    name = "extractive"

    def __init__(
        self,
        tokenize: Callable[[str], list[str]],
        idf: Callable[[str], float],
        max_sentences: int = 3,
        min_relevance: float = 0.34,
        piece_chars: int = 6,
    ) -> None:
        self.tokenize = tokenize
        self.idf = idf
        self.max_sentences = max_sentences
        self.min_relevance = min_relevance
        self.piece_chars = piece_chars

    def stream(self, question: str, passages: Sequence[Passage], history: Sequence[ChatTurn] = ()) -> Iterator[str]:
        answer = self.compose(question, passages)
        for start in range(0, len(answer), self.piece_chars):
            yield answer[start : start + self.piece_chars]

    # -- composition -------------------------------------------------------------------------

    def compose(self, question: str, passages: Sequence[Passage]) -> str:
        english = mostly_english(question)
        weights = self._weights(question)
        total = sum(weights.values())
        if not passages or total == 0:
            return NOTHING_RELEVANT_EN if english else NOTHING_RELEVANT_ZH
        candidates = self._candidates(question, passages, weights, total, english)
        if not candidates or max(c.coverage for c in candidates) < self.min_relevance:
            return NOTHING_RELEVANT_EN if english else NOTHING_RELEVANT_ZH
        chosen = self._choose(candidates, english)
        body = "".join(_cite(c.sentence, c.passage_index + 1) for c in chosen)
        if english and not any(_is_english(c.sentence) for c in chosen):
            return "From the knowledge base (in Chinese): " + body
        return body

    def _weights(self, question: str) -> dict[str, float]:
        """IDF weight of each content term of the question.

        The words that only say what kind of answer is wanted (怎么打, 在哪, 原著 …) are left out:
        the section preference answers them, and an entry need not repeat them.
        """
        form = set()
        for pattern, _ in _INTENTS:
            for match in pattern.finditer(question):
                form.update(self.tokenize(match.group(0)))
        weights = {t: self.idf(t) for t in dict.fromkeys(self.tokenize(question)) if t not in form}
        return {t: w for t, w in weights.items() if w > 0}

    def relevance(self, question: str, passage: Passage) -> float:
        """Share of the question's weighted terms the passage (with its title and heading) covers."""
        weights = self._weights(question)
        total = sum(weights.values())
        if total == 0:
            return 0.0
        have = set(self.tokenize(f"{passage.chunk.title} {passage.chunk.section} {passage.text}"))
        return sum(w for t, w in weights.items() if t in have) / total

    def _candidates(
        self,
        question: str,
        passages: Sequence[Passage],
        weights: dict[str, float],
        total: float,
        english: bool,
    ) -> list[_Candidate]:
        wanted = [heads for pattern, heads in _INTENTS if pattern.search(question)]
        out = []
        for index, passage in enumerate(passages):
            chunk = passage.chunk
            header = set(self.tokenize(f"{chunk.title} {chunk.section}"))
            section_match = any(
                any((h in chunk.section) if h else not chunk.section for h in heads) for heads in wanted
            )
            for position, sentence in enumerate(split_sentences(chunk.text)):
                if len(sentence) < 4:
                    continue
                tokens = frozenset(self.tokenize(sentence))
                in_sentence = sum(w for t, w in weights.items() if t in tokens) / total
                in_header = sum(w for t, w in weights.items() if t in header and t not in tokens) / total
                coverage = in_sentence + in_header
                score = in_sentence + 0.6 * in_header + 0.12 / (1 + index)
                if section_match:
                    score += 0.35
                if english and _is_english(sentence):
                    score += 0.3
                if not chunk.section and position == 0:
                    score += 0.05  # an entry's opening sentence says what the entity is
                out.append(_Candidate(sentence, index, position, score, coverage, tokens))
        return out

    def _choose(self, candidates: list[_Candidate], english: bool) -> list[_Candidate]:
        ranked = sorted(candidates, key=lambda c: (-c.score, c.passage_index, c.position))
        best = ranked[0]
        chosen = [best]
        for cand in ranked[1:]:
            if len(chosen) >= self.max_sentences:
                break
            if cand.score < 0.6 * best.score or cand.coverage < self.min_relevance:
                break
            if any(_similar(cand.tokens, c.tokens) or cand.sentence == c.sentence for c in chosen):
                continue
            if english and _is_english(cand.sentence) and any(_is_english(c.sentence) for c in chosen):
                continue
            chosen.append(cand)
        # Read in the order the knowledge base tells it: the best passage first, then by position.
        head, rest = chosen[0], sorted(chosen[1:], key=lambda c: (c.passage_index, c.position))
        return [head, *rest]


def _is_english(sentence: str) -> bool:
    return mostly_english(sentence)


def _similar(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:
        return False
    return len(a & b) / len(a | b) > 0.7


def _cite(sentence: str, n: int) -> str:
    """Put the citation before the sentence's closing punctuation: 黑风山[1]。"""
    sentence = sentence.strip()
    if _is_english(sentence):
        return f"{sentence} [{n}] "
    if sentence and sentence[-1] in "。！？；!?…":
        return f"{sentence[:-1]}[{n}]{sentence[-1]}"
    return f"{sentence}[{n}]。"
