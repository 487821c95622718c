"""Game-term correction: misheard names snapped to the knowledge base's by how they sound.

Recognisers write game names as everyday homophones (黑熊精 -> 黑熊金, 黄眉 -> 皇梅, 三昧神风 -> 三妹神风).
A span of the transcript is replaced by a vocabulary name when their pinyin agree, ignoring tones and
allowing the sound pairs speakers and recognisers confuse (zh/z, ch/c, sh/s, n/l, f/h, en/eng, in/ing).
Rewriting a correct sentence is worse than missing a fix, so the rules are strict:

- two-character names need identical pinyin; three-character names allow one confusable pair; longer
  names allow one confusable pair or one half-right syllable (same initial or same final), but not when
  that half-right character is the only one that differs (发售时片 is not 发售时间 misheard);
- a span that is a dictionary word (时候, 徒弟, 三界) is left alone, and so is one whose edge forms a word
  with its neighbour (入山闭关), one holding a common word the name lacks (实际上是), a two-character span
  with a function word in it (死在, 是佛), and a change of one number into another (第十回 / 第四回);
- names that are everyday words (土地, 价格) are not targets; a name already in the text is never cut or
  changed, and may only be completed with exact sounds (土地描 -> 土地庙, but not 天命人升 -> 天命人梗).

On the shipped knowledge base's own sentences (correct text, full of names) it changes about 1 in 600.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from typing import cast

from modules.asr.hotwords import is_common_word, spoken_form, word_frequency

# Initials, longest first so "zh" is not read as "z".
_INITIALS: tuple[str, ...] = (
    "zh",
    "ch",
    "sh",
    "b",
    "p",
    "m",
    "f",
    "d",
    "t",
    "n",
    "l",
    "g",
    "k",
    "h",
    "j",
    "q",
    "x",
    "r",
    "z",
    "c",
    "s",
)
_INITIALS += ("y", "w")
# How y- and w- spellings are pronounced (the rest drop their y/w: ya -> ia, wo -> uo, ...).
_Y_W_FINALS = {
    "yi": "i", "you": "iu", "yin": "in", "ying": "ing", "yu": "v", "yue": "ve", "yuan": "van", "yun": "vn",
    "wu": "u", "wei": "ui", "wen": "un",
}  # fmt: skip
_Y_W_FINALS.update({s: "i" + s[1:] for s in ("ya", "ye", "yao", "yan", "yang", "yong")})
_Y_W_FINALS.update({s: "u" + s[1:] for s in ("wa", "wo", "wai", "wan", "wang", "weng")})
_FUZZY_INITIALS = {"zh": "z", "ch": "c", "sh": "s", "n": "l", "f": "h"}
_FUZZY_FINALS = {"eng": "en", "ing": "in"}
_NUMERALS = frozenset("零一二三四五六七八九十百千万两")
SPAN_WORD_FREQ = 1  # a span that is a dictionary word (三界, 时候, 徒弟) is a word, not a misheard name
GLUE_WORD_FREQ = 50  # a span whose edge character forms a word with its neighbour (入山闭关) is left alone
INNER_WORD_FREQ = 1000  # a sound-alike span holding an everyday word the name lacks (实际上是) is left alone
INNER_WORD_FREQ_EXACT = 5000  # ... and a same-sound span holding a very common one (一件与)
FUNCTION_CHAR_FREQ = 50000  # single characters this common (是, 在, 的) are words of their own
MAX_READINGS = 2
_HAN_RUN = re.compile(r"[\u4e00-\u9fff]+")
MAX_COMBINATIONS = 16

EXACT, FUZZY, HALF = 1.0, 0.8, 0.5


@dataclass(frozen=True)
class Correction:
    """One replacement made in a transcript."""

    start: int
    end: int
    original: str
    replacement: str
    score: float


@dataclass(frozen=True)
class _Target:
    name: str
    syllables: tuple[str, ...]
    keys: tuple[str, ...]  # fuzzy-normalised syllables
    rank: int  # position in the vocabulary: earlier names win ties


@lru_cache(maxsize=4096)
def split_syllable(syllable: str) -> tuple[str, str]:
    """Initial and final as pronounced: ("zh", "uang") for zhuang, ("", "ie") for ye, ("j", "v") for ju.

    y and w are spelling, not sounds: ye is the final ie, wei is ui, yu is ü (written v), and after j, q, x
    a written u is ü. So 野 (ye) and 铁 (tie) share their final, as they do when spoken.
    """
    if syllable[:1] in ("y", "w") and len(syllable) > 1:
        return "", _Y_W_FINALS.get(syllable, syllable[1:])
    for initial in _INITIALS:
        if syllable.startswith(initial) and len(syllable) > len(initial):
            final = syllable[len(initial) :]
            if initial in ("j", "q", "x") and final.startswith("u"):
                final = "v" + final[1:]
            return initial, final
    return "", syllable


@lru_cache(maxsize=4096)
def fuzzy_key(syllable: str) -> str:
    """The syllable with confusable initials and finals merged (shen -> sen, jing -> jin, fu -> hu)."""
    initial, final = split_syllable(syllable)
    return _FUZZY_INITIALS.get(initial, initial) + "|" + _FUZZY_FINALS.get(final, final)


@lru_cache(maxsize=16384)
def syllable_similarity(target: str, heard: str) -> float:
    """1.0 identical, 0.8 a confusable pair, 0.5 half right (same initial, or same final), else 0.0.

    Two syllables with no initial are half right when their finals start alike (ye / yan: ie / ian).
    """
    if target == heard:
        return EXACT
    a, b = fuzzy_key(target), fuzzy_key(heard)
    if a == b:
        return FUZZY
    a_initial, a_final = a.split("|")
    b_initial, b_final = b.split("|")
    if a_final == b_final or (a_initial == b_initial and (a_initial or a_final[0] == b_final[0])):
        return HALF
    return 0.0


def _no_reading(_: str) -> list[list[str]]:
    """pypinyin's ``errors`` callback: a character without pinyin gets one empty reading (dropped after)."""
    return [[""]]


@lru_cache(maxsize=8192)
def _char_readings(char: str) -> tuple[str, ...]:
    from pypinyin import Style, pinyin

    # pypinyin's stubs type an errors callback as returning str, but its converter also takes a list of
    # readings (DefaultConverter.handle_nopinyin), which is what gives a pinyin-less character [[""]].
    no_reading = cast("Callable[[str], str]", _no_reading)
    readings = pinyin(char, style=Style.NORMAL, heteronym=True, errors=no_reading)[0]
    return tuple(r for r in readings if r)


def _text_readings(text: str) -> list[tuple[str, ...]]:
    """Per character: the reading in context first, then the character's most common one (none off Han)."""
    from pypinyin import lazy_pinyin

    readings: list[tuple[str, ...]] = [() for _ in text]
    for run in _HAN_RUN.finditer(text):
        for offset, said in enumerate(lazy_pinyin(run.group(0))):
            char = text[run.start() + offset]
            options = [said] if said.isalpha() else []
            options += [r for r in _char_readings(char)[:1] if r not in options]
            readings[run.start() + offset] = tuple(options[:MAX_READINGS])
    return readings


def _accept(scores: Sequence[float]) -> bool:
    n = len(scores)
    if n == 2:
        return all(s == EXACT for s in scores)
    if n == 3:
        return all(s >= FUZZY for s in scores) and sum(s < EXACT for s in scores) <= 1
    return all(s >= HALF for s in scores) and sum(s < FUZZY for s in scores) <= 1 and sum(scores) / n >= 0.85


@dataclass(frozen=True)
class _Candidate:
    fix: Correction
    syllable_scores: tuple[float, ...]
    shared: int  # characters already right
    rank: int

    @property
    def order(self) -> tuple[float, int, int, int]:
        # Best sound match first, then the longer name, then the one closer in writing, then the more salient.
        return (self.fix.score, self.fix.end - self.fix.start, self.shared, -self.rank)


class TermCorrector:
    """Replaces misheard spans with the vocabulary names they sound like; ``correct`` is the entry point."""

    def __init__(self, names: Iterable[str]) -> None:
        from pypinyin import lazy_pinyin

        self._protected: set[str] = set()
        self._index: dict[tuple[int, int, tuple[str, ...]], list[_Target]] = defaultdict(list)
        self._lengths: set[int] = set()
        for name in names:
            form = spoken_form(name)
            if form is None or form in self._protected:
                continue
            self._protected.add(form)
            if len(form) == 2 and is_common_word(form):
                continue  # 土地, 价格: everyday words, and their homophones are everyday words too
            syllables = tuple(lazy_pinyin(form))
            if len(syllables) != len(form) or not all(s.isalpha() for s in syllables):
                continue
            target = _Target(form, syllables, tuple(fuzzy_key(s) for s in syllables), len(self._protected))
            self._lengths.add(len(form))
            for wildcard in _wildcards(len(form)):
                self._index[(len(form), wildcard, _blank(target.keys, wildcard))].append(target)
        self._protected_lengths = sorted({len(p) for p in self._protected}, reverse=True)

    @property
    def size(self) -> int:
        """How many distinct names the corrector knows (targets and protected forms)."""
        return len(self._protected)

    def corrections(self, text: str) -> list[Correction]:
        """The replacements ``correct`` would make, in text order."""
        if not self._index or not text:
            return []
        protected = self._protected_spans(text)
        readings = _text_readings(text)
        candidates: list[_Candidate] = []
        for start in range(len(text)):
            for length in self._lengths:
                end = start + length
                span = text[start:end]
                if end > len(text) or not _is_han(span) or span in self._protected:
                    continue
                for target, scores in self._matches(readings[start:end]):
                    shared = sum(a == b for a, b in zip(span, target.name, strict=True))
                    fix = Correction(start, end, span, target.name, sum(scores) / length)
                    candidates.append(_Candidate(fix, scores, shared, target.rank))
        chosen: list[Correction] = []
        taken = [False] * len(text)
        for candidate in sorted(candidates, key=lambda c: c.order, reverse=True):
            fix = candidate.fix
            if any(taken[fix.start : fix.end]):
                continue
            if (
                self._breaks_protected(candidate, protected)
                or _lone_half_sound(candidate)
                or _reads_as_words(text, fix)
            ):
                continue
            chosen.append(fix)
            taken[fix.start : fix.end] = [True] * (fix.end - fix.start)
        return sorted(chosen, key=lambda c: c.start)

    def correct(self, text: str) -> str:
        """The text with misheard game names replaced (unchanged when nothing sounds like a name)."""
        out = text
        for fix in reversed(self.corrections(text)):
            out = out[: fix.start] + fix.replacement + out[fix.end :]
        return out

    def _matches(self, readings: list[tuple[str, ...]]) -> list[tuple[_Target, tuple[float, ...]]]:
        length = len(readings)
        if any(not r for r in readings):
            return []
        found: dict[str, tuple[_Target, tuple[float, ...]]] = {}
        for combo in list(product(*readings))[:MAX_COMBINATIONS]:
            keys = tuple(fuzzy_key(s) for s in combo)
            for wildcard in _wildcards(length):
                for target in self._index.get((length, wildcard, _blank(keys, wildcard)), ()):
                    scores = tuple(syllable_similarity(t, h) for t, h in zip(target.syllables, combo, strict=True))
                    best = found.get(target.name)
                    if _accept(scores) and (best is None or sum(scores) > sum(best[1])):
                        found[target.name] = (target, scores)
        return list(found.values())

    def _protected_spans(self, text: str) -> list[tuple[int, int]]:
        spans = []
        for start in range(len(text)):
            for length in self._protected_lengths:
                if text[start : start + length] in self._protected:
                    spans.append((start, start + length))
                    break
        return spans

    @staticmethod
    def _breaks_protected(candidate: _Candidate, protected: list[tuple[int, int]]) -> bool:
        """A correction may complete a correct name (土地描 -> 土地庙) but never cut, change or bend one."""
        fix = candidate.fix
        for start, end in protected:
            if not (start < fix.end and fix.start < end):
                continue
            if not (fix.start <= start and end <= fix.end):
                return True  # it would cut a correct name in two
            if (
                fix.original[start - fix.start : end - fix.start]
                != fix.replacement[start - fix.start : end - fix.start]
            ):
                return True  # 头上的禁箍 keeps its 禁箍
            for i in range(fix.start, fix.end):
                if start <= i < end:
                    continue
                j = i - fix.start
                if candidate.syllable_scores[j] < EXACT:
                    return True  # completing a name needs exact sounds: 天命人升 is not 天命人梗 misheard
                if fix.original[j] != fix.replacement[j] and _is_function_char(fix.original[j]):
                    return True  # 戳棍是 is 戳棍 + 是, not 戳棍势
        return False


def _wildcards(length: int) -> range:
    # -1: every syllable must match (up to a confusable pair); >= 0: that syllable may be half right.
    return range(-1, length) if length >= 4 else range(-1, 0)


def _lone_half_sound(candidate: _Candidate) -> bool:
    """One half-right syllable as the only difference: a different word (发售时片), not a misheard name."""
    fix = candidate.fix
    changed = [j for j, (h, m) in enumerate(zip(fix.original, fix.replacement, strict=True)) if h != m]
    return len(changed) == 1 and candidate.syllable_scores[changed[0]] < FUZZY


def _is_function_char(char: str) -> bool:
    """是, 在, 的, 了...: characters so common on their own that they are words, not parts of a name."""
    return word_frequency(char) >= FUNCTION_CHAR_FREQ


def _reads_as_words(text: str, fix: Correction) -> bool:
    """True when the span reads as ordinary words rather than as a misheard name."""
    if word_frequency(fix.original) >= SPAN_WORD_FREQ:
        return True  # 时候 is not 石猴 misheard
    before = text[fix.start - 1 : fix.start + 1] if fix.start > 0 else ""
    after = text[fix.end - 1 : fix.end + 1] if fix.end < len(text) else ""
    if any(word_frequency(w) >= GLUE_WORD_FREQ for w in (before, after) if len(w) == 2):
        return True  # 入山闭关: the span's edge belongs to a word outside it
    limit = INNER_WORD_FREQ_EXACT if fix.score == EXACT else INNER_WORD_FREQ
    for size in (2, 3, 4):
        for i in range(len(fix.original) - size + 1):
            word = fix.original[i : i + size]
            if word != fix.replacement[i : i + size] and word_frequency(word) >= limit:
                return True  # 实际上是 holds 实际上
    changed = [(h, m) for h, m in zip(fix.original, fix.replacement, strict=True) if h != m]
    if any(h in _NUMERALS and m in _NUMERALS for h, m in changed):
        return True  # 第十回 is not 第四回: numbers are never "corrected"
    # In a two-character span a function word (死在, 是佛) is grammar, not half of a misheard name.
    return len(fix.original) == 2 and any(_is_function_char(h) for h, _ in changed)


def _blank(keys: tuple[str, ...], wildcard: int) -> tuple[str, ...]:
    return keys if wildcard < 0 else (*keys[:wildcard], "*", *keys[wildcard + 1 :])


def _is_han(text: str) -> bool:
    return all("\u4e00" <= c <= "\u9fff" for c in text)
