"""End-of-turn detection for hands-free conversation: live audio in, turn events out.

The microphone streams frames of any size and rate; ``TurnDetector.feed`` turns them into 16 kHz,
runs silero-vad a 32 ms window at a time and reports, in stream order:

- ``SpeechStarted``: ``onset_ms`` of speech in a row. The app uses it for barge-in (the player talks
  over the answer) and to show that it is listening.
- ``PhraseEnded``: a short pause (``phrase_pause_ms``) closed a phrase. Its audio can be recognised
  at once, while the player goes on, so that at the end of the turn only the tail is left.
- ``TurnEnded``: a long pause (``pause_ms``, default 600 ms) ended the player's turn; carries the
  audio not yet handed out as a phrase (often empty) and the turn's total speech length. Speech that
  never pauses is cut at ``max_seconds`` (``TurnEnded`` with ``cut=True``).

The shape follows fastrtc's ``ReplyOnPause`` (speech started, then a pause of some length ends the
turn), with the pause measured window by window instead of per 0.6 s chunk, so the turn ends
``pause_ms`` after the last word rather than up to a chunk later. Noise that the VAD does not take for
speech never opens a turn; a microphone that sends only silence produces no events.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from modules.asr.audio import frame_16k
from modules.asr.vad import VAD_RATE, WINDOW, StreamingVad
from modules.audio_types import AudioClip

WINDOW_MS = 1000 * WINDOW / VAD_RATE  # 32 ms


@dataclass(frozen=True)
class SpeechStarted:
    """The player started speaking, ``at`` seconds into the stream."""

    at: float


@dataclass(frozen=True, eq=False)
class PhraseEnded:
    """A phrase closed by a short pause; ``clip`` is its 16 kHz audio (with a little lead-in)."""

    clip: AudioClip


@dataclass(frozen=True, eq=False)
class TurnEnded:
    """The player's turn ended: ``tail`` is the audio after the last phrase (may be empty)."""

    tail: AudioClip
    speech_seconds: float  # from the first word to the last, the whole turn
    cut: bool = False  # True when the player spoke for max_seconds without a pause


TurnEvent = SpeechStarted | PhraseEnded | TurnEnded


@dataclass
class _Turn:
    started_at: float
    pending: list[np.ndarray] = field(default_factory=list)  # audio not yet handed out as a phrase
    pending_speech: bool = False  # the pending audio holds speech (not only the pause after a phrase)
    silence_ms: float = 0.0
    speech_ms: float = 0.0  # since the turn opened


class TurnDetector:
    """Live audio -> SpeechStarted / PhraseEnded / TurnEnded; one per conversation (it keeps state)."""

    def __init__(
        self,
        pause_ms: float = 600,
        phrase_pause_ms: float = 250,
        onset_ms: float = 96,
        threshold: float = 0.5,
        max_seconds: float = 60,
        lead_in_ms: float = 300,
        vad: StreamingVad | None = None,
    ) -> None:
        if not 0 < phrase_pause_ms <= pause_ms:
            raise ValueError(f"phrase_pause_ms ({phrase_pause_ms}) must be positive and at most pause_ms ({pause_ms})")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"the VAD threshold must be between 0 and 1, got {threshold}")
        if onset_ms <= 0 or max_seconds <= 0:
            raise ValueError("onset_ms and max_seconds must be positive")
        self.pause_ms = pause_ms
        self.phrase_pause_ms = phrase_pause_ms
        self.onset_ms = onset_ms
        self.threshold = threshold
        self.max_seconds = max_seconds
        self.vad = vad or StreamingVad()
        self._lead_in: deque[np.ndarray] = deque(maxlen=max(1, round(lead_in_ms / WINDOW_MS)))
        self._carry = np.zeros(0, np.float32)  # samples short of a whole window
        self._run_ms = 0.0  # speech in a row while no turn is open
        self._turn: _Turn | None = None
        self._seconds = 0.0  # stream time fed so far

    @property
    def in_turn(self) -> bool:
        """The player is speaking (a turn is open and has not ended)."""
        return self._turn is not None

    def feed(self, rate: int, samples: np.ndarray) -> list[TurnEvent]:
        """One frame of microphone audio (any rate, int16 or float); the events it completes, in order."""
        audio = np.concatenate([self._carry, frame_16k(rate, samples)])
        whole = len(audio) // WINDOW * WINDOW
        self._carry = audio[whole:]
        events: list[TurnEvent] = []
        for start in range(0, whole, WINDOW):
            events += self._window(audio[start : start + WINDOW])
        return events

    def reset(self) -> None:
        """Forget everything heard (a new conversation, or after the app spoke over a half-open turn)."""
        self.vad.reset()
        self._lead_in.clear()
        self._carry = np.zeros(0, np.float32)
        self._run_ms = 0.0
        self._turn = None

    def _window(self, window: np.ndarray) -> list[TurnEvent]:
        self._seconds += WINDOW_MS / 1000
        speech = self.vad.probability(window) >= self.threshold
        turn = self._turn
        if turn is None:
            self._lead_in.append(window)
            self._run_ms = self._run_ms + WINDOW_MS if speech else 0.0
            if self._run_ms < self.onset_ms:
                return []
            # Speech began: the turn's audio starts a little before the first window judged speech.
            self._turn = _Turn(self._seconds - self._run_ms / 1000, list(self._lead_in), True)
            self._turn.speech_ms = self._run_ms
            self._lead_in.clear()
            self._run_ms = 0.0
            return [SpeechStarted(self._turn.started_at)]
        turn.pending.append(window)
        if speech:
            turn.silence_ms = 0.0
            turn.pending_speech = True
        else:
            turn.silence_ms += WINDOW_MS
        turn.speech_ms += WINDOW_MS
        events: list[TurnEvent] = []
        if turn.silence_ms >= self.phrase_pause_ms and turn.pending_speech:
            events.append(PhraseEnded(self._take(turn)))
        if turn.silence_ms >= self.pause_ms:
            events.append(self._end(turn, cut=False))
        elif turn.speech_ms >= self.max_seconds * 1000:
            events.append(self._end(turn, cut=True))
        return events

    def _take(self, turn: _Turn) -> AudioClip:
        clip = AudioClip(np.concatenate(turn.pending) if turn.pending else np.zeros(0, np.float32), VAD_RATE)
        turn.pending = []
        turn.pending_speech = False
        return clip

    def _end(self, turn: _Turn, cut: bool) -> TurnEnded:
        tail = self._take(turn) if turn.pending_speech else AudioClip(np.zeros(0, np.float32), VAD_RATE)
        spoken = max(0.0, turn.speech_ms - turn.silence_ms) / 1000
        self._turn = None
        self._run_ms = 0.0
        return TurnEnded(tail, spoken, cut)
