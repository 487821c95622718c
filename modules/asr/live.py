"""Recognition while the player speaks: each phrase the turn detector closes is recognised at once.

``LiveTranscriber`` takes the phrases of one turn (``add``) and recognises them in order on a worker
thread while the player is still talking; ``finish`` adds the tail, waits for what is left and joins
the phrases into one corrected Transcript. At the end of a turn only the last phrase is left to
recognise, so the answer can start soon after the player stops.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from modules.asr.base import Transcript, TranscriptSegment
from modules.audio_types import AudioClip

MIN_PHRASE_S = 0.15  # shorter pieces are clicks or breath, never words


class PhraseRecognizer(Protocol):
    """What live recognition needs (``modules.asr.recognize.SpeechPipeline`` has both)."""

    def recognize_phrase(self, clip: AudioClip) -> list[TranscriptSegment]: ...

    def transcript(self, raw: Sequence[TranscriptSegment], seconds: float) -> Transcript: ...


class LiveTranscriber:
    """One turn's phrases recognised in order while the turn goes on; one per conversation."""

    def __init__(self, recognizer: PhraseRecognizer) -> None:
        self.recognizer = recognizer
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr-live")
        self._phrases: list[Future[list[TranscriptSegment]]] = []
        self._lock = threading.Lock()

    def add(self, clip: AudioClip) -> None:
        """A phrase that just closed: recognition starts now, behind the phrases before it."""
        if clip.seconds >= MIN_PHRASE_S:
            with self._lock:
                self._phrases.append(self._pool.submit(self.recognizer.recognize_phrase, clip))

    def finish(self, tail: AudioClip, seconds: float) -> Future[Transcript]:
        """The turn is over: the whole transcript, once the tail and any phrase still in hand are done.

        Returns at once; the future raises NoSpeechError when nothing was said, or the recogniser's error.
        """
        self.add(tail)
        with self._lock:
            phrases, self._phrases = self._phrases, []
        return self._pool.submit(self._join, phrases, seconds)

    def _join(self, phrases: list[Future[list[TranscriptSegment]]], seconds: float) -> Transcript:
        raw = [segment for phrase in phrases for segment in phrase.result()]
        return self.recognizer.transcript(raw, seconds)

    def discard(self) -> None:
        """Drop the phrases of a turn in progress (recognition already running finishes unheard)."""
        with self._lock:
            phrases, self._phrases = self._phrases, []
        for phrase in phrases:
            phrase.cancel()

    def close(self) -> None:
        """Stop: nothing queued is recognised; the worker ends after the phrase in hand."""
        self.discard()
        self._pool.shutdown(wait=False, cancel_futures=True)
