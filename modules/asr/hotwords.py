"""The game vocabulary speech recognition is biased toward and corrected to.

It is the knowledge base's entity names (titles and Chinese aliases) plus a few generic game terms
that players say but that are not entries of their own. Names are ordered by how often the knowledge
base mentions them, so a consumer with a budget (Whisper's prompt, FunASR's hotword list) keeps the
most important ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache

from modules.rag.types import Document

# Skills, spells, items and everyday gaming words a player asks about; generic terms, not KB entries.
EXTRA_TERMS: tuple[str, ...] = (
    "黑神话", "悟空", "黑神话悟空", "天命人", "齐天大圣", "大圣",
    "三昧神风", "三昧真火", "筋斗云", "定身法", "定身术", "金箍棒", "如意金箍棒", "铜头铁臂",
    "身外身法", "聚形散气", "安身法", "禁字法", "七十二变", "救命毫毛", "芭蕉扇", "定风珠", "辟火罩",
    "葫芦", "精魄", "法宝", "根器", "灵蕴", "棍势", "劈棍", "立棍", "戳棍", "识破", "闪身",
    "土地庙", "影神图", "妖怪", "头目", "禁箍", "紧箍", "二周目", "联机", "存档", "通关", "掉落", "天赋", "冷却",
)  # fmt: skip

# Characters that may sit inside a name but are not spoken: 黑神话：悟空, 魔将·劫波, “虎先锋”.
_SILENT = re.compile(r"[：:·・“”\"'‘’《》「」（）()\s]")
_HAN = re.compile(r"^[\u4e00-\u9fff]+$")
COMMON_WORD_FREQ = 2000  # jieba frequency above which a word is everyday language, not a game name


def spoken_form(name: str) -> str | None:
    """The name as it is spoken (punctuation removed), or None when it is not a Chinese name of 2+ characters."""
    form = _SILENT.sub("", name)
    return form if len(form) >= 2 and _HAN.match(form) else None


@cache
def _jieba_freq() -> dict[str, int]:
    try:
        import jieba
    except ImportError as exc:
        raise ImportError("game-term correction needs jieba: run `pip install jieba==0.42.1`") from exc
    jieba.setLogLevel(60)  # its dictionary-loading chatter is not ours to print
    jieba.initialize()
    return jieba.dt.FREQ


def word_frequency(word: str) -> int:
    """How common a word is in everyday Chinese (jieba's dictionary count; 0 when unknown)."""
    return int(_jieba_freq().get(word) or 0)


def is_common_word(word: str, threshold: int = COMMON_WORD_FREQ) -> bool:
    """True for everyday words (土地, 价格, 变化) that happen to be names or aliases too."""
    return word_frequency(word) >= threshold


# Round-robin order of knowledge-base categories: what players ask about most comes first in each round.
CATEGORY_ORDER: tuple[str, ...] = ("boss", "term", "combat", "character", "area", "chapter")


def game_vocabulary(documents: Iterable[Document], extra: Sequence[str] = EXTRA_TERMS) -> list[str]:
    """Spoken Chinese names of the KB entities plus the extra terms, most important first, each once.

    Within a category, entities rank by how often the knowledge base mentions them (by any of their
    names). Categories then take turns (bosses, game terms, combat, characters, areas, ...), so a consumer
    with a budget (Whisper's prompt, FunASR's hotwords) covers every kind of question. The list holds each
    entity's most used name in that order first, then all remaining aliases.
    """
    docs = list(documents)
    corpus = "\n".join(f"{d.title}\n{d.body}" for d in docs)
    groups: list[tuple[str, list[str]]] = []
    for doc in docs:
        forms = [f for f in (spoken_form(n) for n in doc.names) if f]
        if forms:
            groups.append((doc.category, list(dict.fromkeys(forms))))
    groups.extend(("term", [form]) for form in (spoken_form(t) for t in extra) if form)
    counts: dict[str, int] = {}
    for _, forms in groups:
        for form in forms:
            if form not in counts:
                counts[form] = corpus.count(form)
    by_category: dict[str, list[list[str]]] = {}
    for category, forms in sorted(groups, key=lambda g: -sum(counts[f] for f in g[1])):
        by_category.setdefault(category, []).append(sorted(forms, key=lambda f: -counts[f]))
    # Categories that players rarely name in a question (culture, art, memes...) follow the rounds.
    order = [c for c in CATEGORY_ORDER if c in by_category]
    ranked: list[list[str]] = []
    for turn in range(max((len(by_category[c]) for c in order), default=0)):
        ranked.extend(by_category[c][turn] for c in order if turn < len(by_category[c]))
    rest = [(category, forms) for category, forms in groups if category not in CATEGORY_ORDER]
    ranked.extend(
        sorted(forms, key=lambda f: -counts[f])
        for _, forms in sorted(rest, key=lambda g: -sum(counts[f] for f in g[1]))
    )
    ordered = [forms[0] for forms in ranked] + [f for forms in ranked for f in forms[1:]]
    return list(dict.fromkeys(ordered))
