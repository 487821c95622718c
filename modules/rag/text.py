"""Chinese-aware text helpers: normalisation, sentence splitting and tokenisation (jieba)."""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable

log = logging.getLogger(__name__)

# Sentence ends. Chinese marks always end a sentence (closing quotes stay with it). ASCII .!? end
# one only before whitespace and a capital letter or a Chinese character, and never after a
# one-letter word or a title like Dr. — so 2024.08.20, 3.5, "c. 1500" and "Dr. Feng" stay whole.
_SENTENCE_END = re.compile(
    r"(?<=[。！？；…][”’」』）)\"])"
    r"|(?<=[。！？；…])(?![。！？；!?…”’」』）)\"])"
    r"|(?<=[!?])(?=[\u3400-\u9fff])"
    r"|(?<=[.!?])(?<!\b[A-Za-z]\.)(?<!Dr\.)(?<!Mr\.)(?<!Ms\.)(?<!St\.)(?<!vs\.)(?<!Mrs\.)(?<!etc\.)"
    r"(?=\s+[\"“‘']?[A-Z\u3400-\u9fff])"
    r"|\n+"
)
_MD_INLINE = re.compile(r"(\*\*|__|`|~~)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)、])\s+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[\u3400-\u9fff\uf900-\ufaff]+")

# Question words and particles that say nothing about the game.
_STOPWORD_TEXT = """
的 了 是 在 和 与 及 或 也 都 就 还 又 而 呢 吗 吧 啊 呀 哦 嘛 么 着 过 被 把 让 给 对 向 从 到 于 以 之
其 这 那 这个 那个 这些 那些 哪 哪个 哪些 哪里 哪儿 什么 怎么 怎样 如何 为什么 为何 多少 几 谁 吗 请问 一下 一个
我 你 他 她 它 我们 你们 他们 她们 它们 自己 有 没有 没 不 很 最 更 能 会 可以 要 想 应该 需要 该 得 地 上 下
中 里 个 位 种 次 些 等 啥 咋 嘞 呗 知道 告诉 说说 讲讲 介绍 一 做 做了 干 干了 干嘛 发生 发生了 讲 讲了 说
说了 叫 叫做 算 算是 是不是 有没有 时候 啥样 样子 一下子 呃 嗯 哈 打
那里 这里 是从 从 一共 总共 到底 究竟 呢 最后 所有 全部 应该 需要
a an the of in on at to for from by with is are was were be been am
do does did what which who whom whose where when why how that this
these those it its he she they them his her their i you we me my your
our and or not no can could should would will shall may might must
there here about into as please tell
has have had get got any anyone someone really actually exactly just also even still know
total order called name named main list many much thing things stuff guys pls ok okay
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def normalize(text: str) -> str:
    """NFKC (full-width to half-width), lower-case, collapsed whitespace."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().lower()


def strip_markdown(line: str) -> str:
    """A Markdown line as plain text for display and sentence splitting."""
    if _TABLE_RULE.match(line):
        return ""
    line = _MD_LINK.sub(r"\1", line)
    line = _LIST_MARK.sub("", line)
    line = _MD_INLINE.sub("", line)
    if line.lstrip().startswith("|"):
        line = "，".join(cell.strip() for cell in line.strip().strip("|").split("|") if cell.strip())
    return line.lstrip("> ").strip()


MIN_SENTENCE_CHARS = 4  # shorter pieces ("是。") carry no meaning of their own: never quoted, never embedded


def quotable_sentences(text: str) -> list[tuple[int, str]]:
    """(position, sentence) of the sentences an answer may quote; the positions index split_sentences."""
    return [(i, s) for i, s in enumerate(split_sentences(text)) if len(s) >= MIN_SENTENCE_CHARS]


def split_sentences(text: str) -> list[str]:
    """Sentences with their punctuation kept; joining them (plus newlines) gives back the text."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def mostly_english(text: str) -> bool:
    """True when Latin letters clearly outnumber Chinese characters (names in brackets allowed)."""
    letters = sum(ch.isascii() and ch.isalpha() for ch in text)
    han = sum(is_cjk(ch) for ch in text)
    return letters > 0 and letters >= 4 * han


class Tokenizer:
    """jieba search-mode tokens for Chinese, lower-cased words for English, stopwords removed.

    Entity names from the knowledge base are added to jieba's dictionary so that 黑熊精 or
    黄风大圣 stay whole tokens (search mode still emits their parts, so 黑熊 matches too).
    """

    _lock = threading.Lock()

    def __init__(self, user_words: Iterable[str] = ()) -> None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self._jieba = jieba.Tokenizer()
        with self._lock:
            self._jieba.initialize()
        for word in user_words:
            word = normalize(word)
            if len(word) >= 2 and any(is_cjk(c) for c in word) and " " not in word:
                self._jieba.add_word(word, freq=20000)

    def tokens(self, text: str) -> list[str]:
        """Index/query tokens of a text, in order, stopwords and punctuation dropped."""
        out: list[str] = []
        for piece in _WORD.findall(normalize(text)):
            if piece[0].isascii():
                word = piece.removesuffix("'s")
                if word not in STOPWORDS:
                    out.append(word)
                continue
            for word in self._jieba.cut_for_search(piece, HMM=False):
                if word not in STOPWORDS:
                    out.append(word)
        return out
