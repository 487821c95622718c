"""Answer-quality evaluation: JSONL sets of {q, keys}, scored the same way for every backend.

An answer is *correct* when it contains any key (case-insensitive); retrieval *hits* when any
retrieved passage does. Questions with ``"category": "none"`` must be declined: their key is the
refusal itself. Each set also reports how often answerable questions were answered at all (not
refused), how often unanswerable ones were declined, and the English questions on their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.events import Answer
from llm.extractive import NOTHING_RELEVANT_EN, NOTHING_RELEVANT_ZH
from modules.config_layers import ConfigError
from modules.jsonl import JsonlError, json_objects
from modules.rag.text import mostly_english

# What a refusal says: the extractive answerer's words, and what a model is told to say.
REFUSALS = (NOTHING_RELEVANT_ZH[:8], NOTHING_RELEVANT_EN[:24], "知识库里没有", "could not find")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def load_eval_file(path: Path) -> list[dict[str, Any]]:
    """Lines of {"q": question, "keys": [accepted strings]}; a bad line is an error naming it."""

    if not path.is_file():
        raise ConfigError(f"eval file not found: {path}")
    items = []
    try:
        for n, item in json_objects(path.read_text("utf-8")):
            if not isinstance(item.get("q"), str) or not isinstance(item.get("keys"), list):
                raise ConfigError(f'{path}:{n}: expected {{"q": str, "keys": [str, ...]}}')
            items.append(item)
    except JsonlError as exc:
        raise ConfigError(f"{path}:{exc.line}: {exc.reason}") from None
    return items


def is_refusal(answer: str) -> bool:
    return any(r.lower() in answer.lower() for r in REFUSALS)


@dataclass
class SetResult:
    """One evaluation set's scores, and every question's outcome."""

    name: str
    results: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        res = self.results
        answerable = [r for r in res if r["category"] != "none"]
        unanswerable = [r for r in res if r["category"] == "none"]
        english = [r for r in res if r["english"]]
        latencies = [float(r["latency_ms"]) for r in res]

        def share(rows: list[dict[str, Any]], key: str) -> float | None:
            return round(sum(bool(r[key]) for r in rows) / len(rows), 4) if rows else None

        return {
            "set": self.name,
            "n": len(res),
            "accuracy": share(res, "correct") or 0.0,
            "retrieval_hit": share(answerable, "retrieval_hit") or 0.0,
            "answered": share(answerable, "answered"),  # answerable questions not refused
            "declined": None if not unanswerable else round(1 - (share(unanswerable, "answered") or 0.0), 4),
            "english_n": len(english),
            "english_accuracy": share(english, "correct"),
            "p50_ms": round(percentile(latencies, 50), 2),
            "p95_ms": round(percentile(latencies, 95), 2),
        }


def evaluate(ask: Callable[[str], Answer], items: Sequence[dict[str, Any]], name: str = "") -> SetResult:
    """Ask every question (``ask`` returns an app.knowledge_chat.Answer) and score the answers."""
    out = SetResult(name)
    for item in items:
        answer = ask(str(item["q"]))
        text = answer.answer
        sources = answer.sources
        keys = [str(k).lower() for k in item["keys"]]
        low = text.lower()
        out.results.append(
            {
                "q": item["q"],
                "keys": item["keys"],
                "category": item.get("category", ""),
                "english": mostly_english(str(item["q"])),
                "answer": text,
                "correct": any(k in low for k in keys),
                "answered": not is_refusal(text),
                "retrieval_hit": any(k in s.text.lower() for s in sources for k in keys),
                "latency_ms": round(answer.latency_ms, 2),
                "sources": [s.title for s in sources],
            }
        )
    return out


def format_table(summaries: Sequence[dict[str, Any]], top_k: int) -> str:
    """One row per set: the numbers bench/README.md quotes."""

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{float(v):.1%}"

    head = f"{'set':<20}{'n':>5}{'accuracy':>10}{'hit@' + str(top_k):>8}{'answered':>10}{'declined':>10}"
    head += f"{'english':>14}{'p50 ms':>9}"
    lines = [head]
    for s in summaries:
        en = f"{pct(s['english_accuracy'])} ({s['english_n']})" if s["english_n"] else "-"
        lines.append(
            f"{str(s['set'])[:19]:<20}{s['n']:>5}{pct(s['accuracy']):>10}{pct(s['retrieval_hit']):>8}"
            f"{pct(s['answered']):>10}{pct(s['declined']):>10}{en:>14}{float(s['p50_ms']):>9.1f}"
        )
    return "\n".join(lines)
