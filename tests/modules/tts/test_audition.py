import json
import wave

import numpy as np
import pytest

from modules.model_files import ModelNotFoundError
from modules.tts.audition import audition, choose_candidate, list_candidates, run_audition
from modules.tts.settings import TtsSettings
from modules.tts.speaker import draw_speaker, load_speaker, save_speaker


def test_bad_arguments_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="n_candidates"):
        audition(None, tmp_path, n_candidates=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nothing to say"):
        audition(None, tmp_path, line="[1] 🐒")  # type: ignore[arg-type]


def test_the_command_without_a_model_names_the_key_and_the_download(tmp_path):
    settings = TtsSettings.model_validate({"chattts": {"model": str(tmp_path / "absent")}})
    with pytest.raises(ModelNotFoundError, match=r"tts\.chattts\.model.*python -m app download tts"):
        list(run_audition(settings, tmp_path, "大圣。", 2, tmp_path / "out"))


def test_choose_without_an_audition_says_how_to_run_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m app voice audition"):
        choose_candidate(tmp_path, 0, tmp_path / "v.pt")


@pytest.mark.slow  # two random-weight ChatTTS renders
def test_audition_renders_each_seed_and_choose_ships_one(chattts_synth, tmp_path, monkeypatch):
    monkeypatch.setattr(chattts_synth, "max_audio_tokens", 24)  # short renders: a candidate is one line
    out = tmp_path / "audition"
    candidates = audition(chattts_synth, out, line="俺老孙来也！", n_candidates=2, seed0=40)
    assert [(c.index, c.seed) for c in candidates] == [(0, 40), (1, 41)]
    for c in candidates:
        with wave.open(str(c.wav)) as wav:
            assert wav.getframerate() == 24000 and wav.getnframes() > 0
        speaker = load_speaker(c.speaker)
        assert np.array_equal(speaker.vector, draw_speaker(c.seed).vector)
        assert speaker.line == "俺老孙来也！" and speaker.model == str(chattts_synth.model_dir)
    assert list_candidates(out) == candidates
    index = json.loads((out / "candidates.json").read_text(encoding="utf-8"))
    assert index["checksums_verified"] is False

    dest = tmp_path / "voices" / "monkey_king.pt"
    save_speaker(draw_speaker(1), dest)  # the voice being replaced
    chosen = choose_candidate(out, 1, dest)
    assert np.array_equal(load_speaker(dest).vector, draw_speaker(41).vector)
    # Heard on weights that skipped ChatTTS's checksum: not an audition of the real voice, and it says so.
    assert not chosen.auditioned and "sha256" in chosen.note
    assert np.array_equal(load_speaker(dest.with_name("monkey_king.pt.bak")).vector, draw_speaker(1).vector)
    with pytest.raises(ValueError, match="no candidate 5"):
        choose_candidate(out, 5, dest)
    # The CLI's --choose path, writing to the configured voice file under the repo root.
    settings = TtsSettings.model_validate({"chattts": {"speaker": "voices/mk.pt"}})
    lines = list(run_audition(settings, tmp_path, "", 0, out, choose=0))
    assert str(tmp_path / "voices" / "mk.pt") in lines[0] and "not marked auditioned" in lines[1]
    assert np.array_equal(load_speaker(tmp_path / "voices" / "mk.pt").vector, draw_speaker(40).vector)
