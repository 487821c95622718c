import shutil
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modules.audio_types import AudioClip
from modules.model_files import ModelNotFoundError
from modules.tts.base import SpeechSynthesisError, SpeechSynthesizer
from modules.tts.chattts_tts import ASSET_FILES, ChatTTSSynthesizer
from modules.tts.espeak_tts import EspeakNotFoundError, EspeakSynthesizer
from modules.tts.service import (
    SpeechStream,
    backend_status,
    create_synthesizer,
    synthesize,
    wav_bytes,
    write_wav,
)
from modules.tts.settings import TtsSettings

HAS_ESPEAK = shutil.which("espeak-ng") is not None


class ToneSynthesizer:
    """A real, trivial backend: each sentence becomes `chunks` tone chunks whose level encodes its order.

    It records what it was asked to say and when, so the tests can see the pipeline's order and timing.
    """

    name = "tone"
    sample_rate = 8000

    def __init__(self, chunks: int = 2, delay: float = 0.0, fail_on: str | None = None) -> None:
        self.chunks, self.delay, self.fail_on = chunks, delay, fail_on
        self.said: list[str] = []
        self.started: list[float] = []
        self.closed = 0
        self.finished = 0

    def stream_tts(self, text: str) -> Iterator[AudioClip]:
        self.said.append(text)
        self.started.append(time.monotonic())
        index = len(self.said)
        try:
            if self.fail_on and self.fail_on in text:
                raise SpeechSynthesisError(f"tone: cannot say {text!r}")
            for k in range(self.chunks):
                time.sleep(self.delay)
                yield AudioClip(np.full(80, index + k / 10, dtype=np.float32), self.sample_rate)
            self.finished += 1
        except GeneratorExit:
            self.closed += 1
            raise


def levels(clips: list[AudioClip]) -> list[float]:
    return [round(float(c.samples[0]), 1) for c in clips]


def tts_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("tts-") and t.is_alive()]


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# -- choosing the backend ----------------------------------------------------------------------


def complete_chattts(root: Path) -> Path:
    """A folder with every asset file present (selection only looks at presence; loading is tested elsewhere)."""
    for rel in ASSET_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    return root


def test_auto_prefers_chattts_when_its_model_is_here(tmp_path):
    model = complete_chattts(tmp_path / "ChatTTS")
    settings = TtsSettings.model_validate({"chattts": {"model": str(model)}})
    status = backend_status(settings, tmp_path)
    assert status.backend == "chattts" and status.model_path == model
    synth = create_synthesizer(settings, tmp_path)
    assert isinstance(synth, ChatTTSSynthesizer) and isinstance(synth, SpeechSynthesizer)
    assert synth.speaker_path == tmp_path / "assets/voices/monkey_king.pt"  # resolved against the repo root
    assert synth._chat is None  # nothing loaded yet


@pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng is not installed")
def test_auto_falls_back_to_espeak(tmp_path):
    settings = TtsSettings.model_validate({"chattts": {"model": str(tmp_path / "absent")}})
    status = backend_status(settings, tmp_path)
    assert status.backend == "espeak" and "python -m app download tts" in status.detail
    assert isinstance(create_synthesizer(settings, tmp_path), EspeakSynthesizer)


def test_auto_with_nothing_available_is_none_with_both_fixes(tmp_path):
    settings = TtsSettings.model_validate(
        {"chattts": {"model": str(tmp_path / "absent")}, "espeak": {"command": "no-espeak-here"}}
    )
    status = backend_status(settings, tmp_path)
    assert status.backend is None
    assert "python -m app download tts" in status.detail and "sudo apt install espeak-ng" in status.detail
    assert create_synthesizer(settings, tmp_path) is None


def test_incomplete_chattts_is_not_picked(tmp_path):
    model = complete_chattts(tmp_path / "ChatTTS")
    (model / "asset" / "Vocos.safetensors").unlink()
    settings = TtsSettings.model_validate({"chattts": {"model": str(model)}, "espeak": {"command": "none-x"}})
    status = backend_status(settings, tmp_path)
    assert status.backend is None and "incomplete" in status.detail


def test_explicit_chattts_without_a_model_raises_naming_the_key(tmp_path):
    settings = TtsSettings.model_validate({"backend": "chattts", "chattts": {"model": str(tmp_path / "absent")}})
    with pytest.raises(ModelNotFoundError, match=r"tts\.chattts\.model.*python -m app download tts"):
        create_synthesizer(settings, tmp_path)


def test_explicit_espeak_without_the_binary_raises_naming_apt(tmp_path):
    settings = TtsSettings.model_validate({"backend": "espeak", "espeak": {"command": "no-espeak-here"}})
    with pytest.raises(EspeakNotFoundError, match="sudo apt install espeak-ng"):
        create_synthesizer(settings, tmp_path)


# -- speaking a stream ---------------------------------------------------------------------------


def spoken(deltas: list[str], synth: SpeechSynthesizer, lang: str = "zh", **settings: object) -> SpeechStream:
    """A stream fed with every delta and ended: iterate it for the audio."""
    first_clause = int(settings.pop("first_clause_chars", 12))  # type: ignore[call-overload]
    stream = SpeechStream(synth, TtsSettings(**settings), lang, first_clause_chars=first_clause)  # type: ignore[arg-type]
    for delta in deltas:
        stream.feed(delta)
    stream.end()
    return stream


def test_sentences_are_normalised_and_spoken_in_order():
    synth = ToneSynthesizer(chunks=2)
    deltas = ["黑熊精是第一回的最终头目[1]。", "他在**黑风山**。第3回", "是黄眉。"]
    clips = list(spoken(deltas, synth, first_clause_chars=0))
    assert synth.said == ["黑熊精是第一回的最终头目。", "他在黑风山。", "第三回是黄眉。"]
    assert levels(clips) == [1.0, 1.1, 2.0, 2.1, 3.0, 3.1]  # every chunk once, in text order
    assert all(c.sample_rate == 8000 for c in clips)


def test_long_sentences_are_split_at_max_sentence_chars():
    synth = ToneSynthesizer(chunks=1)
    list(spoken(["甲乙丙丁戊己庚辛，" * 6 + "完。"], synth, max_sentence_chars=20, first_clause_chars=0))
    assert len(synth.said) > 1 and all(len(s) <= 20 for s in synth.said)


def test_unspeakable_pieces_are_skipped():
    synth = ToneSynthesizer(chunks=1)
    assert list(spoken(["[1] 🐒\n", "  \n"], synth, "auto")) == []
    assert synth.said == []


def test_first_sentence_is_spoken_while_the_text_is_still_streaming():
    synth = ToneSynthesizer(chunks=1)
    with SpeechStream(synth, TtsSettings(), "zh") as stream:
        # The splitter needs the character after "。" (a closing quote would belong to the sentence).
        stream.feed("第一句话。第二")
        ready: list[AudioClip] = []
        assert wait_until(lambda: bool(ready.extend(stream.ready()) or ready)), "no audio while still writing"
        stream.feed("句话。")
        stream.end()
        assert levels([*ready, *stream]) == [1.0, 2.0]


def test_ready_never_waits():
    synth = ToneSynthesizer(chunks=1, delay=0.5)
    with SpeechStream(synth, TtsSettings(), "zh") as stream:
        stream.feed("一句话。两")
        started = time.perf_counter()
        assert stream.ready() == []
        assert time.perf_counter() - started < 0.05


def test_next_sentence_is_synthesised_while_the_previous_one_plays():
    synth = ToneSynthesizer(chunks=1, delay=0.05)
    audio = iter(spoken(["一句。", "两句。", "三句。"], synth))
    next(audio)
    # While the consumer is still "playing" the first chunk (not asking for more), the rest is synthesised.
    assert wait_until(lambda: synth.finished == 3)
    assert levels(list(audio)) == [2.0, 3.0]


def test_close_returns_at_once_and_stops_the_worker_and_the_backend():
    synth = ToneSynthesizer(chunks=50, delay=0.02)
    stream = spoken(["第一句。", "第二句。", "第三句。"], synth)
    next(iter(stream))
    started = time.perf_counter()
    stream.close()
    assert time.perf_counter() - started < 0.05
    assert wait_until(lambda: not tts_threads(), timeout=2)
    assert synth.said == ["第一句。"]  # queued sentences were dropped
    assert synth.closed == 1 and synth.finished == 0  # the sentence in hand was stopped mid-way
    assert list(stream) == [] and stream.ready() == []
    stream.feed("之后的话。")  # ignored: nothing more is said
    time.sleep(0.05)
    assert synth.said == ["第一句。"]


def test_a_backend_error_reaches_the_consumer_after_the_earlier_audio():
    synth = ToneSynthesizer(chunks=1, fail_on="坏")
    audio = iter(spoken(["好的。", "坏的。", "不会说到。"], synth))
    assert levels([next(audio)]) == [1.0]
    with pytest.raises(SpeechSynthesisError, match="cannot say"):
        next(audio)
    assert wait_until(lambda: not tts_threads(), timeout=2)


def test_a_text_source_error_comes_after_what_was_already_said():
    synth = ToneSynthesizer(chunks=1)
    stream = SpeechStream(synth, TtsSettings(), "zh")
    stream.feed("说完这句。")
    stream.end(ConnectionError("model server went away"))
    audio = iter(stream)
    assert levels([next(audio)]) == [1.0]
    with pytest.raises(ConnectionError, match="went away"):
        next(audio)


def test_speech_stream_push_api():
    synth = ToneSynthesizer(chunks=1)
    with SpeechStream(synth, TtsSettings(), "en") as stream:
        stream.feed("Hello there. Gen")
        stream.feed("eral Kenobi")
        stream.end()
        clips = list(stream)
        with pytest.raises(RuntimeError, match="after end"):
            stream.feed("more")
    assert synth.said == ["Hello there.", "General Kenobi."]
    assert len(clips) == 2
    with pytest.raises(ValueError, match="lang"):
        SpeechStream(synth, TtsSettings(), "fr")  # type: ignore[arg-type]


# -- collected and written -----------------------------------------------------------------------


def test_synthesize_collects_the_stream():
    clip = synthesize("一句。两句。", ToneSynthesizer(chunks=2), TtsSettings(), "zh")
    assert clip.sample_rate == 8000 and len(clip.samples) == 4 * 80


def test_synthesize_with_nothing_to_say_is_a_clear_error():
    with pytest.raises(ValueError, match="nothing to say"):
        synthesize("[1] 🐒", ToneSynthesizer(), TtsSettings())


def test_write_wav_round_trip(tmp_path):
    samples = np.sin(np.linspace(0, 100, 2400)).astype(np.float32) * 0.5
    path = write_wav(AudioClip(samples, 24000), tmp_path / "out" / "a.wav")
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes()) == (24000, 1, 2, 2400)
        back = np.frombuffer(wav.readframes(2400), "<i2") / 32767
    assert np.allclose(back, samples, atol=1e-4)
    assert wav_bytes(AudioClip(np.array([2.0, -2.0], np.float32), 8000))[-4:] == b"\xff\x7f\x01\x80"  # clipped


@pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng is not installed")
def test_espeak_end_to_end(tmp_path):
    from modules.tts.settings import EspeakSettings

    synth = EspeakSynthesizer(EspeakSettings())
    clip = synthesize("**黑熊精**是第1回的最终头目[1]。The Black Bear Guai!", synth, TtsSettings())
    assert clip.sample_rate == 22050 and clip.seconds > 2
    assert write_wav(clip, tmp_path / "say.wav").stat().st_size > 44
