"""A whole turn with the companion: heard, routed, answered aloud, or drawn — and every failure a message."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from app.companion import Companion
from app.events import Answer, DrawingStep, Drawn, Heard, Notice, Routed, SpeechChunk, TextDelta
from app.knowledge_chat import KnowledgeChat
from llm.base import ChatTurn
from llm.grounded import GroundedAnswerer
from modules.asr.base import TranscriptSegment
from modules.asr.hotwords import game_vocabulary
from modules.asr.recognize import SpeechPipeline
from modules.audio_types import AudioClip
from tests.conftest import REPO, make_settings
from tests.llm.scripted import ScriptedModel
from tests.modules.image.tiny_sd import build_tiny_sd

SPEECH = REPO.parent / "shared" / "testdata" / "speech"


class HeardAs:
    """A recogniser that hears a fixed (misrecognised) sentence: the pipeline around it is the real one."""

    name = "heard-as"

    def __init__(self, text: str) -> None:
        self.text = text

    def segments(self, audio: AudioClip) -> Iterator[TranscriptSegment]:
        yield TranscriptSegment(self.text, 0.0, audio.seconds)


class BrokenVoice:
    name = "broken"
    sample_rate = 16000

    def stream_tts(self, text: str) -> Iterator[AudioClip]:
        raise RuntimeError("the voice model ran out of memory")
        yield  # pragma: no cover


def events_of(companion: Companion, **kwargs: object) -> list[object]:
    return list(companion.turn(**kwargs))  # type: ignore[arg-type]


@pytest.fixture
def companion(kb_dir: Path, tmp_path: Path) -> Companion:
    return Companion(make_settings(kb_dir, tmp_path / "data", "tts.backend=espeak", "image.model="))


def test_a_typed_question_is_routed_to_chat_and_answered(companion: Companion):
    events = events_of(companion, text="红孩儿的父亲是谁？", speak=False)
    assert isinstance(events[0], Routed) and events[0].intent == "chat"
    answer = events[-1]
    assert isinstance(answer, Answer) and "牛魔王" in answer.answer and answer.intent == "chat"
    assert not [e for e in events if isinstance(e, SpeechChunk)]


class SlowModel(ScriptedModel):
    """A chat model that writes one piece every 0.3 s, as a CPU model does."""

    def stream_chat(self, messages: Sequence[ChatTurn], max_tokens: int, temperature: float) -> Iterator[str]:
        for piece in super().stream_chat(messages, max_tokens, temperature):
            time.sleep(0.3)
            yield piece


def test_voice_replies_speak_the_answer_sentence_by_sentence(kb_dir: Path, tmp_path: Path):
    pieces = ["红孩儿的父亲", "是牛魔王[1]。", "他的母亲", "是铁扇公主[1]。", "他住在", "火焰山[1]。"]
    settings = make_settings(kb_dir, tmp_path / "data", "tts.backend=espeak")
    companion = Companion(settings, KnowledgeChat(settings, GroundedAnswerer(SlowModel(pieces), "S")))
    events = events_of(companion, text="红孩儿的父亲是谁？", speak=True)
    chunks = [e.clip for e in events if isinstance(e, SpeechChunk)]
    assert len(chunks) >= 2, "each sentence is its own chunk"
    assert len({c.sample_rate for c in chunks}) == 1
    assert all(np.abs(c.samples).max() > 0.05 for c in chunks)
    first_audio = next(i for i, e in enumerate(events) if isinstance(e, SpeechChunk))
    answer_at = next(i for i, e in enumerate(events) if isinstance(e, Answer))
    assert first_audio < answer_at, "speech starts while the answer is still being written"


def test_a_failing_voice_is_a_notice_and_the_text_answer_is_whole(companion: Companion):
    companion = Companion(companion.settings, companion.chat, synthesizer=BrokenVoice())
    events = events_of(companion, text="红孩儿的父亲是谁？", speak=True)
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert any("语音合成出错" in n and "out of memory" in n for n in notices)
    answer = next(e for e in events if isinstance(e, Answer))
    assert "牛魔王" in answer.answer


class SlowVoice:
    """A voice that takes 0.1 s per chunk and remembers every piece of text it was asked to say."""

    name = "slow"
    sample_rate = 16000

    def __init__(self) -> None:
        self.said: list[str] = []

    def stream_tts(self, text: str) -> Iterator[AudioClip]:
        self.said.append(text)
        for _ in range(5):
            time.sleep(0.1)
            yield AudioClip(np.full(1600, 0.1, dtype=np.float32), self.sample_rate)


def test_stopping_a_spoken_turn_stops_text_and_voice_within_300_ms(kb_dir: Path, tmp_path: Path):
    pieces = ["红孩儿的父亲是牛魔王[1]。", "他的母亲是铁扇公主[1]。", "他住在火焰山[1]。"] * 4
    settings = make_settings(kb_dir, tmp_path / "data")
    voice = SlowVoice()
    chat = KnowledgeChat(settings, GroundedAnswerer(SlowModel(pieces), "S"))
    turn = Companion(settings, chat, synthesizer=voice).turn(text="红孩儿的父亲是谁？", speak=True)
    assert any(isinstance(event, SpeechChunk) for event in turn)  # the voice is speaking
    before = threading.active_count()
    started = time.perf_counter()
    turn.close()  # what the stop button does
    stopped_s = time.perf_counter() - started
    said = len(voice.said)
    time.sleep(0.4)
    assert stopped_s < 0.3, f"stop took {stopped_s * 1000:.0f} ms"
    assert len(voice.said) == said, "no sentence is started after the stop"
    assert not [t for t in threading.enumerate() if t.name == "tts-slow"], "the speech worker has ended"
    assert threading.active_count() < before


def test_long_sentences_are_cut_at_tts_max_sentence_chars(kb_dir: Path, tmp_path: Path):
    long = "天命人一路向西，" * 6 + "终于来到了火焰山[1]。"
    settings = make_settings(kb_dir, tmp_path / "data", "tts.max_sentence_chars=20")
    voice = SlowVoice()
    chat = KnowledgeChat(settings, GroundedAnswerer(ScriptedModel([long]), "S"))
    events_of(Companion(settings, chat, synthesizer=voice), text="火焰山怎么去？", speak=True)
    assert len(voice.said) > 1 and max(len(text) for text in voice.said) <= 20


def test_a_spoken_question_is_corrected_and_answered(companion: Companion):
    names = game_vocabulary(companion.chat.retriever.index.documents)
    ears = SpeechPipeline(companion.settings.asr, names, REPO, recognizer=HeardAs("黑熊金在哪里打"))
    companion = Companion(companion.settings, companion.chat, recognizer=ears)
    events = events_of(companion, audio=SPEECH / "zh_01.wav", speak=False)
    heard = next(e for e in events if isinstance(e, Heard))
    assert heard.transcript.raw_text == "黑熊金在哪里打"
    assert heard.transcript.text == "黑熊精在哪里打"
    answer = events[-1]
    assert isinstance(answer, Answer) and "黑风山" in answer.answer
    assert answer.to_dict()["transcript"] == {"text": "黑熊精在哪里打", "raw_text": "黑熊金在哪里打"}


def test_silence_asks_to_say_it_again_and_sends_nothing_on(companion: Companion):
    ears = SpeechPipeline(companion.settings.asr, [], REPO, recognizer=HeardAs("不该出现"))
    companion = Companion(companion.settings, companion.chat, recognizer=ears)
    events = events_of(companion, audio=SPEECH / "silence_2s.wav")
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert notices[-1] == "没有听清，请再说一遍" and "正在加载语音识别模型" in notices[0]  # a first use says so
    assert not [e for e in events if isinstance(e, (Heard, Routed, TextDelta))]


def test_a_broken_asr_model_is_a_message_and_typing_still_works(kb_dir: Path, tmp_path: Path):
    broken = tmp_path / "whisper"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"not a model")
    (broken / "config.json").write_text("{}")
    settings = make_settings(kb_dir, tmp_path / "data", "asr.backend=whisper", f"asr.whisper.model={broken}")
    companion = Companion(settings)
    events = events_of(companion, audio=SPEECH / "zh_01.wav")
    notice = [e for e in events if isinstance(e, Notice)][-1]
    assert "语音识别不可用" in notice.text or "model" in notice.text.lower()
    assert "牛魔王" in events_of(companion, text="红孩儿的父亲是谁？", speak=False)[-1].answer


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sd(tmp_path_factory.mktemp("sd") / "sd")


def drawing_companion(kb_dir: Path, tmp_path: Path, model: Path, steps: int = 2) -> Companion:
    sets = [f"image.model={model}", "image.width=64", "image.height=64", f"image.steps={steps}"]
    return Companion(make_settings(kb_dir, tmp_path / "data", "image.safety_checker=false", *sets))


def test_a_drawing_request_is_drawn_and_saved_with_its_settings(kb_dir: Path, tmp_path: Path, tiny_sd: Path):
    from modules.image.png import read_png_metadata

    companion = drawing_companion(kb_dir, tmp_path, tiny_sd)
    events = events_of(companion, text="画一个在雪山上手持长棍的天命人，水墨风")
    assert next(e for e in events if isinstance(e, Routed)).intent == "image"
    assert [e.step for e in events if isinstance(e, DrawingStep)]
    drawn = next(e for e in events if isinstance(e, Drawn))
    assert drawn.path.is_file() and drawn.path.parent == companion.settings.image_dir
    meta = read_png_metadata(drawn.path)
    assert str(drawn.seed) in str(meta) and "ink" in drawn.prompt
    answer = events[-1]
    assert isinstance(answer, Answer) and answer.intent == "image" and answer.image == drawn


def test_stop_cancels_a_picture_between_steps(kb_dir: Path, tmp_path: Path, tiny_sd: Path):
    companion = drawing_companion(kb_dir, tmp_path, tiny_sd, steps=50)
    cancel = threading.Event()
    events = []
    for event in companion.turn(text="画一个雪地里的天命人", cancel=cancel):
        events.append(event)
        if isinstance(event, DrawingStep) and event.step >= 2:
            cancel.set()
    assert not [e for e in events if isinstance(e, Drawn)]
    assert max(e.step for e in events if isinstance(e, DrawingStep)) < 50
    assert "已停止作画" in events[-1].answer


def test_no_image_model_names_the_download_command(companion: Companion):
    answer = events_of(companion, text="画一个雪地里的天命人")[-1]
    assert answer.intent == "image" and "python -m app download image" in answer.answer


def test_a_broken_image_model_is_a_message(kb_dir: Path, tmp_path: Path):
    broken = tmp_path / "sd"
    broken.mkdir()
    (broken / "model_index.json").write_text("{not json")
    answer = events_of(drawing_companion(kb_dir, tmp_path, broken), text="画一个雪地里的天命人")[-1]
    assert answer.intent == "image" and ("画不了" in answer.answer or "没画成" in answer.answer)
