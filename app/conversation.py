"""Hands-free conversation: the microphone stays open, turns end by themselves, the player can cut in.

One ``Conversation`` per browser tab. The UI hands it microphone frames (``hear``) and gets back what
to do, as small typed actions:

    frames -> TurnDetector (silero-vad, window by window)
        SpeechStarted -> Listening; and Interrupt when the answer is still being written or spoken
        PhraseEnded   -> the phrase is recognised now, while the player goes on (LiveTranscriber)
        TurnEnded     -> TurnReady(token): the transcript comes from ``take(token)`` once the tail is heard

The turn itself runs as any other (``Companion.turn`` with the transcript), in its own UI event, so
the microphone keeps listening meanwhile. The conversation knows when the companion is answering
(``answering``) and how long its voice will go on playing (``played``), which is what barge-in needs.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from modules.asr.base import Transcript
from modules.asr.live import LiveTranscriber, PhraseRecognizer
from modules.asr.settings import AsrSettings
from modules.asr.turns import PhraseEnded, SpeechStarted, TurnDetector, TurnEnded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listening:
    """The player started talking."""


@dataclass(frozen=True)
class Interrupt:
    """The player cut in: stop the answer being written and the voice being played."""


@dataclass(frozen=True)
class TurnReady:
    """The player's turn ended; ``take(token)`` gives what was heard."""

    token: str


@dataclass(frozen=True)
class HeardTurn:
    """A finished turn: the transcript, and whether the player was cut off at asr.max_seconds."""

    transcript: Transcript
    cut: bool


Action = Listening | Interrupt | TurnReady

_tokens = itertools.count(1)


class Conversation:
    """One tab's hands-free conversation (see the module docstring); thread-safe."""

    def __init__(
        self, settings: AsrSettings, recognizer: PhraseRecognizer, detector: TurnDetector | None = None
    ) -> None:
        live = settings.conversation
        self.settings = settings
        self.detector = detector or TurnDetector(
            pause_ms=live.pause_ms,
            phrase_pause_ms=live.phrase_pause_ms,
            onset_ms=live.onset_ms,
            threshold=settings.vad_threshold,
            max_seconds=settings.max_seconds,
        )
        self.transcriber = LiveTranscriber(recognizer)
        self._turns: dict[str, tuple[Future[Transcript], bool]] = {}
        self._lock = threading.Lock()
        self._answering = 0  # turns being answered now
        self._voice_until = 0.0  # time.monotonic() at which the voice sent so far ends playing
        self._cancel: threading.Event | None = None
        self.closed = False

    # -- the microphone ---------------------------------------------------------------------------

    def hear(self, rate: int, samples: np.ndarray) -> list[Action]:
        """One microphone frame; what the UI should do about it, in order."""
        actions: list[Action] = []
        with self._lock:
            if self.closed:
                return actions
            for event in self.detector.feed(rate, samples):
                if isinstance(event, SpeechStarted):
                    actions.append(Listening())
                    if self.settings.conversation.barge_in and self._speaking():
                        actions.append(Interrupt())
                        self._interrupt()
                elif isinstance(event, PhraseEnded):
                    self.transcriber.add(event.clip)
                elif isinstance(event, TurnEnded):
                    token = f"turn-{next(_tokens)}"
                    self._turns[token] = (self.transcriber.finish(event.tail, event.speech_seconds), event.cut)
                    actions.append(TurnReady(token))
        return actions

    def take(self, token: str, timeout: float = 60.0) -> HeardTurn:
        """A finished turn (waits for the tail's recognition); raises what recognition raised.

        KeyError for a token this conversation never gave (or already took).
        """
        with self._lock:
            future, cut = self._turns.pop(token)
        return HeardTurn(future.result(timeout=timeout), cut)

    # -- the companion's side ---------------------------------------------------------------------

    def answering(self) -> threading.Event:
        """Call when a turn's answer starts; the event is set when the player cuts in. Pair with ``done``."""
        with self._lock:
            self._answering += 1
            self._cancel = threading.Event()
            return self._cancel

    def played(self, seconds: float) -> None:
        """The UI sent ``seconds`` more of the voice; it plays after what was sent before."""
        with self._lock:
            self._voice_until = max(self._voice_until, time.monotonic()) + seconds

    def done(self) -> None:
        """The answer is written (its voice may still be playing)."""
        with self._lock:
            self._answering = max(0, self._answering - 1)

    def _speaking(self) -> bool:
        return self._answering > 0 or time.monotonic() < self._voice_until

    def _interrupt(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
        self._voice_until = 0.0

    def close(self) -> None:
        """The tab went away: stop everything this conversation started."""
        with self._lock:
            self.closed = True
            self._interrupt()
            for future, _ in self._turns.values():
                future.cancel()
            self._turns.clear()
        self.transcriber.close()
