"""The pipeline: refusals (no speech, too long, too big), backend selection, correction, sharing between threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from modules.asr.audio import AudioError
from modules.asr.base import TranscriptSegment
from modules.asr.funasr_asr import FunasrRecognizer
from modules.asr.recognize import (
    NO_SPEECH_MESSAGES,
    NoSpeechError,
    SpeechPipeline,
    backend_status,
    create_recognizer,
    join_segments,
)
from modules.asr.settings import AsrSettings, FunasrSettings, WhisperSettings
from modules.audio_types import AudioClip
from modules.model_files import ModelNotFoundError
from tests.modules.asr.conftest import REPO, fixture


class ScriptedRecognizer:
    """Says the given lines for any audio: for testing what the pipeline does around a recogniser."""

    name = "scripted"

    def __init__(self, *lines: str, language: str = "zh") -> None:
        self.lines = lines
        self.language = language
        self.calls = 0

    def segments(self, audio: AudioClip) -> Iterator[TranscriptSegment]:
        self.calls += 1
        for i, line in enumerate(self.lines):
            yield TranscriptSegment(line, float(i), float(i + 1), self.language)


@pytest.fixture
def no_caches(monkeypatch, tmp_path):
    """No model is found anywhere but where a test puts it."""
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "modelscope"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


def pipeline(*lines: str, **settings) -> SpeechPipeline:
    return SpeechPipeline(AsrSettings(**settings), ["黑熊精", "黄眉", "三昧神风"], REPO, ScriptedRecognizer(*lines))


@pytest.mark.parametrize("name", ["silence_2s.wav", "noise_2s.wav", "tiny_0.1s.wav"])
def test_no_speech_is_told_in_chinese_by_default(name):
    heard = pipeline("这句不该被听到")
    with pytest.raises(NoSpeechError) as err:
        heard.transcribe(fixture(name))
    assert str(err.value) == "没有听清，请再说一遍" and err.value.code == "no_speech"
    assert isinstance(err.value, AudioError)
    assert heard.recognizer().calls == 0  # nothing reached the recogniser


def test_no_speech_in_english_when_the_app_listens_for_english():
    with pytest.raises(NoSpeechError) as err:
        pipeline(language="en").transcribe(fixture("silence_2s.wav"))
    assert str(err.value) == NO_SPEECH_MESSAGES["en"] == "Sorry, I didn't catch that — please say it again."


def test_nothing_recognised_is_no_speech():
    for lines in [(), ("",), ("。", " ")]:
        with pytest.raises(NoSpeechError):
            pipeline(*lines).transcribe(fixture("zh_01.wav"))


def test_too_long_and_too_large_are_refused_before_recognition():
    heard = pipeline("不该被听到")
    with pytest.raises(AudioError) as err:
        heard.transcribe(fixture("long_90s.wav"))
    assert err.value.code == "too_long" and "60 s" in str(err.value) and "89.9 s" in str(err.value)
    tiny_limit = pipeline("不该被听到", max_upload_mb=0.01)
    with pytest.raises(AudioError) as err:
        tiny_limit.transcribe(fixture("zh_01.wav"))
    assert err.value.code == "too_large"
    assert heard.recognizer().calls == 0 and tiny_limit.recognizer().calls == 0


def test_transcript_keeps_raw_and_corrected_text():
    heard = pipeline("黑熊金住在哪座山上", "怎么躲三妹神风").transcribe(fixture("zh_01.wav"))
    assert heard.raw_text == "黑熊金住在哪座山上怎么躲三妹神风"
    assert heard.text == "黑熊精住在哪座山上怎么躲三昧神风"
    assert heard.language == "zh" and heard.backend == "scripted"
    assert heard.audio_seconds == pytest.approx(2.013, abs=0.01)


def test_correction_can_be_switched_off():
    heard = pipeline("黑熊金住在哪座山上", correction=False).transcribe(fixture("zh_01.wav"))
    assert heard.text == heard.raw_text == "黑熊金住在哪座山上"


def test_long_speech_goes_to_the_recogniser_in_chunks_with_times():
    heard = pipeline("一句", max_seconds=120)
    segments = list(heard.stream(fixture("long_90s.wav")))
    assert heard.recognizer().calls == len(segments) >= 4
    starts = [s.start for s in segments]
    assert starts == sorted(starts) and starts[-1] > 60  # times are in the original recording


def test_vad_off_passes_silence_to_the_recogniser():
    heard = pipeline("黄眉", vad=False)
    assert heard.transcribe(fixture("silence_2s.wav")).text == "黄眉"


def test_stream_yields_corrected_segments():
    segments = list(pipeline("打皇梅", "要注意什么").stream(fixture("zh_03.wav")))
    assert [s.text for s in segments] == ["打黄眉", "要注意什么"]
    with pytest.raises(NoSpeechError):
        list(pipeline("x").stream(fixture("silence_2s.wav")))


def test_join_segments():
    assert join_segments(["黑熊精", "在哪"]) == "黑熊精在哪"
    assert join_segments(["Where is", "the Black Bear?"]) == "Where is the Black Bear?"
    assert join_segments(["黑熊精", "Boss", "怎么打"]) == "黑熊精Boss怎么打"
    assert join_segments(["", " 黄眉 "]) == "黄眉"


def test_nothing_present_says_both_download_commands(no_caches):
    status = backend_status(AsrSettings(), no_caches)
    assert status.backend is None and not status.ok
    assert "python -m app download asr-cpu" in status.detail and "python -m app download asr`" in status.detail
    with pytest.raises(ModelNotFoundError, match="asr-cpu"):
        create_recognizer(AsrSettings(), [], no_caches)


def test_explicit_backend_without_its_model(no_caches):
    whisper = AsrSettings(backend="whisper")
    assert backend_status(whisper, no_caches).detail.endswith("run `python -m app download asr-cpu`")
    with pytest.raises(ModelNotFoundError, match=r"asr\.whisper\.model"):
        create_recognizer(whisper, [], no_caches)
    with pytest.raises(ModelNotFoundError, match=r"asr\.funasr\.model.*python -m app download asr\b"):
        create_recognizer(AsrSettings(backend="funasr"), [], no_caches)


def test_auto_prefers_funasr_when_its_models_are_present(no_caches, tiny_paraformer_dir, whisper_dir):
    settings = AsrSettings(
        funasr=FunasrSettings(model=str(tiny_paraformer_dir), vad_model="", punc_model=""),
        whisper=WhisperSettings(model=str(whisper_dir)),
    )
    status = backend_status(settings, no_caches)
    assert (status.backend, status.ok, status.model_path) == ("funasr", True, tiny_paraformer_dir)
    assert isinstance(create_recognizer(settings, ["黑熊精"], no_caches), FunasrRecognizer)


def test_auto_falls_back_to_whisper_when_a_funasr_part_is_missing(no_caches, tiny_paraformer_dir, whisper_dir):
    settings = AsrSettings(
        funasr=FunasrSettings(model=str(tiny_paraformer_dir), vad_model="iic/not-here", punc_model=""),
        whisper=WhisperSettings(model=str(whisper_dir)),
    )
    status = backend_status(settings, no_caches)
    assert (status.backend, status.ok, status.model_path) == ("whisper", True, whisper_dir)
    funasr_only = backend_status(settings.model_copy(update={"backend": "funasr"}), no_caches)
    assert not funasr_only.ok and "asr.funasr.vad_model=iic/not-here" in funasr_only.detail


def test_hub_id_found_in_the_models_folder(no_caches, whisper_dir):
    models = no_caches / "models" / "Systran" / "faster-whisper-base"
    models.mkdir(parents=True)
    for name in ("model.bin", "config.json", "tokenizer.json"):
        (models / name).symlink_to(whisper_dir / name)
    status = backend_status(AsrSettings(), no_caches)
    assert (status.backend, status.ok, status.model_path) == ("whisper", True, models)


def test_recogniser_loads_once_and_serves_threads(tiny_paraformer_dir, vocabulary):
    settings = AsrSettings(
        backend="funasr", funasr=FunasrSettings(model=str(tiny_paraformer_dir), vad_model="", punc_model="")
    )
    shared = SpeechPipeline(settings, vocabulary, REPO)
    results: list[object] = []

    def ask(name: str) -> None:
        try:
            results.append(shared.transcribe(fixture(name)))
        except Exception as exc:  # collected and asserted below: a thread must not swallow a failure
            results.append(exc)

    threads = [threading.Thread(target=ask, args=(name,)) for name in ("zh_01.wav", "zh_02.wav", "zh_03.wav")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and all(not isinstance(r, Exception) for r in results), results
    assert shared.recognizer() is shared.recognizer()


def test_warm_up_loads_everything(tiny_paraformer_dir, vocabulary):
    settings = AsrSettings(
        backend="funasr", funasr=FunasrSettings(model=str(tiny_paraformer_dir), vad_model="", punc_model="")
    )
    ready = SpeechPipeline(settings, vocabulary, Path(REPO))
    ready.warm_up()
    assert ready._recognizer is not None and ready._vad is not None and ready._corrector is not None


def test_from_documents_orders_the_vocabulary():
    from modules.rag.loader import load_documents

    built = SpeechPipeline.from_documents(AsrSettings(), load_documents([REPO / "assets" / "knowledge"]), REPO)
    assert "黑熊精" in built.names and "筋斗云" in built.names
    assert built.names.index("黄风大圣") < built.names.index("黄毛貂鼠")
