"""FunASR on tiny random Paraformers: real loading and decoding (garbage text), hotwords, and the error paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modules.asr.audio import load_audio
from modules.asr.base import RecognitionError, SpeechRecognizer, TranscriptSegment
from modules.asr.funasr_asr import (
    FunasrRecognizer,
    locate_funasr_model,
    model_kind,
    resolve_device,
    write_hotword_file,
)
from modules.asr.recognize import SpeechPipeline
from modules.asr.settings import AsrSettings, FunasrSettings
from modules.audio_types import AudioClip
from modules.model_files import ModelNotFoundError
from tests.modules.asr.conftest import REPO, fixture


@pytest.fixture(scope="module")
def paraformer(tiny_paraformer_dir: Path, vocabulary: list[str]) -> FunasrRecognizer:
    return FunasrRecognizer(tiny_paraformer_dir, vocabulary, device="auto")


@pytest.fixture(scope="module")
def seaco(tiny_seaco_dir: Path, vocabulary: list[str]) -> FunasrRecognizer:
    return FunasrRecognizer(tiny_seaco_dir, vocabulary, device="cpu")


@pytest.fixture(scope="module")
def question() -> AudioClip:
    return load_audio(fixture("zh_01.wav"), 60)


def test_paraformer_loads_and_decodes(paraformer, question):
    assert isinstance(paraformer, SpeechRecognizer)
    assert paraformer.kind == "Paraformer" and paraformer.device == resolve_device("auto")
    segments = list(paraformer.segments(question))
    assert len(segments) <= 1
    for seg in segments:
        assert isinstance(seg, TranscriptSegment) and isinstance(seg.text, str)
        assert seg.language == "zh" and seg.end == pytest.approx(question.seconds)
        assert " " not in seg.text  # Chinese characters are joined


def test_plain_paraformer_takes_no_hotwords(paraformer):
    assert paraformer.supports_hotwords is False
    assert paraformer.hotword_file is None
    assert "hotword" not in paraformer.generate_options()


def test_seaco_paraformer_gets_the_names_as_hotwords(seaco, vocabulary, question):
    assert seaco.kind == "SeacoParaformer" and seaco.supports_hotwords
    assert seaco.hotword_file is not None and seaco.hotword_file.suffix == ".txt"
    lines = seaco.hotword_file.read_text(encoding="utf-8").splitlines()
    assert lines[0] == " ".join(vocabulary[0])  # characters space-separated, most important name first
    assert "黄 风 大 圣" in lines
    assert seaco.generate_options() == {"hotword": str(seaco.hotword_file)}
    segments = list(seaco.segments(question))  # the hotword path of SeACo runs for real
    assert all(isinstance(s.text, str) for s in segments)


def test_hotwords_off(tiny_seaco_dir, vocabulary):
    recognizer = FunasrRecognizer(tiny_seaco_dir, vocabulary, hotwords=False)
    assert recognizer.hotword_file is None and "hotword" not in recognizer.generate_options()
    recognizer.close()


def test_pipeline_on_funasr(tiny_paraformer_dir, vocabulary):
    settings = AsrSettings(
        backend="funasr", funasr=FunasrSettings(model=str(tiny_paraformer_dir), vad_model="", punc_model="")
    )
    pipeline = SpeechPipeline(settings, vocabulary, REPO)
    assert pipeline.status().backend == "funasr" and pipeline.status().ok
    heard = pipeline.transcribe(fixture("zh_08.wav"))
    assert heard.backend == "funasr" and heard.language == "zh"
    assert isinstance(heard.text, str) and heard.raw_text
    assert heard.audio_seconds == pytest.approx(2.192, abs=0.01)


def test_sensevoice_options_and_tags(paraformer):
    paraformer.kind = "SenseVoiceSmall"  # the cleaning and options depend only on the declared kind
    try:
        assert paraformer.generate_options() == {"language": "auto", "use_itn": True}
        assert paraformer._clean("<|zh|><|NEUTRAL|><|Speech|><|withitn|>黑熊精在哪。") == ("黑熊精在哪。", "zh")
        text, language = paraformer._clean("<|en|><|HAPPY|><|Speech|><|withitn|>Where is the Black Bear?")
        assert language == "en" and text == "Where is the Black Bear?"
        assert paraformer._clean("<|nospeech|><|Event_UNK|>") == ("", None)
    finally:
        paraformer.kind = "Paraformer"


def test_traditional_output_is_simplified(paraformer):
    assert paraformer._clean("黃 風 嶺 在 哪 裡") == ("黄风岭在哪里", "zh")


def test_missing_hub_model_names_the_key_and_the_command(tmp_path):
    with pytest.raises(ModelNotFoundError) as err:
        locate_funasr_model("iic/not-downloaded-model", "asr.funasr.model", tmp_path)
    assert "asr.funasr.model" in str(err.value) and "python -m app download asr" in str(err.value)
    with pytest.raises(ModelNotFoundError, match="check the path"):
        locate_funasr_model(str(tmp_path / "nowhere"), "asr.funasr.model", tmp_path)


def test_missing_vad_model_is_named(tiny_paraformer_dir, tmp_path):
    settings = FunasrSettings(model=str(tiny_paraformer_dir), vad_model="iic/no-such-vad", punc_model="")
    with pytest.raises(ModelNotFoundError, match=r"asr\.funasr\.vad_model"):
        FunasrRecognizer.from_settings(settings, tmp_path, [], "zh")


def test_not_a_funasr_directory(tmp_path):
    with pytest.raises(RecognitionError, match=r"no config\.yaml"):
        model_kind(tmp_path)
    (tmp_path / "config.yaml").write_text("model: [unclosed", encoding="utf-8")
    with pytest.raises(RecognitionError, match="cannot be read"):
        model_kind(tmp_path)


def test_broken_model_directory_is_a_clear_error(tmp_path, tiny_paraformer_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.yaml", "tokens.txt"):
        (broken / name).write_bytes((tiny_paraformer_dir / name).read_bytes())
    with pytest.raises(RecognitionError, match="cannot load"):
        FunasrRecognizer(broken)  # model.pt is missing


def test_hotword_file_keeps_chinese_names_up_to_the_limit(tmp_path):
    path = write_hotword_file(["黑熊精", "Black Bear", "酒", "黑熊精", "魔将·劫波", "黄眉"], tmp_path, limit=2)
    assert path is not None
    assert path.read_text(encoding="utf-8").splitlines() == ["黑 熊 精", "魔 将 劫 波"]
    assert write_hotword_file(["Black Bear"], tmp_path) is None


def test_bad_language_and_rate(tiny_paraformer_dir, paraformer):
    with pytest.raises(ValueError, match=r"asr\.language"):
        FunasrRecognizer(tiny_paraformer_dir, language="fr")
    with pytest.raises(ValueError, match="16000 Hz"):
        list(paraformer.segments(AudioClip(np.zeros(800, dtype=np.float32), 8000)))
