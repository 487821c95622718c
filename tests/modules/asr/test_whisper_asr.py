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
from modules.asr.settings import AsrSettings
from modules.asr.whisper_asr import (
    PROMPT_HEAD,
    WhisperRecognizer,
    build_prompt,
    check_model_dir,
    is_prompt_echo,
    max_new_tokens,
    resolve_compute_type,
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
    [({"language": "fr"}, "asr.language"), ({"beam_size": 0}, "beam_size"), ({"cpu_threads": -1}, "cpu_threads")],
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
