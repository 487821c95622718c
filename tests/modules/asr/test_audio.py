"""The audio front end on every speech fixture, on Gradio-style arrays, and on each kind of bad input."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from modules.asr import audio
from modules.asr.audio import TARGET_RATE, AudioError, load_audio
from modules.audio_types import AudioClip
from tests.modules.asr.conftest import NO_SPEECH_FIXTURES, fixture, manifest

HAS_FFMPEG = shutil.which("ffmpeg") is not None
needs_ffmpeg = pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg is not installed (sudo apt install ffmpeg)")
WAV_RECORDS = [r for r in manifest() if r["file"].endswith(".wav") and r["kind"] != "corrupt" and r["seconds"] < 60]


def hide_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        audio.shutil, "which", lambda cmd, *a, **k: None if cmd in ("ffmpeg", "ffprobe") else real_which(cmd)
    )


def assert_standard(clip: AudioClip) -> None:
    assert clip.sample_rate == TARGET_RATE
    assert clip.samples.ndim == 1
    assert clip.samples.dtype == np.float32
    assert float(np.max(np.abs(clip.samples))) <= 1.0


@pytest.mark.parametrize("record", WAV_RECORDS, ids=[r["file"] for r in WAV_RECORDS])
def test_every_wav_fixture_loads_at_its_length(record):
    clip = load_audio(fixture(record["file"]), max_seconds=60)
    assert_standard(clip)
    assert clip.seconds == pytest.approx(record["seconds"], abs=0.01)


def test_fixtures_are_here():
    """Guards the parametrised test above against silently testing nothing."""
    if not manifest():
        pytest.skip(NO_SPEECH_FIXTURES)
    assert len(WAV_RECORDS) >= 28


def test_silence_noise_and_fragment_load_as_what_they_are():
    assert float(np.max(np.abs(load_audio(fixture("silence_2s.wav"), 60).samples))) == 0.0
    noise = load_audio(fixture("noise_2s.wav"), 60).samples
    assert 20 * np.log10(np.sqrt(np.mean(noise.astype(np.float64) ** 2))) == pytest.approx(-20, abs=1)
    assert load_audio(fixture("tiny_0.1s.wav"), 60).seconds == pytest.approx(0.1, abs=0.001)


def test_stereo_44k_becomes_the_same_16k_mono_signal():
    stereo = load_audio(fixture("stereo_44k.wav"), 60)
    mono = load_audio(fixture("zh_01.wav"), 60)
    assert_standard(stereo)
    n = min(len(stereo.samples), len(mono.samples))
    assert np.corrcoef(stereo.samples[:n], mono.samples[:n])[0, 1] > 0.95


def test_long_recording_is_refused_from_the_header(monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("the samples were decoded before the length check")

    monkeypatch.setattr("soundfile.read", no_decoding)
    with pytest.raises(AudioError) as err:
        load_audio(fixture("long_90s.wav"), max_seconds=60)
    assert err.value.code == "too_long"
    assert "60 s" in str(err.value) and "89.9 s" in str(err.value) and "asr.max_seconds" in str(err.value)


def test_long_recording_loads_under_a_higher_limit():
    clip = load_audio(fixture("long_90s.wav"), max_seconds=120)
    assert clip.seconds == pytest.approx(89.9, abs=0.1)


@needs_ffmpeg
def test_mp3_decodes_with_ffmpeg():
    clip = load_audio(fixture("question_mp3.mp3"), 60)
    assert_standard(clip)
    assert clip.seconds == pytest.approx(2.268, abs=0.06)
    assert float(np.max(np.abs(clip.samples))) > 0.3


@needs_ffmpeg
def test_mp3_bytes_decode_through_a_pipe():
    clip = load_audio(fixture("question_mp3.mp3").read_bytes(), 60)
    assert clip.seconds == pytest.approx(2.268, abs=0.06)


def test_mp3_without_ffmpeg_says_how_to_install_it(monkeypatch):
    hide_ffmpeg(monkeypatch)
    with pytest.raises(AudioError) as err:
        load_audio(fixture("question_mp3.mp3"), 60)
    assert err.value.code == "no_ffmpeg"
    message = str(err.value)
    assert "MP3" in message and "sudo apt install ffmpeg" in message and "brew install ffmpeg" in message


def test_wav_still_works_without_ffmpeg(monkeypatch):
    hide_ffmpeg(monkeypatch)
    assert load_audio(fixture("zh_01.wav"), 60).seconds == pytest.approx(2.013, abs=0.01)


@pytest.mark.parametrize("ffmpeg", [True, False], ids=["with-ffmpeg", "without-ffmpeg"])
def test_not_audio_is_corrupt(monkeypatch, ffmpeg):
    if ffmpeg and not HAS_FFMPEG:
        pytest.skip("ffmpeg is not installed")
    if not ffmpeg:
        hide_ffmpeg(monkeypatch)
    with pytest.raises(AudioError) as err:
        load_audio(fixture("not_audio.wav"), 60)
    assert err.value.code == "corrupt"
    assert isinstance(err.value, ValueError)


@needs_ffmpeg
def test_browser_webm_opus_recording_decodes(tmp_path):
    webm = tmp_path / "recording.webm"
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(fixture("zh_01.wav")), "-c:a", "libopus", str(webm)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"this ffmpeg cannot encode Opus: {done.stderr.decode()[-200:]}")
    clip = load_audio(webm, 60)
    assert clip.seconds == pytest.approx(2.013, abs=0.05)


def test_gradio_int16_stereo_tuple():
    rate = 44100
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    clip = load_audio((rate, np.stack([tone, tone], axis=1)), 60)
    assert_standard(clip)
    assert clip.seconds == pytest.approx(1.0, abs=0.001)
    assert float(np.max(np.abs(clip.samples))) == pytest.approx(0.5, abs=0.02)


def test_channels_first_array_and_float64_mono():
    data = np.zeros((2, 16000), dtype=np.float32)
    data[:, 100] = 0.25
    assert load_audio((16000, data), 60).seconds == pytest.approx(1.0)
    assert load_audio((16000, np.full(8000, 0.1)), 60).samples.dtype == np.float32


def test_uint8_audio_is_centred():
    clip = load_audio((8000, np.full(8000, 128, dtype=np.uint8)), 60)
    assert clip.seconds == pytest.approx(1.0)
    assert float(np.max(np.abs(clip.samples))) == pytest.approx(0.0, abs=1e-6)


def test_audioclip_passes_through_resampled():
    clip = load_audio(AudioClip(np.zeros(22050, dtype=np.float32), 22050), 60)
    assert clip.sample_rate == TARGET_RATE and clip.seconds == pytest.approx(1.0, abs=0.001)


def test_array_longer_than_limit_is_refused():
    with pytest.raises(AudioError) as err:
        load_audio((16000, np.zeros(16000 * 61, dtype=np.int16)), max_seconds=60)
    assert err.value.code == "too_long"


@pytest.mark.parametrize(
    ("source", "code"),
    [
        (b"", "empty"),
        ((16000, np.zeros(0, dtype=np.int16)), "empty"),
        ((16000, None), "empty"),
        ((0, np.zeros(10)), "unsupported"),
        ((16000.5, np.zeros(10)), "unsupported"),
        ((16000, np.array(["a", "b"])), "unsupported"),
        ((16000, np.zeros((2, 2, 2))), "unsupported"),
        ((16000, np.array([0.1, np.nan] * 100)), "corrupt"),
        (12345, "unsupported"),
        ((16000,), "unsupported"),
    ],
    ids=["empty-bytes", "empty-array", "none", "zero-rate", "float-rate", "strings", "3d", "nan", "int", "1-tuple"],
)
def test_bad_input_gets_a_coded_error(source, code):
    with pytest.raises(AudioError) as err:
        load_audio(source, 60)
    assert err.value.code == code
    assert str(err.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(AudioError, match="does not exist") as err:
        load_audio(tmp_path / "nope.wav", 60)
    assert err.value.code == "not_found"
    with pytest.raises(AudioError, match="folder"):
        load_audio(tmp_path, 60)


def test_too_large_is_refused_before_decoding(tmp_path):
    path = fixture("zh_01.wav")
    with pytest.raises(AudioError) as err:
        load_audio(path, 60, max_bytes=1000)
    assert err.value.code == "too_large" and "asr.max_upload_mb" in str(err.value)
    with pytest.raises(AudioError) as err:
        load_audio(path.read_bytes(), 60, max_bytes=1000)
    assert err.value.code == "too_large"


def test_wav_bytes_load_like_the_file():
    path = fixture("zh_02.wav")
    from_bytes = load_audio(path.read_bytes(), 60)
    from_path = load_audio(Path(path), 60)
    np.testing.assert_array_equal(from_bytes.samples, from_path.samples)


def test_max_seconds_must_be_positive():
    with pytest.raises(ValueError, match="max_seconds"):
        load_audio((16000, np.zeros(10)), 0)


def test_messages_start_with_a_chinese_summary():
    with pytest.raises(AudioError) as err:
        load_audio(fixture("long_90s.wav"), max_seconds=60)
    assert str(err.value).startswith("录音太长了 — the recording is longer than the 60 s limit")
    assert err.value.message == str(err.value)
