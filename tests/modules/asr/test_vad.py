"""silero-vad on the fixtures: silence, noise and a word fragment hold no speech; questions do."""

from __future__ import annotations

import numpy as np
import pytest

from modules.asr.audio import load_audio
from modules.asr.vad import SileroVad, VadResult
from modules.audio_types import AudioClip
from tests.modules.asr.conftest import fixture

QUESTIONS = ["zh_01.wav", "zh_08.wav", "zh_15.wav", "en_01.wav", "en_04.wav", "stereo_44k.wav"]


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad()


@pytest.mark.parametrize("name", ["silence_2s.wav", "noise_2s.wav", "tiny_0.1s.wav"])
def test_no_speech(vad, name):
    clip = load_audio(fixture(name), 60)
    assert vad.regions(clip) == []
    assert vad.trim(clip) is None


@pytest.mark.parametrize("name", QUESTIONS)
def test_questions_are_speech_and_trimmed(vad, name):
    clip = load_audio(fixture(name), 60)
    found = vad.trim(clip)
    assert isinstance(found, VadResult)
    assert found.regions and found.speech_seconds > 0.8
    assert found.clip.seconds <= clip.seconds
    assert all(0 <= r.start < r.end <= clip.seconds + 1e-6 for r in found.regions)


def test_padding_silence_is_trimmed(vad):
    speech = load_audio(fixture("zh_01.wav"), 60)
    silence = np.zeros(2 * 16000, dtype=np.float32)
    padded = AudioClip(np.concatenate([silence, speech.samples, silence]), 16000)
    found = vad.trim(padded)
    assert found is not None
    assert found.clip.seconds < padded.seconds - 3.0  # most of the 4 s of silence is gone
    assert found.regions[0].start > 1.5


def test_long_speech_is_cut_at_pauses_into_window_sized_chunks(vad):
    clip = load_audio(fixture("long_90s.wav"), 120)
    found = vad.trim(clip)
    assert found is not None
    assert len(found.regions) >= 20  # 26 questions with 1 s pauses between them
    assert 4 <= len(found.chunks) <= 6
    assert all(c.clip.seconds <= vad.max_chunk_s + 2 * vad.pad_ms / 1000 for c in found.chunks)
    offsets = [c.offset for c in found.chunks]
    assert offsets == sorted(offsets)
    # every region lies inside some chunk
    for region in found.regions:
        assert any(c.offset <= region.start and region.end <= c.offset + c.clip.seconds + 1e-3 for c in found.chunks)


def test_a_question_is_one_chunk(vad):
    found = vad.trim(load_audio(fixture("zh_05.wav"), 60))
    assert found is not None and len(found.chunks) == 1
    assert found.chunks[0].clip.seconds == pytest.approx(found.clip.seconds, abs=0.01)


def test_model_loads_once_and_keeps_torch_threads():
    import torch

    from modules.asr import vad as vad_module

    before = torch.get_num_threads()
    first = vad_module._load()
    assert vad_module._load() is first
    assert torch.get_num_threads() == before


def test_bad_settings_and_rates():
    with pytest.raises(ValueError, match=r"asr\.vad_threshold"):
        SileroVad(threshold=1.5)
    with pytest.raises(ValueError, match="negative"):
        SileroVad(pad_ms=-1)
    with pytest.raises(ValueError, match="16000 Hz"):
        SileroVad().regions(AudioClip(np.zeros(8000, dtype=np.float32), 8000))
