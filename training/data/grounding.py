"""Is an answer supported by the passages it cites? The filter that keeps generated QA data accurate.

Rules, per answer sentence: every ``[n]`` must name one of the sources; the sentence's content words (jieba
tokens without stopwords, the same tokens retrieval uses) must mostly appear in the text of the passages it cites
— a sentence without its own citation is checked against every passage the answer cites. An answer that cites
nothing is not grounded. Words are looked up as substrings of the normalised passage text, so 黑熊精 is found
inside 黑熊精的 and an English word inside a longer phrase.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from modules.rag.text import Tokenizer, normalize, split_sentences

_CITATION = re.compile(r"\[(\d+(?:\s*[,，、]\s*\d+)*)\]")
_CITATIONS_AFTER_END = re.compile(r"([。！？；!?…])\s*((?:\[\d+(?:\s*[,，、]\s*\d+)*\]\s*)+)")
# The extractive answerer's lead-in when it answers an English question from Chinese passages: not a claim.
_ENGLISH_LEAD = re.compile(r"^From the knowledge base \(in Chinese\):\s*")


@dataclass(frozen=True)
class SentenceCheck:
    """One answer sentence: what it cites, how much of it the cited passages cover, what they lack."""

    sentence: str
    citations: tuple[int, ...]
    coverage: float
    missing: tuple[str, ...]
    supported: bool


@dataclass(frozen=True)
class GroundingReport:
    """The verdict on one answer; ``reasons`` says why it is not grounded."""

    grounded: bool
    reasons: tuple[str, ...]
    sentences: tuple[SentenceCheck, ...]

    @property
    def coverage(self) -> float:
        """The lowest sentence coverage (1.0 for an answer with no content words)."""
        return min((s.coverage for s in self.sentences), default=1.0)


def citations_in(text: str) -> tuple[int, ...]:
    """The passage numbers a text cites, in order, each once: "[1][2]" and "[1, 3]" both count."""
    seen: dict[int, None] = {}
    for group in _CITATION.findall(text):
        for number in re.split(r"\s*[,，、]\s*", group):
            seen[int(number)] = None
    return tuple(seen)


def answer_sentences(answer: str) -> list[str]:
    """The answer's sentences, each keeping the citations written right after its end mark (黑风山。[1])."""
    text = _ENGLISH_LEAD.sub("", answer.strip())
    text = _CITATIONS_AFTER_END.sub(lambda m: m.group(2).strip() + m.group(1), text)
    return split_sentences(text)


class GroundingChecker:
    """Checks answers against their cited passages; one instance tokenises with one jieba dictionary."""

    def __init__(
        self,
        min_coverage: float = 0.8,
        tokenize: Callable[[str], list[str]] | None = None,
    ) -> None:
        """``min_coverage``: share of a sentence's content words its passages must contain."""
        if not 0 < min_coverage <= 1:
            raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
        self.min_coverage = min_coverage
        self.tokenize = tokenize or Tokenizer().tokens

    def check(self, answer: str, sources: Sequence[str]) -> GroundingReport:
        """The verdict on ``answer``; ``sources[n - 1]`` is the text of the passage cited as ``[n]``."""
        if not answer.strip():
            return GroundingReport(False, ("empty answer",), ())
        cited = citations_in(answer)
        if not cited:
            return GroundingReport(False, ("cites no passage",), ())
        bad = [n for n in cited if not 1 <= n <= len(sources)]
        if bad:
            listed = ", ".join(f"[{n}]" for n in bad)
            return GroundingReport(False, (f"cites {listed} but there are {len(sources)} sources",), ())
        texts = [normalize(s) for s in sources]
        checks = []
        for sentence in answer_sentences(answer):
            own = citations_in(sentence)
            passages = " ".join(texts[n - 1] for n in (own or cited))
            checks.append(self._check_sentence(sentence, own, passages))
        reasons = tuple(
            f"sentence {s.sentence!r} is {s.coverage:.0%} covered by [{', '.join(map(str, s.citations or cited))}]"
            f" (needs {self.min_coverage:.0%}); missing: {', '.join(s.missing)}"
            for s in checks
            if not s.supported
        )
        return GroundingReport(not reasons, reasons, tuple(checks))

    def _check_sentence(self, sentence: str, citations: tuple[int, ...], passages: str) -> SentenceCheck:
        words = self.tokenize(_CITATION.sub(" ", sentence))
        if not words:
            return SentenceCheck(sentence, citations, 1.0, (), True)
        missing = [w for w in words if normalize(w) not in passages]
        coverage = 1 - len(missing) / len(words)
        supported = coverage >= self.min_coverage
        return SentenceCheck(sentence, citations, coverage, tuple(dict.fromkeys(missing)), supported)
