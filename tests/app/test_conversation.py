"""Hands-free conversation: turns end by themselves, the player can cut in, each tab is its own."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from app.conversation import Conversation, Interrupt, Listening, TurnReady
from modules.asr.base import TranscriptSegment
from modules.asr.recognize import SpeechPipeline
from modules.asr.settings import AsrSettings
from modules.audio_types import AudioClip
from tests.conftest import REPO
from tests.modules.asr.test_turns import silence, speech


class Counts:
    """A recogniser that hears each phrase as its length in tenths of a second."""

    name = "counts"

    def segments(self, audio: AudioClip) -> Iterator[TranscriptSegment]:
        yield TranscriptSegment(f"第{round(audio.seconds * 10)}段", 0.0, audio.seconds)


def conversation(**live: object) -> Conversation:
    settings = AsrSettings(conversation=live)
    return Conversation(settings, SpeechPipeline(settings, [], REPO, recognizer=Counts()))


def hear(conv: Conversation, audio: np.ndarray, frame_s: float = 0.1) -> list[tuple[float, object]]:
    """48 kHz int16 frames, as the browser sends them; (stream seconds, action) pairs."""
    pcm = (np.repeat(audio, 3) * 32767).astype(np.int16)
    step = int(48000 * frame_s)
    return [
        ((start + step) / 48000, action)
        for start in range(0, len(pcm), step)
        for action in conv.hear(48000, pcm[start : start + step])
    ]


def test_a_turn_ends_by_itself_and_its_transcript_is_ready():
    conv = conversation()
    actions = hear(conv, np.concatenate([silence(0.4), speech(), silence(1.0)]))
    assert [type(a) for _, a in actions] == [Listening, TurnReady]
    ready = actions[-1][1]
    assert isinstance(ready, TurnReady)
    heard = conv.take(ready.token)
    assert heard.transcript.text.startswith("第") and not heard.cut


def test_talking_over_the_answer_interrupts_it():
    conv = conversation()
    first = hear(conv, np.concatenate([silence(0.3), speech(), silence(1.0)]))
    conv.take(first[-1][1].token)  # type: ignore[union-attr]
    interrupted = conv.answering()
    conv.played(8.0)  # the voice goes on playing for a while
    actions = hear(conv, np.concatenate([silence(0.5), speech("zh_02.wav"), silence(1.0)]))
    assert [type(a) for _, a in actions] == [Listening, Interrupt, TurnReady]
    assert interrupted.is_set()
    onset_at = next(t for t, a in actions if isinstance(a, Interrupt))
    assert onset_at - 0.5 < 0.3, "barge-in within 300 ms of the player starting to speak"
    conv.done()


def test_speaking_when_the_companion_is_silent_is_not_an_interruption():
    conv = conversation()
    conv.answering()
    conv.done()  # the answer was written and its voice (none) has played
    actions = hear(conv, np.concatenate([silence(0.3), speech(), silence(1.0)]))
    assert Interrupt not in [type(a) for _, a in actions]


def test_the_voice_still_playing_counts_as_speaking():
    conv = conversation()
    conv.answering()
    conv.played(5.0)
    conv.done()  # text done, voice still playing
    assert Interrupt in [type(a) for _, a in hear(conv, np.concatenate([silence(0.3), speech()]))]


def test_barge_in_can_be_switched_off():
    conv = conversation(barge_in=False)
    conv.answering()
    conv.played(5.0)
    assert Interrupt not in [type(a) for _, a in hear(conv, np.concatenate([silence(0.3), speech()]))]


def test_two_tabs_are_two_conversations():
    one, two = conversation(), conversation()
    hear(one, np.concatenate([silence(0.3), speech()]))  # one is mid-turn
    actions = hear(two, np.concatenate([silence(0.3), speech("zh_02.wav"), silence(1.0)]))
    assert [type(a) for _, a in actions] == [Listening, TurnReady]
    assert one.detector.in_turn and not two.detector.in_turn


def test_a_closed_conversation_hears_nothing_and_leaves_nothing_running():
    conv = conversation()
    hear(conv, np.concatenate([silence(0.3), speech()]))
    conv.close()
    assert hear(conv, np.concatenate([speech(), silence(1.0)])) == []
    time.sleep(0.2)
    import threading

    assert not [t for t in threading.enumerate() if t.name.startswith("asr-live") and t.is_alive()]
