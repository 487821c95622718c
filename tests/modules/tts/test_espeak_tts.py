import shutil
import struct

import numpy as np
import pytest

from modules.tts.base import SpeechSynthesisError, SpeechSynthesizer
from modules.tts.espeak_tts import (
    SAMPLE_RATE,
    EspeakNotFoundError,
    EspeakSynthesizer,
    Run,
    parse_wav,
    split_runs,
    to_pinyin,
)
from modules.tts.settings import EspeakSettings

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def espeak() -> EspeakSynthesizer:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (sudo apt install espeak-ng)")
    return EspeakSynthesizer(EspeakSettings())


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))


def test_pinyin_uses_tone_numbers_neutral_five_and_v_for_u_umlaut():
    assert to_pinyin("黑熊精") == "hei1 xiong2 jing1"
    assert to_pinyin("绿女略") == "lv4 nv3 lve4"
    assert to_pinyin("去学") == "qu4 xue2"  # after q/x pinyin writes ü as u, which espeak reads right
    assert to_pinyin("了吗") == "le5 ma5"  # a bare syllable would be read as tone 1
    assert to_pinyin("你好，走吧。") == "ni2 hao3, zou3 ba5."  # 3-3 sandhi; pauses kept


def test_mixed_text_is_cut_into_language_runs():
    runs = split_runs("Boss战有三个阶段，黑熊精 Black Bear Guai 很强！")
    assert [r.lang for r in runs] == ["en", "zh", "en", "zh"]
    assert runs[0] == Run("en", "Boss")
    assert runs[2].text.strip() == "Black Bear Guai"
    assert split_runs("，。！") == []
    assert split_runs("") == []


def test_parse_wav_reads_a_streamed_header():
    pcm = (np.sin(np.arange(2205) / 5) * 12000).astype("<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 0x7FFFF024) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 22050, 44100, 2, 16)
    data = b"data" + struct.pack("<I", 0x7FFFF000) + pcm  # sizes unset, as espeak writes to a pipe
    clip = parse_wav(header + fmt + data)
    assert clip.sample_rate == 22050 and len(clip.samples) == 2205
    assert np.allclose(clip.samples * 32768, np.frombuffer(pcm, "<i2"), atol=1)


def test_parse_wav_rejects_what_is_not_a_wav():
    with pytest.raises(SpeechSynthesisError, match="did not return a WAV"):
        parse_wav(b"oops")
    with pytest.raises(SpeechSynthesisError, match="no data chunk"):
        parse_wav(b"RIFF" + struct.pack("<I", 4) + b"WAVE")


def test_missing_binary_names_the_apt_package():
    with pytest.raises(EspeakNotFoundError, match="sudo apt install espeak-ng") as err:
        EspeakSynthesizer(EspeakSettings(command="espeak-ng-does-not-exist"))
    assert "tts.espeak.command" in str(err.value)


@needs_espeak
def test_is_a_speech_synthesizer(espeak):
    assert isinstance(espeak, SpeechSynthesizer)
    assert espeak.name == "espeak" and espeak.sample_rate == SAMPLE_RATE == 22050


@needs_espeak
@pytest.mark.parametrize("text", ["黑熊精是第一回的最终头目。", "The Black Bear Guai guards Black Wind Mountain."])
def test_speaks_chinese_and_english_at_the_stated_rate(espeak, text):
    clips = list(espeak.stream_tts(text))
    assert len(clips) == 1
    clip = clips[0]
    assert clip.sample_rate == 22050
    assert clip.seconds > 0.5
    assert rms(clip.samples) > 0.01  # not silence
    assert np.abs(clip.samples).max() <= 1.0


@needs_espeak
def test_mixed_sentence_yields_one_chunk_per_run(espeak):
    clips = list(espeak.stream_tts("Boss战的黑熊精 Black Bear Guai 很强。"))
    assert len(clips) == 4 and all(rms(c.samples) > 0.01 for c in clips)


@needs_espeak
def test_duration_grows_with_text(espeak):
    short = sum(c.seconds for c in espeak.stream_tts("大圣。"))
    long = sum(c.seconds for c in espeak.stream_tts("大圣来也，黑风山的黑熊精就在前头，跟俺老孙走一趟吧。"))
    assert long > 2 * short


@needs_espeak
def test_speed_and_pitch_come_from_the_settings():
    slow = EspeakSynthesizer(EspeakSettings(speed=100))
    fast = EspeakSynthesizer(EspeakSettings(speed=300))
    text = "Chapter one ends at the summit of Black Wind Mountain."
    assert sum(c.seconds for c in slow.stream_tts(text)) > 1.8 * sum(c.seconds for c in fast.stream_tts(text))


@needs_espeak
def test_text_that_looks_like_an_option_is_spoken_not_parsed(espeak):
    clips = list(espeak.stream_tts("--help me"))
    assert clips and rms(clips[0].samples) > 0.01


@needs_espeak
def test_an_unknown_voice_is_a_config_error_not_a_silent_fallback():
    with pytest.raises(ValueError, match=r"tts\.espeak\.voice_en"):
        EspeakSynthesizer(EspeakSettings(voice_en="no-such-voice"))
    assert EspeakSynthesizer(EspeakSettings(voice_zh="sit/cmn-Latn-pinyin", voice_en="en")).settings.voice_en == "en"


@needs_espeak
def test_an_espeak_failure_is_a_clear_error(espeak, tmp_path):
    broken = tmp_path / "espeak-ng"
    broken.write_text("#!/bin/sh\necho 'voice data missing' >&2\nexit 2\n")
    broken.chmod(0o755)
    synth = EspeakSynthesizer(EspeakSettings(command=str(broken)))
    with pytest.raises(SpeechSynthesisError, match=r"espeak-ng failed .*voice data missing"):
        list(synth.stream_tts("hello"))
