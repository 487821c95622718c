"""Recognition error rates, measured the way ``testdata/speech/README.md`` describes.

Chinese (CER): both sides simplified, lower-cased and NFKC-normalised; Arabic digits read out one by one
(2024 -> 二零二四); punctuation and spaces dropped; each Han character is one unit and each run of Latin
letters (``boss``) is one unit. English (WER): words after lower-casing and dropping punctuation.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from modules.asr.chinese import to_simplified

_DIGITS = str.maketrans("0123456789", "零一二三四五六七八九")
_LATIN_RUN = re.compile(r"[a-z]+")
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class ErrorRate:
    """Edit distance over reference length; ``rate`` is 0.0 for an empty reference and empty hypothesis."""

    errors: int
    ref_units: int

    @property
    def rate(self) -> float:
        if self.ref_units == 0:
            return 0.0 if self.errors == 0 else 1.0
        return self.errors / self.ref_units


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two unit sequences (substitutions, insertions, deletions all cost 1)."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def cer_units(text: str) -> list[str]:
    """The units Chinese CER counts: Han characters (and other symbols) one each, Latin letter runs one each."""
    text = unicodedata.normalize("NFKC", to_simplified(text)).lower().translate(_DIGITS)
    units: list[str] = []
    pos = 0
    while pos < len(text):
        run = _LATIN_RUN.match(text, pos)
        if run:
            units.append(run.group(0))
            pos = run.end()
            continue
        char = text[pos]
        # Punctuation (P*), symbols (S*) and separators (Z*) carry no speech.
        if not char.isspace() and unicodedata.category(char)[0] not in "PSZ":
            units.append(char)
        pos += 1
    return units


def cer(reference: str, hypothesis: str) -> ErrorRate:
    """Character error rate of a Chinese hypothesis."""
    ref = cer_units(reference)
    return ErrorRate(edit_distance(ref, cer_units(hypothesis)), len(ref))


def wer_words(text: str) -> list[str]:
    """The words English WER counts: lower-cased, punctuation removed."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower().replace("’", "'"))


def wer(reference: str, hypothesis: str) -> ErrorRate:
    """Word error rate of an English hypothesis."""
    ref = wer_words(reference)
    return ErrorRate(edit_distance(ref, wer_words(hypothesis)), len(ref))


def mean_rate(rates: Sequence[ErrorRate]) -> float:
    """The mean of per-clip rates (each clip weighs the same, as in the baseline notes)."""
    return sum(r.rate for r in rates) / len(rates) if rates else 0.0
