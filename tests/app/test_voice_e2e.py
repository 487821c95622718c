"""A whole voice turn through the real app and gradio_client: a spoken question in, a cited answer and a
spoken answer out. Voice input runs the dev Whisper-base; voice replies run espeak-ng; the knowledge base
is the shipped one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.ui import message_text
from tests.app.serving import start_app
from tests.conftest import REPO, SPEECH, dev_whisper

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("voice")
    (root / "kb").symlink_to(REPO / "assets" / "knowledge")
    env = {
        "WULEWULE_ASR__BACKEND": "whisper",
        "WULEWULE_ASR__WHISPER__MODEL": dev_whisper(),
        "WULEWULE_TTS__BACKEND": "espeak",
    }
    for url in start_app(root, "voice", **env):
        yield url + "/"


def voice_turn(app_url: str, wav: Path, speak: bool) -> tuple[list[dict], str | None]:
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    _box, _mic, messages, _stream, audio, _gallery = client.predict(
        "", handle_file(str(wav)), [], speak, [], api_name="/voice"
    )
    return messages, audio


def test_a_spoken_question_gets_a_cited_answer(app_url: str):
    messages, _ = voice_turn(app_url, SPEECH / "zh_01.wav", speak=False)
    user = [message_text(m["content"]) for m in messages if m["role"] == "user"]
    answers = [message_text(m["content"]) for m in messages if m["role"] == "assistant" and not m.get("metadata")]
    assert user and "黑熊精" in user[0]  # the transcript, game name corrected, stands as the question
    assert answers and "黑风山" in answers[0] and re.search(r"\[\d\]", answers[0])  # cited
    assert any((m.get("metadata") or {}).get("title", "").startswith("📚") for m in messages)


def test_silence_is_answered_with_a_request_to_say_it_again(app_url: str):
    messages, _ = voice_turn(app_url, SPEECH / "silence_2s.wav", speak=False)
    texts = [message_text(m["content"]) for m in messages]
    assert any("没有听清" in t for t in texts)
    assert not [m for m in messages if m["role"] == "user"]  # no empty question was sent on


def test_random_bytes_named_wav_get_a_clear_message(app_url: str):
    messages, _ = voice_turn(app_url, SPEECH / "not_audio.wav", speak=False)
    texts = " ".join(message_text(m["content"]) for m in messages)
    assert "音频" in texts or "audio" in texts.lower()


def test_the_answer_is_spoken_and_whisper_hears_it(app_url: str):
    from faster_whisper import WhisperModel

    messages, audio = voice_turn(app_url, SPEECH / "en_04.wav", speak=True)
    answer = next(message_text(m["content"]) for m in messages if m["role"] == "assistant" and not m.get("metadata"))
    assert "Yellow Wind" in answer
    assert audio, "a spoken answer should arrive"
    path = audio["path"] if isinstance(audio, dict) else audio
    model = WhisperModel(dev_whisper(), device="cpu", compute_type="int8", cpu_threads=2)
    segments, _info = model.transcribe(path, language="en", beam_size=5, vad_filter=False)
    heard = " ".join(s.text for s in segments).lower()
    assert "yellow" in heard or "wind" in heard or "chapter" in heard, heard
