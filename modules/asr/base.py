"""The speech-recognition seam."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from modules.audio_types import AudioClip

if TYPE_CHECKING:
    from modules.asr.audio import AudioSource


@dataclass(frozen=True)
class TranscriptSegment:
    """A piece of recognised speech, as soon as the recogniser has it."""

    text: str
    start: float  # seconds from the start of the clip
    end: float
    language: str | None = None  # what the recogniser heard ("zh", "en"), when it knows


@dataclass(frozen=True)
class Transcript:
    """What was heard: ``raw_text`` from the recogniser, ``text`` after game-term correction."""

    text: str
    raw_text: str
    language: str | None = None
    audio_seconds: float = 0.0  # how long the recording was (after loading, before trimming)
    backend: str = ""  # which recogniser heard it


class RecognitionError(RuntimeError):
    """A recogniser that failed while running (not bad audio: that is ``AudioError``)."""


@runtime_checkable
class SpeechRecognizer(Protocol):
    """Any ASR backend: yields segments; the full transcript is the segments joined."""

    name: str

    def segments(self, audio: AudioClip) -> Iterator[TranscriptSegment]: ...


@runtime_checkable
class Transcriber(Protocol):
    """What the companion hears through: a recording in, the corrected transcript out.

    Bad audio (silence, noise, corrupt, too long) raises ``AudioError`` with a message for the player.
    ``modules.asr.recognize.SpeechPipeline`` is the one the app builds (VAD, a recogniser, game-term correction).
    """

    def transcribe(self, source: AudioSource) -> Transcript: ...

    def recognize_phrase(self, clip: AudioClip) -> list[TranscriptSegment]:
        """Raw segments of one phrase a live turn detector cut (hands-free mode)."""
        ...

    def transcript(self, raw: Sequence[TranscriptSegment], seconds: float) -> Transcript:
        """Phrases recognised one by one, joined and corrected into one Transcript."""
        ...

    def warm_up(self) -> None:
        """Load the models now rather than on the first question."""
        ...
