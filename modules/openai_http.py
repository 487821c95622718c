"""What every client of an OpenAI-compatible server (chat, transcription, speech, images) reads the same way."""

from __future__ import annotations

import json

EXCERPT_CHARS = 300


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The text on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def error_text(body: bytes) -> str:
    """The useful part of an error body: the message of an OpenAI-style error object, else the raw text."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        return excerpt(text) or "(empty body)"
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            value = data.get(key)
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return excerpt(value["message"])
            if isinstance(value, str):
                return excerpt(value)
    return excerpt(text)
