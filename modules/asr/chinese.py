"""Chinese script helpers: recognisers (Whisper above all) often write traditional characters."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache


@cache
def _converter() -> Callable[[str, str], str]:
    try:
        from zhconv import convert
    except ImportError as exc:
        raise ImportError(
            "speech recognition needs zhconv to write simplified Chinese: run `pip install zhconv==1.4.3`"
        ) from exc
    return convert


def to_simplified(text: str) -> str:
    """Traditional characters -> simplified (mainland usage); other text is left as it is."""
    if not text or text.isascii():
        return text
    return _converter()(text, "zh-cn")


def han_count(text: str) -> int:
    """How many CJK unified ideographs the text holds."""
    return sum(1 for c in text if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
