"""The speech-synthesis seam."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from modules.audio_types import AudioClip


@runtime_checkable
class SpeechSynthesizer(Protocol):
    """Any TTS backend: one sentence in, audio chunks out as soon as each is ready."""

    name: str

    def stream_tts(self, text: str) -> Iterator[AudioClip]: ...
