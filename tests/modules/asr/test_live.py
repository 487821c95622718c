"""Recognition while the player speaks: phrases in order, the tail last, nothing waited for twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from modules.asr.base import TranscriptSegment
from modules.asr.live import LiveTranscriber
from modules.asr.recognize import NoSpeechError, SpeechPipeline
from modules.asr.settings import AsrSettings
from modules.audio_types import AudioClip
from tests.conftest import REPO


class Slow:
    """A recogniser that takes 0.2 s per phrase and hears each phrase as its length."""

    name = "slow"

    def __init__(self) -> None:
        self.calls: list[float] = []

    def segments(self, audio: AudioClip) -> Iterator[TranscriptSegment]:
        self.calls.append(time.perf_counter())
        time.sleep(0.2)
        if audio.seconds >= 0.5:
            yield TranscriptSegment(f"黑熊金{audio.seconds:.1f}秒", 0.0, audio.seconds)


def clip(seconds: float) -> AudioClip:
    return AudioClip(np.zeros(int(16000 * seconds), np.float32), 16000)


def pipeline(recognizer: Slow) -> SpeechPipeline:
    ears = SpeechPipeline(AsrSettings(), ["黑熊精"], REPO, recognizer=recognizer)
    ears.corrector()  # built once per app (warm_up); not part of a turn's cost
    return ears


def test_phrases_are_recognised_while_the_turn_goes_on_and_joined_in_order():
    slow = Slow()
    live = LiveTranscriber(pipeline(slow))
    try:
        live.add(clip(1.0))
        live.add(clip(2.0))
        time.sleep(0.6)  # the player is still talking
        turn_over = time.perf_counter()
        heard = live.finish(clip(0.0), 3.0).result(timeout=10)
    finally:
        live.close()
    assert len(slow.calls) == 2 and max(slow.calls) < turn_over, "both phrases were recognised during the turn"
    assert heard.raw_text == "黑熊金1.0秒黑熊金2.0秒" and heard.text == "黑熊精1.0秒黑熊精2.0秒"  # corrected
    assert heard.audio_seconds == 3.0 and heard.backend == "slow"


def test_the_tail_is_recognised_at_the_end():
    live = LiveTranscriber(pipeline(Slow()))
    assert live.finish(clip(0.8), 0.8).result(timeout=5).raw_text == "黑熊金0.8秒"


def test_nothing_said_is_no_speech():
    live = LiveTranscriber(pipeline(Slow()))
    live.add(clip(0.3))  # heard as nothing
    with pytest.raises(NoSpeechError):
        live.finish(clip(0.05), 0.35).result(timeout=5)  # a tail too short to be a word is not even tried


def test_close_drops_what_is_queued():
    slow = Slow()
    live = LiveTranscriber(pipeline(slow))
    for _ in range(5):
        live.add(clip(1.0))
    live.close()
    time.sleep(0.5)
    assert len(slow.calls) <= 1
    assert not [t for t in threading.enumerate() if t.name.startswith("asr-live") and t.is_alive()]
