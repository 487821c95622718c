"""JSON Lines, read the one way the project reads them: blank lines skipped, a bad line named by number."""

from __future__ import annotations

import json
from collections.abc import Iterator


class JsonlError(ValueError):
    """A line that is not a JSON object; ``line`` is its number from 1, ``reason`` what is wrong."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line} is {reason}")
        self.line = line
        self.reason = reason


def json_objects(text: str) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, object) for every non-blank line of a JSONL text."""
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JsonlError(n, f"not JSON ({exc.msg})") from None
        if not isinstance(item, dict):
            raise JsonlError(n, "not a JSON object")
        yield n, item
