"""The speech-synthesis seam."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from modules.audio_types import AudioClip


class SpeechSynthesisError(RuntimeError):
    """A synthesizer failed on a sentence; the message names the backend and what to do."""


@runtime_checkable
class SpeechSynthesizer(Protocol):
    """Any TTS backend: one sentence in, audio chunks out as soon as each is ready.

    Every chunk of one synthesizer has the same ``sample_rate``. Closing the iterator early
    must stop the work for that sentence.
    """

    name: str
    sample_rate: int

    def stream_tts(self, text: str) -> Iterator[AudioClip]: ...
