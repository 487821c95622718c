"""Entity and alias matching: 第一回 = 第一章 = 火照黑云, and English names find Chinese entries."""

from __future__ import annotations

import re
from collections.abc import Iterable

from modules.rag.synonyms import chinese_terms, kb_terms
from modules.rag.text import STOPWORDS, mostly_english, normalize
from modules.rag.types import Document

_CN_DIGITS = "零一二三四五六七八九十"
_ARABIC_CHAPTER = re.compile(r"第\s*(\d{1,2})\s*[章回关]")
_CN_CHAPTER = re.compile(r"第\s*([一二三四五六七八九十])\s*[章关]")
_EN_CHAPTER = re.compile(r"\b(?:chapter|chap\.?|ch\.?)\s*(\d{1,2})\b", re.IGNORECASE)
_EN_PROLOGUE = re.compile(r"\bprologue\b", re.IGNORECASE)


def chinese_number(n: int) -> str:
    """1 -> 一, 10 -> 十, 12 -> 十二 (enough for chapter numbers)."""
    if n <= 10:
        return _CN_DIGITS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _CN_DIGITS[tens]) + "十" + (_CN_DIGITS[ones] if ones else "")


def canonical_chapters(text: str) -> str:
    """Rewrite chapter mentions to the game's own form: 第3章 / Chapter 3 / 第三章 -> 第三回."""
    text = _ARABIC_CHAPTER.sub(lambda m: f"第{chinese_number(int(m.group(1)))}回", text)
    text = _CN_CHAPTER.sub(lambda m: f"第{m.group(1)}回", text)
    text = _EN_CHAPTER.sub(lambda m: f"第{chinese_number(int(m.group(1)))}回", text)
    return _EN_PROLOGUE.sub("序章", text)


_ASCII_PUNCT = re.compile(r"[-_'’:.,!?()\"/]+")


def match_form(text: str) -> str:
    """Normalised text in which English names compare loosely: "Hundred-Eyed" = "hundred eyed"."""
    return re.sub(r" {2,}", " ", _ASCII_PUNCT.sub(" ", normalize(text))).strip()


class EntityMatcher:
    """Finds knowledge-base entities (by title or any alias) mentioned in a text."""

    def __init__(self, documents: Iterable[Document]) -> None:
        self.name_to_title: dict[str, str] = {}
        for doc in documents:
            for name in doc.names:
                key = match_form(name) if name.isascii() else normalize(name)
                # An English alias that is an everyday word ("Will", the currency) names nothing.
                if key in STOPWORDS:
                    continue
                if len(key) >= 2 and key not in self.name_to_title:
                    self.name_to_title[key] = doc.title
        names = sorted(self.name_to_title, key=len, reverse=True)
        parts = [rf"\b{re.escape(n)}\b" if n.isascii() else re.escape(n) for n in names]
        self._pattern = re.compile("|".join(parts)) if parts else None

    def find(self, text: str) -> list[str]:
        """Titles of the entities named in the text, longest names first, each once."""
        if self._pattern is None:
            return []
        found: list[str] = []
        for match in self._pattern.finditer(canonical_chapters(match_form(text))):
            title = self.name_to_title[match.group(0)]
            if title not in found:
                found.append(title)
        return found

    def expand(self, text: str) -> str:
        """The text with chapter mentions made canonical, and the titles of the entities it names
        (and, for English words, the Chinese terms the knowledge base uses) appended."""
        text = canonical_chapters(text)
        present = normalize(text)
        extra = [w for t in self.find(text) for w in normalize(t).split() if w not in present]
        extra += [w for w in (chinese_terms(text) if mostly_english(text) else kb_terms(text)) if w not in present]
        return f"{text} {' '.join(dict.fromkeys(extra))}" if extra else text
