"""Fixtures for the speech-synthesis tests: a random-weight ChatTTS folder and a loaded synthesizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.modules.tts.tiny_chattts import build_tiny_chattts

# Small generation caps keep random-weight inference to a few seconds on 2 cores: random weights
# almost never sample the end token, so every pass runs to its cap.
TEST_REFINE_TOKENS = 8
TEST_AUDIO_TOKENS = 72


@pytest.fixture(scope="session")
def tiny_chattts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete ChatTTS model folder (asset/ …) with random weights."""
    return build_tiny_chattts(tmp_path_factory.mktemp("tiny-chattts"))


@pytest.fixture(scope="session")
def chattts_synth(tiny_chattts_dir: Path):
    """A loaded ChatTTSSynthesizer on the random weights, shared by the tests (loading takes seconds)."""
    from modules.tts.chattts_tts import ChatTTSSynthesizer
    from modules.tts.settings import ChatTTSSettings

    synth = ChatTTSSynthesizer(
        ChatTTSSettings(device="cpu"),
        tiny_chattts_dir,
        None,
        verify_checksums=False,
        max_refine_tokens=TEST_REFINE_TOKENS,
        max_audio_tokens=TEST_AUDIO_TOKENS,
    )
    synth.load()
    return synth
