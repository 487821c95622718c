"""ChatTTS on random weights in the real asset layout: loading, the checksum switch, voices and streaming."""

import logging
import shutil

import numpy as np
import pytest

from modules.model_files import ModelNotFoundError
from modules.tts.base import SpeechSynthesisError, SpeechSynthesizer
from modules.tts.chattts_tts import (
    ASSET_FILES,
    SAMPLE_RATE,
    ChatTTSSynthesizer,
    check_model_dir,
    checksums_skipped,
    pick_speaker,
)
from modules.tts.settings import ChatTTSSettings
from modules.tts.speaker import SpeakerEmbedding, draw_speaker, save_speaker, speaker_stats

pytestmark = pytest.mark.slow  # builds, loads and runs a random-weight ChatTTS: 30-60 s on 2 busy cores

SENTENCE = "黑熊精是第一回的最终头目。"


def audio(clips) -> np.ndarray:
    return np.concatenate([c.samples for c in clips])


def test_missing_model_names_the_key_and_the_download(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"tts\.chattts\.model.*python -m app download tts"):
        ChatTTSSynthesizer(ChatTTSSettings(), tmp_path / "nothing-here")


def test_incomplete_model_lists_what_is_missing(tiny_chattts_dir, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(tiny_chattts_dir / "asset" / "tokenizer", partial / "asset" / "tokenizer")
    with pytest.raises(ModelNotFoundError, match=r"Decoder\.safetensors.*python -m app download tts"):
        check_model_dir(partial, "models/ChatTTS")
    # Pointing at asset/ itself is accepted.
    assert check_model_dir(tiny_chattts_dir / "asset", "x") == tiny_chattts_dir


def test_loads_random_weights_with_checksums_off(chattts_synth):
    assert isinstance(chattts_synth, SpeechSynthesizer)
    assert chattts_synth.name == "chattts" and chattts_synth.sample_rate == SAMPLE_RATE == 24000
    assert chattts_synth.chat.has_loaded()


def test_the_checksum_check_is_on_by_default_and_rejects_random_weights(tiny_chattts_dir):
    from ChatTTS.utils import dl

    before = dl.check_model
    synth = ChatTTSSynthesizer(ChatTTSSettings(device="cpu"), tiny_chattts_dir)
    assert synth.verify_checksums
    with pytest.raises(SpeechSynthesisError, match=r"sha256.*python -m app download tts"):
        synth.load()
    assert dl.check_model is before
    assert all((tiny_chattts_dir / rel).is_file() for rel in ASSET_FILES)  # nothing renamed or removed


def test_skipping_checksums_still_requires_every_file(tiny_chattts_dir, tmp_path):
    import ChatTTS
    from ChatTTS.utils import dl

    copy = tmp_path / "copy"
    shutil.copytree(tiny_chattts_dir, copy)
    (copy / "asset" / "gpt" / "model.safetensors").unlink()
    before = dl.check_model
    chat = ChatTTS.Chat(logging.getLogger("test"))
    with checksums_skipped():
        assert dl.check_model is not before
        assert chat.download_models("custom", custom_path=str(copy)) is None
        assert chat.download_models("custom", custom_path=str(tiny_chattts_dir)) == str(tiny_chattts_dir)
    assert dl.check_model is before
    assert chat.download_models("custom", custom_path=str(tiny_chattts_dir)) is None  # the check is back


@pytest.fixture(scope="module")
def rendered(chattts_synth):
    """One sentence rendered, with the arguments ChatTTS's infer was called with (a pass-through recorder)."""
    seen = {}
    chat = chattts_synth.chat
    real_infer = chat.infer

    def recording_infer(text, **kwargs):
        seen.update(kwargs)
        return real_infer(text, **kwargs)

    chat.infer = recording_infer
    try:
        clips = list(chattts_synth.stream_tts(SENTENCE))
    finally:
        del chat.infer  # back to the class's method
    return clips, seen


def test_streams_a_sentence_in_chunks_at_24khz(rendered):
    clips, _ = rendered
    assert len(clips) >= 2  # streamed, not one block at the end
    assert all(c.sample_rate == 24000 and c.samples.dtype == np.float32 for c in clips)
    samples = audio(clips)
    assert np.all(np.isfinite(samples)) and np.sqrt(np.mean(samples**2)) > 1e-4
    assert 0.5 < len(samples) / 24000 < 10


def test_prosody_and_sampling_come_from_the_settings(chattts_synth, rendered):
    _, seen = rendered
    s = chattts_synth.settings
    refine, code = seen["params_refine_text"], seen["params_infer_code"]
    assert refine.prompt == f"[oral_{s.oral}][laugh_{s.laugh}][break_{s.pause}]" == "[oral_2][laugh_0][break_4]"
    assert code.prompt == "[speed_5]"
    assert (code.temperature, code.top_P, code.top_K, code.manual_seed) == (0.3, 0.7, 20, 2024)
    assert np.array_equal(code.spk_emb.numpy(), chattts_synth.speaker.vector)
    assert seen["stream"] is True and seen["split_text"] is False


def test_same_sentence_same_voice_same_audio(chattts_synth, rendered):
    assert np.array_equal(audio(chattts_synth.stream_tts(SENTENCE)), audio(rendered[0]))


def test_another_voice_differs_and_closing_early_frees_the_model(chattts_synth, rendered):
    chunks = chattts_synth.render(SENTENCE, speaker=draw_speaker(99))
    first_other = next(chunks)
    chunks.close()
    first = rendered[0][0].samples
    n = min(len(first), len(first_other.samples))
    assert not np.allclose(first[:n], first_other.samples[:n])
    assert chattts_synth._infer_lock.acquire(timeout=1)  # released: the next sentence can run
    chattts_synth._infer_lock.release()


def test_blank_text_yields_nothing(chattts_synth):
    assert list(chattts_synth.stream_tts("   ")) == []


def test_a_speaker_of_the_wrong_size_is_refused(chattts_synth):
    with pytest.raises(ValueError, match="768"):
        list(chattts_synth.render(SENTENCE, speaker=SpeakerEmbedding(np.ones(16))))


def test_voice_file_is_used_when_it_fits(tmp_path):
    stats = speaker_stats()
    voice = draw_speaker(11, stats)
    path = save_speaker(voice, tmp_path / "v.pt")
    assert np.array_equal(pick_speaker(path, 768, stats, seed=2024).vector, voice.vector)


@pytest.mark.parametrize("case", ["absent", "none", "wrong-size", "corrupt"])
def test_without_a_usable_voice_file_the_seed_names_the_voice(tmp_path, caplog, case):
    stats = speaker_stats()
    path = tmp_path / "v.pt"
    if case == "wrong-size":
        save_speaker(SpeakerEmbedding(np.ones(512)), path)
    elif case == "corrupt":
        path.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="modules.tts.chattts_tts"):
        chosen = pick_speaker(None if case == "none" else path, 768, stats, seed=2024)
    assert np.array_equal(chosen.vector, draw_speaker(2024, stats).vector)
    assert "tts.chattts.seed=2024" in caplog.text


def test_bad_generation_caps_are_refused(tiny_chattts_dir):
    with pytest.raises(ValueError, match="positive"):
        ChatTTSSynthesizer(ChatTTSSettings(), tiny_chattts_dir, max_audio_tokens=0)
