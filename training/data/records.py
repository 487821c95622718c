"""xtuner's conversation format, written and read back: one ``{"conversation": [turn, …]}`` object per JSONL line.

A turn is ``{"system": …, "input": …, "output": …}``; incremental-pretraining records are a single turn with an
empty input, so the loss covers the whole text. Files are written to a temporary name and renamed into place:
an interrupted run never leaves a half-written file that a later stage would mistake for a finished one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from modules.jsonl import JsonlError, json_objects


class DataFormatError(ValueError):
    """A data file that is not in the expected format; the message names the file and line."""


@dataclass(frozen=True)
class Turn:
    """One exchange of a training conversation."""

    input: str
    output: str
    system: str = ""

    def to_dict(self) -> dict[str, str]:
        turn = {"input": self.input, "output": self.output}
        return {"system": self.system, **turn} if self.system else turn


@dataclass(frozen=True)
class Conversation:
    """One training example: xtuner trains on every turn's output."""

    turns: tuple[Turn, ...]

    def to_dict(self) -> dict[str, list[dict[str, str]]]:
        return {"conversation": [t.to_dict() for t in self.turns]}


def pretrain_record(text: str) -> Conversation:
    """Raw text for incremental pretraining: no prompt, all of it is learned."""
    return Conversation((Turn("", text),))


def sft_record(question: str, answer: str, system: str = "") -> Conversation:
    """A single-turn instruction example."""
    return Conversation((Turn(question, answer, system),))


def write_jsonl(path: Path, rows: Iterable[Mapping[str, object]]) -> int:
    """Write rows as UTF-8 JSON lines atomically; returns how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def write_conversations(path: Path, conversations: Iterable[Conversation]) -> int:
    """Write conversations in xtuner's format; returns how many were written."""
    return write_jsonl(path, (c.to_dict() for c in conversations))


def read_conversations(path: Path) -> list[Conversation]:
    """Conversations from an xtuner-format JSONL file; a malformed line is an error naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError(f"data file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: not valid UTF-8 ({exc.reason})") from None
    out = []
    try:
        rows = list(json_objects(text))
    except JsonlError as exc:
        raise DataFormatError(f"{path}:{exc.line}: {exc.reason}") from None
    for n, row in rows:
        turns = row.get("conversation")
        if not isinstance(turns, list) or not turns:
            raise DataFormatError(f'{path}:{n}: expected {{"conversation": [{{"input": …, "output": …}}, …]}}')
        parsed = []
        for turn in turns:
            if not isinstance(turn, dict) or not isinstance(turn.get("output"), str):
                raise DataFormatError(f"{path}:{n}: every turn needs a string 'output'")
            if not isinstance(turn.get("input", ""), str) or not isinstance(turn.get("system", ""), str):
                raise DataFormatError(f"{path}:{n}: 'input' and 'system' must be strings")
            parsed.append(Turn(turn.get("input", ""), turn["output"], turn.get("system", "")))
        out.append(Conversation(tuple(parsed)))
    return out
