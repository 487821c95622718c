"""faster-whisper on the dev Whisper-base: Chinese and English questions, prompt echoes, and the error paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modules.asr.audio import load_audio
from modules.asr.base import RecognitionError
from modules.asr.chinese import han_count, to_simplified
from modules.asr.metrics import cer, mean_rate
from modules.asr.recognize import NoSpeechError, SpeechPipeline
from modules.asr.settings import AsrSettings, WhisperSettings
from modules.asr.whisper_asr import (
    PROMPT_HEAD,
    WhisperRecognizer,
    build_prompt,
    check_model_dir,
    content_frames,
    is_prompt_echo,
    max_new_tokens,
    resolve_compute_type,
    silence_padded,
    window_frames,
)
from modules.audio_types import AudioClip
from tests.modules.asr.conftest import REPO, fixture, manifest

ZH = [r for r in manifest() if r["kind"] == "question" and r["lang"] == "zh"]
EN_KEYWORDS = {
    "en_01.wav": ["chapters", "black", "myth"],
    "en_02.wav": ["spells", "destined", "learn"],
    "en_03.wav": ["black", "myth", "wukong", "xbox"],
    "en_04.wav": ["yellow", "wind", "sage"],
}
PROMPT = PROMPT_HEAD + "天命人、第三回、红孩儿、黄眉、黑熊精。"


@pytest.fixture(scope="module")
def zh_pipeline(whisper_dir: Path, vocabulary: list[str]) -> SpeechPipeline:
    recognizer = WhisperRecognizer(whisper_dir, vocabulary, language="zh", cpu_threads=2)
    return SpeechPipeline(AsrSettings(language="zh"), vocabulary, REPO, recognizer=recognizer)


@pytest.mark.slow
def test_chinese_questions_after_prompt_and_correction(zh_pipeline):
    if len(ZH) != 20:
        pytest.skip("the 20 Chinese question fixtures are not here")
    raw, fixed = [], []
    for record in ZH:
        heard = zh_pipeline.transcribe(fixture(record["file"]))
        assert heard.language == "zh" and heard.backend == "whisper"
        assert to_simplified(heard.text) == heard.text  # simplified output, not traditional
        raw.append(cer(record["text"], heard.raw_text))
        fixed.append(cer(record["text"], heard.text))
    print(f"whisper-base zh CER: raw {mean_rate(raw):.3f}, corrected {mean_rate(fixed):.3f}")
    assert mean_rate(fixed) <= 0.10
    assert mean_rate(fixed) < mean_rate(raw)


@pytest.mark.slow
def test_english_questions_with_language_detection(whisper_dir, vocabulary):
    recognizer = WhisperRecognizer(whisper_dir, vocabulary, language="auto", cpu_threads=2)
    pipeline = SpeechPipeline(AsrSettings(language="auto"), vocabulary, REPO, recognizer=recognizer)
    for name, words in EN_KEYWORDS.items():
        heard = pipeline.transcribe(fixture(name))
        assert heard.language == "en", heard
        assert han_count(heard.text) == 0  # the Chinese prompt is not used for English
        text = heard.text.lower()
        missing = [w for w in words if w not in text]
        assert len(missing) <= 1, (heard.text, missing)  # Whisper-base mishears "Black Myth Wukong" at times


@pytest.mark.slow
def test_silence_without_vad_is_no_speech_not_the_prompt(whisper_dir, vocabulary):
    recognizer = WhisperRecognizer(whisper_dir, vocabulary, language="zh", cpu_threads=2)
    pipeline = SpeechPipeline(AsrSettings(language="zh", vad=False), vocabulary, REPO, recognizer=recognizer)
    for name in ("silence_2s.wav", "noise_2s.wav", "tiny_0.1s.wav"):
        with pytest.raises(NoSpeechError, match="没有听清"):
            pipeline.transcribe(fixture(name))


def test_prompt_fits_whisper_and_names_rare_game_names(whisper_dir, vocabulary):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(whisper_dir / "tokenizer.json"))
    prompt = build_prompt(vocabulary, lambda text: len(tokenizer.encode(" " + text, add_special_tokens=False).ids))
    assert prompt.startswith(PROMPT_HEAD)
    assert len(tokenizer.encode(" " + prompt, add_special_tokens=False).ids) <= 223
    names = prompt[len(PROMPT_HEAD) :].rstrip("。").split("、")
    assert len(names) >= 25
    assert "黄风大圣" in names and "黑熊精" in names
    assert "唐僧" not in names and "土地" not in names  # everyday words need no prompt


def test_build_prompt_budget_and_choice():
    names = ["黄眉", "黄眉大王", "第一回", "第二回", "土地", "黑熊精", "Black Bear", "百眼魔君"]
    prompt = build_prompt(names, len, budget=len(PROMPT_HEAD) + 12)
    assert prompt == PROMPT_HEAD + "黄眉、第一回、黑熊精。"  # 黄眉大王 ⊃ 黄眉, 第二回 ~ 第一回, 土地 is everyday
    assert build_prompt([], len) == "以下是关于游戏《黑神话：悟空》的问题。"


@pytest.mark.parametrize(
    ("text", "echo"),
    [
        ("《黑神话：悟空》的问题。", True),
        ("《黑神话：悟空》的《黑神话：悟空》", True),
        ("以下是关于游戏", True),
        ("天命人、第三回。", True),
        ("黄眉", False),
        ("黄眉怎么打?", False),
        ("黑神话悟空有没有联机模式", False),
        ("What spells can the Destined One learn?", False),
    ],
)
def test_prompt_echo(text, echo):
    assert is_prompt_echo(text, PROMPT) is echo
    assert is_prompt_echo(text, None) is False


def test_token_cap_grows_with_speech_and_stays_in_the_window():
    assert max_new_tokens(2.0) < max_new_tokens(10.0) <= 220
    assert max_new_tokens(60.0) == 220


def test_compute_type_defaults():
    assert resolve_compute_type("default", "cpu") == "int8"
    assert resolve_compute_type("default", "cuda") == "float16"
    assert resolve_compute_type("int8_float16", "cuda") == "int8_float16"


def test_not_a_model_directory(tmp_path):
    with pytest.raises(RecognitionError, match=r"asr\.whisper\.model.*model\.bin"):
        check_model_dir(tmp_path)
    (tmp_path / "model.bin").write_bytes(b"x")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RecognitionError, match=r"tokenizer\.json"):
        check_model_dir(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"language": "fr"}, "asr.language"),
        ({"beam_size": 0}, "beam_size"),
        ({"cpu_threads": -1}, "cpu_threads"),
        ({"prompt_tokens": 300}, "prompt_tokens"),
        ({"window_s": 0}, "window_s"),
        ({"window_s": 31}, "window_s"),
    ],
)
def test_bad_settings(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        WhisperRecognizer(tmp_path, **kwargs)


def test_wrong_sample_rate(zh_pipeline):
    recognizer = zh_pipeline.recognizer()
    with pytest.raises(ValueError, match="16000 Hz"):
        list(recognizer.segments(AudioClip(np.zeros(8000, dtype=np.float32), 8000)))


@pytest.mark.slow
def test_language_detection_reuses_the_encoder_pass(whisper_dir, monkeypatch):
    """auto costs one encoder pass per question, not two (the encoder is most of Whisper's time)."""
    from faster_whisper import WhisperModel

    passes = []
    original = WhisperModel.encode
    monkeypatch.setattr(WhisperModel, "encode", lambda self, features: passes.append(1) or original(self, features))
    recognizer = WhisperRecognizer(whisper_dir, [], language="auto", cpu_threads=2)
    segments = list(recognizer.segments(load_audio(fixture("en_02.wav"), 60)))
    assert segments and segments[0].language == "en"
    assert len(passes) == 1


def test_encoder_window_is_the_clip_plus_a_margin_within_whisper_s():
    assert window_frames(2.5, 30) == 3000  # Whisper's own window
    assert window_frames(2.5, 10) == 1000  # at least window_s
    assert window_frames(12.0, 10) == 1300  # the clip and a second of silence
    assert window_frames(29.5, 10) == 3000  # never more than 30 s
    assert window_frames(2.005, 2) % 2 == 0  # the encoder's convolution halves the frames


def test_padding_reads_as_the_clips_silence():
    features = np.zeros((80, 3000), dtype=np.float32)
    features[:, :250] = np.linspace(-0.6, 1.4, 250, dtype=np.float32)  # 2.5 s of sound; faster-whisper pads 0
    assert content_frames(features) == 250
    assert content_frames(features[None]) == 250
    assert content_frames(np.zeros((80, 3000), dtype=np.float32)) == 0
    padded = silence_padded(features, 250)
    assert np.allclose(padded[:, 250:], 1.4 - 2.0)  # the loudest value less 8 on log10, normalised
    assert np.array_equal(padded[:, :250], features[:, :250]) and features[0, 300] == 0  # a copy
    assert silence_padded(np.full((80, 10), -1.4, dtype=np.float32), 5)[0, 9] == -1.5  # never below 1e-10


def test_the_settings_reach_faster_whisper(whisper_dir, vocabulary, monkeypatch):
    """beam_size, without_timestamps and the prompt budget from asr.whisper arrive in transcribe; the encoder
    reads the window asked for, padded with silence."""
    from faster_whisper import WhisperModel

    calls: list[dict] = []
    windows: list[tuple[int, float]] = []
    transcribe, encode = WhisperModel.transcribe, WhisperModel.encode

    def spy_transcribe(self, audio, **kwargs):
        calls.append(kwargs)
        return transcribe(self, audio, **kwargs)

    def spy_encode(self, features):
        windows.append((features.shape[-1], float(features[..., -1].max())))
        return encode(self, features)

    monkeypatch.setattr(WhisperModel, "transcribe", spy_transcribe)
    monkeypatch.setattr(WhisperModel, "encode", spy_encode)
    settings = WhisperSettings(beam_size=3, without_timestamps=True, prompt_tokens=60, window_s=8, cpu_threads=2)
    recognizer = WhisperRecognizer.from_settings(settings, whisper_dir, vocabulary, "zh")
    segments = list(recognizer.segments(load_audio(fixture("zh_05.wav"), 60)))
    assert segments and han_count(segments[0].text) >= 5
    (kwargs,) = calls
    assert kwargs["beam_size"] == 3 and kwargs["without_timestamps"] is True
    assert kwargs["vad_filter"] is False and kwargs["condition_on_previous_text"] is False
    assert recognizer.prompt is not None and kwargs["initial_prompt"] == recognizer.prompt
    assert recognizer._count_tokens(recognizer.prompt) <= 60
    (window,) = windows
    assert window[0] == 800  # 2.3 s of speech in the 8 s window asked for
    assert window[1] < -0.4  # the padding is silence, not faster-whisper's zeros
    assert recognizer.encoder_seconds > 0


def test_default_settings_match_the_shipped_config():
    """WhisperSettings' defaults and configs/default.yaml's asr.whisper section say the same."""
    import yaml

    shipped = yaml.safe_load((REPO / "configs" / "default.yaml").read_text(encoding="utf-8"))["asr"]["whisper"]
    assert WhisperSettings(**shipped) == WhisperSettings()
    assert {"beam_size", "prompt_tokens", "without_timestamps", "window_s"} <= set(shipped)
