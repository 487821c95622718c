from pathlib import Path

import numpy as np
import pytest
import torch

from modules.tts.speaker import (
    FORMAT,
    SpeakerEmbedding,
    SpeakerFileError,
    draw_speaker,
    load_speaker,
    save_speaker,
    speaker_stats,
)

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "assets" / "voices" / "monkey_king.pt"


def test_a_seed_names_one_voice_in_chattts_format():
    a, b, c = draw_speaker(7), draw_speaker(7), draw_speaker(8)
    assert a.vector.dtype == np.float16 and a.vector.shape == (768,)
    assert np.array_equal(a.vector, b.vector)
    assert not np.array_equal(a.vector, c.vector)
    assert a.seed == 7 and not a.auditioned


def test_draws_follow_chattts_speaker_statistics():
    std, mean = speaker_stats()
    assert std.shape == mean.shape == (768,)
    draws = np.stack([draw_speaker(seed, (std, mean)).vector.astype(np.float32) for seed in range(400)])
    z = (draws.mean(axis=0) - mean) / (std / np.sqrt(len(draws)))
    assert np.mean(np.abs(z) < 4) > 0.99  # the sample mean sits where ChatTTS's statistics say


def test_save_and_load_round_trip(tmp_path):
    speaker = SpeakerEmbedding(draw_speaker(3).vector, seed=3, auditioned=True, line="俺老孙来也", model="models/x")
    path = save_speaker(speaker, tmp_path / "voices" / "v.pt")
    loaded = load_speaker(path)
    assert np.array_equal(loaded.vector, speaker.vector)
    assert (loaded.seed, loaded.auditioned, loaded.line, loaded.model) == (3, True, "俺老孙来也", "models/x")
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == FORMAT and payload["dim"] == 768


def test_the_file_carries_chattts_own_string_form(tmp_path):
    from ChatTTS.model.speaker import Speaker

    speaker = draw_speaker(5)
    payload = torch.load(save_speaker(speaker, tmp_path / "v.pt"), weights_only=True)
    assert isinstance(payload["spk_emb_str"], str)
    assert np.array_equal(Speaker._decode(payload["spk_emb_str"]), speaker.vector)


def test_a_bare_tensor_file_loads(tmp_path):
    torch.save(torch.ones(768, dtype=torch.float16), tmp_path / "bare.pt")
    assert load_speaker(tmp_path / "bare.pt").dim == 768


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"not a torch file", "not readable"),
        ({"format": "something-else", "spk_emb": torch.ones(4)}, "not a ChatTTS speaker file"),
        ({"format": FORMAT, "spk_emb": [1.0, 2.0]}, "not a tensor"),
        ({"format": FORMAT, "spk_emb": torch.ones(2, 2)}, "1-D"),
        ({"format": FORMAT, "spk_emb": torch.tensor([1.0, float("nan")])}, "NaN"),
    ],
)
def test_bad_voice_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "voice.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(SpeakerFileError, match=message):
        load_speaker(path)


def test_the_shipped_voice_is_what_its_metadata_says():
    shipped = load_speaker(SHIPPED)
    assert shipped.dim == 768
    if not shipped.auditioned:
        # Unauditioned, it must be exactly the seeded draw it claims to be (see assets/voices/README.md).
        assert shipped.seed is not None
        assert np.array_equal(shipped.vector, draw_speaker(shipped.seed).vector)
        assert "not auditioned" in shipped.note
    else:
        assert shipped.line and shipped.model
