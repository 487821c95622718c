"""End-of-turn detection on synthetic conversations built from the spoken fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from modules.asr.audio import load_audio
from modules.asr.turns import PhraseEnded, SpeechStarted, TurnDetector, TurnEnded
from tests.conftest import SPEECH

RATE = 16000


def speech(name: str = "zh_01.wav") -> np.ndarray:
    return load_audio(SPEECH / name, 60).samples


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), np.float32)


def noise(seconds: float, level: float = 0.02) -> np.ndarray:
    return (np.random.default_rng(7).normal(0, level, int(RATE * seconds))).astype(np.float32)


def run(
    detector: TurnDetector, audio: np.ndarray, frame_s: float = 0.1, rate: int = RATE
) -> list[tuple[float, object]]:
    """Feed the audio in microphone-sized frames; (stream seconds at the end of the frame, event) pairs."""
    if rate != RATE:  # the browser's 48 kHz int16, as gradio hands it over
        audio = (np.repeat(audio, rate // RATE) * 32767).astype(np.int16)
    step = int(rate * frame_s)
    out = []
    for start in range(0, len(audio), step):
        out += [((start + step) / rate, e) for e in detector.feed(rate, audio[start : start + step])]
    return out


def kinds(events: list[tuple[float, object]]) -> list[str]:
    return [type(e).__name__ for _, e in events]


def test_speech_then_a_pause_is_one_turn():
    audio = np.concatenate([silence(0.5), speech(), silence(1.0)])
    events = run(TurnDetector(), audio)
    assert kinds(events)[0] == "SpeechStarted" and kinds(events)[-1] == "TurnEnded"
    assert kinds(events).count("TurnEnded") == 1
    started = events[0][1]
    assert isinstance(started, SpeechStarted) and 0.4 < started.at < 0.8
    ended_at, ended = events[-1]
    assert isinstance(ended, TurnEnded) and not ended.cut
    speech_end = 0.5 + len(speech()) / RATE
    # The turn ends pause_ms after the last word (plus at most a frame), not later.
    assert speech_end + 0.5 < ended_at < speech_end + 0.6 + 0.35
    assert 1.0 < ended.speech_seconds < 2.6


def test_a_short_pause_closes_a_phrase_but_not_the_turn():
    audio = np.concatenate([silence(0.3), speech("zh_01.wav"), silence(0.35), speech("zh_02.wav"), silence(1.0)])
    events = run(TurnDetector(pause_ms=600, phrase_pause_ms=250), audio)
    assert kinds(events).count("TurnEnded") == 1 and kinds(events).count("SpeechStarted") == 1
    phrases = [e for _, e in events if isinstance(e, PhraseEnded)]
    assert len(phrases) >= 2, "the first question is handed out while the second is spoken"
    first_phrase_at = next(t for t, e in events if isinstance(e, PhraseEnded))
    assert first_phrase_at < 0.3 + len(speech("zh_01.wav")) / RATE + 0.35 + 0.5
    heard = sum(p.clip.seconds for p in phrases)
    assert heard > (len(speech("zh_01.wav")) + len(speech("zh_02.wav"))) / RATE * 0.9  # no speech is lost


def test_speech_silence_speech_is_two_turns():
    audio = np.concatenate([silence(0.3), speech(), silence(1.2), speech("zh_03.wav"), silence(1.0)])
    assert kinds(run(TurnDetector(), audio)).count("TurnEnded") == 2


def test_browser_frames_at_48k_int16_work_the_same():
    audio = np.concatenate([silence(0.5), speech(), silence(1.0)])
    assert kinds(run(TurnDetector(), audio, rate=48000)) == kinds(run(TurnDetector(), audio))


def test_silence_and_noise_never_open_a_turn():
    detector = TurnDetector()
    assert run(detector, silence(3.0)) == []
    assert run(detector, noise(3.0)) == []
    assert not detector.in_turn


def test_speech_that_never_pauses_is_cut_at_max_seconds():
    talk = np.concatenate([speech("zh_01.wav"), speech("zh_02.wav"), speech("zh_03.wav")] * 2)
    events = run(TurnDetector(max_seconds=4.0, pause_ms=2000, phrase_pause_ms=2000), np.concatenate([talk, talk]))
    cuts = [e for _, e in events if isinstance(e, TurnEnded) and e.cut]
    assert cuts, "a turn is cut when the player never pauses"
    assert cuts[0].tail.seconds <= 4.5


def test_odd_frame_sizes_and_empty_frames():
    audio = np.concatenate([silence(0.5), speech(), silence(1.0)])
    detector = TurnDetector()
    assert detector.feed(RATE, np.zeros(0, np.float32)) == []
    assert kinds(run(detector, audio, frame_s=0.037))[-1] == "TurnEnded"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"phrase_pause_ms": 700, "pause_ms": 600}, "phrase_pause_ms"), ({"threshold": 1.5}, "threshold")],
)
def test_bad_settings_are_named(kwargs: dict, message: str):
    with pytest.raises(ValueError, match=message):
        TurnDetector(**kwargs)
