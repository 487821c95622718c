"""OpenAIRecognizer against a real HTTP server on loopback that speaks OpenAI's /audio/transcriptions."""

from __future__ import annotations

import io
import json
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest

from modules.asr.base import RecognitionError, SpeechRecognizer
from modules.asr.openai_asr import OpenAIRecognizer, wav_16k
from modules.asr.recognize import SpeechPipeline, backend_status, create_recognizer
from modules.asr.settings import AsrSettings, OpenAIAsrSettings
from modules.audio_types import AudioClip
from tests.modules.loopback import dying_server, free_port, read_body, reset, serve

HEARD = "黑熊金在哪里打？"  # misheard: the pipeline's correction makes it 黑熊精


@dataclass
class Upload:
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    wav: bytes | None


@dataclass
class FakeServer:
    url: str = ""
    mode: str = "ok"
    text: str = HEARD
    api_key: str | None = None
    seen: list[Upload] = field(default_factory=list)
    closing: threading.Event = field(default_factory=threading.Event)


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], bytes | None]:
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    form: dict[str, str] = {}
    wav = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if name == "file":
            wav = payload
        else:
            form[str(name)] = payload.decode()
    return form, wav


def make_handler(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            form, wav = parse_multipart(self.headers.get("Content-Type", ""), read_body(self))
            fake.seen.append(Upload(self.path, dict(self.headers.items()), form, wav))
            if fake.api_key is not None and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                self._reply(401, json.dumps({"error": {"message": "Incorrect API key provided"}}).encode())
                return
            if self.path != "/v1/audio/transcriptions":
                self._reply(404, b'{"detail": "Not Found"}')
                return
            mode = fake.mode
            if mode == "reset_always" or (mode == "reset_once" and len(fake.seen) == 1):
                reset(self)
                return
            if mode == "hang":
                fake.closing.wait(2.0)
            if mode == "500":
                error = {"error": {"message": "CUDA out of memory", "type": "server_error", "code": None}}
                self._reply(500, json.dumps(error).encode())
            elif mode == "html":
                self._reply(200, b"<html><body>It works!</body></html>", "text/html")
            elif mode == "no_text":
                self._reply(200, b'{"transcript": "nope"}')
            else:
                answer = {"text": fake.text}
                if mode == "verbose":
                    answer |= {"language": "english", "duration": 1.0}
                self._reply(200, json.dumps(answer, ensure_ascii=False).encode())

    return Handler


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    with serve(make_handler(fake), on_stop=fake.closing.set) as url:
        fake.url = f"{url}/v1"
        yield fake


def clip(seconds: float = 0.5, rate: int = 16000) -> AudioClip:
    t = np.arange(int(seconds * rate)) / rate
    return AudioClip((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)


def heard(recognizer: OpenAIRecognizer, audio: AudioClip | None = None) -> list:
    return list(recognizer.segments(audio or clip()))


def test_is_a_speech_recognizer(server):
    recognizer = OpenAIRecognizer(server.url)
    assert isinstance(recognizer, SpeechRecognizer)
    assert recognizer.name == "openai"


def test_empty_base_url_is_a_value_error():
    with pytest.raises(ValueError, match=r"asr\.openai\.base_url"):
        OpenAIRecognizer(" ")


def test_sends_the_clip_as_16k_wav_with_the_form_fields(server):
    audio = clip(0.75)
    (segment,) = heard(OpenAIRecognizer(server.url + "/", "whisper-large-v3"), audio)
    assert segment.text == HEARD
    assert (segment.start, segment.end) == (0.0, pytest.approx(0.75))
    assert segment.language == "zh"  # guessed from the Han characters
    (upload,) = server.seen
    assert upload.path == "/v1/audio/transcriptions"
    assert upload.form == {"model": "whisper-large-v3", "response_format": "json"}  # no language when auto
    with wave.open(io.BytesIO(upload.wav)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes()) == (16000, 1, 2, 12000)
        sent = np.frombuffer(wav.readframes(12000), "<i2") / 32767.0
    assert np.allclose(sent, audio.samples, atol=1e-4)
    assert "Authorization" not in upload.headers


def test_an_empty_model_is_not_sent(server):
    heard(OpenAIRecognizer(server.url, model=""))
    assert server.seen[0].form == {"response_format": "json"}


def test_other_rates_are_resampled_to_16k(server):
    heard(OpenAIRecognizer(server.url), clip(0.5, rate=8000))
    with wave.open(io.BytesIO(server.seen[0].wav)) as wav:
        assert (wav.getframerate(), wav.getnframes()) == (16000, 8000)
    assert wav_16k(clip(0.25))[:4] == b"RIFF"


@pytest.mark.parametrize("language", ["zh", "en"])
def test_a_set_language_is_sent_and_reported(server, language):
    server.text = "where is the black bear guai"
    (segment,) = heard(OpenAIRecognizer(server.url, language=language))
    assert server.seen[0].form["language"] == language
    assert segment.language == language


def test_the_servers_language_and_english_text(server):
    server.mode, server.text = "verbose", "Where is the Black Bear Guai?"
    (segment,) = heard(OpenAIRecognizer(server.url))
    assert segment.language == "en"


def test_traditional_characters_become_simplified(server):
    server.text = "黑熊精在哪裡打？"
    assert heard(OpenAIRecognizer(server.url))[0].text == "黑熊精在哪里打？"


def test_nothing_heard_is_no_segment(server):
    server.text = "  "
    assert heard(OpenAIRecognizer(server.url)) == []


def test_the_pipeline_still_corrects_game_terms(server):
    settings = AsrSettings(backend="openai", openai=OpenAIAsrSettings(base_url=server.url))
    recognizer = create_recognizer(settings, [], Path("."))
    assert isinstance(recognizer, OpenAIRecognizer)
    pipeline = SpeechPipeline(settings, ["黑熊精", "黄眉"], Path("."), recognizer)
    raw = pipeline.recognize_phrase(clip())
    transcript = pipeline.transcript(raw, 0.5)
    assert transcript.raw_text == HEARD
    assert transcript.text == "黑熊精在哪里打？"
    assert transcript.backend == "openai"


def test_api_key_from_the_named_environment_variable(server, monkeypatch):
    server.api_key = "sk-asr"
    monkeypatch.setenv("MY_ASR_KEY", "sk-asr")
    recognizer = OpenAIRecognizer.from_settings(OpenAIAsrSettings(base_url=server.url, api_key_env="MY_ASR_KEY"))
    assert heard(recognizer)[0].text == HEARD
    assert server.seen[0].headers["Authorization"] == "Bearer sk-asr"


@pytest.mark.parametrize(("key", "says"), [(None, "no API key was sent"), ("sk-wrong", "the API key sent was refused")])
def test_401_names_the_key_variable(server, key, says):
    server.api_key = "sk-right"
    with pytest.raises(RecognitionError) as err:
        heard(OpenAIRecognizer(server.url, api_key=key, api_key_env="MY_ASR_KEY"))
    message = str(err.value)
    assert "HTTP 401" in message and "Incorrect API key provided" in message and says in message
    assert "MY_ASR_KEY" in message and "asr.openai.api_key_env" in message
    assert len(server.seen) == 1


def test_500_carries_the_servers_message_and_is_not_retried(server):
    server.mode = "500"
    with pytest.raises(RecognitionError) as err:
        heard(OpenAIRecognizer(server.url))
    message = str(err.value)
    assert message.startswith("openai speech recognition: ")
    assert f"{server.url}/audio/transcriptions answered HTTP 500: CUDA out of memory" in message
    assert len(server.seen) == 1


def test_404_says_to_check_the_v1_url(server):
    with pytest.raises(RecognitionError, match=r"HTTP 404.*asr\.openai\.base_url ends in /v1"):
        heard(OpenAIRecognizer(server.url.removesuffix("/v1")))


@pytest.mark.parametrize("mode", ["html", "no_text"])
def test_garbage_is_a_clear_error(server, mode):
    server.mode = mode
    with pytest.raises(RecognitionError) as err:
        heard(OpenAIRecognizer(server.url))
    message = str(err.value)
    assert "did not answer with a transcription" in message and "asr.openai.base_url" in message


def test_a_reset_connection_is_retried_once(server):
    server.mode = "reset_once"
    assert heard(OpenAIRecognizer(server.url))[0].text == HEARD
    assert len(server.seen) == 2


def test_a_connection_reset_twice_is_an_error(server):
    server.mode = "reset_always"
    with pytest.raises(RecognitionError) as err:
        heard(OpenAIRecognizer(server.url))
    assert len(server.seen) == 2  # once, and once more: no more
    message = str(err.value)
    assert f"the server at {server.url} hung up without answering, twice" in message
    assert "asr.openai.base_url" in message


def test_a_server_killed_mid_request():
    with dying_server() as (url, took):
        with pytest.raises(RecognitionError) as err:
            heard(OpenAIRecognizer(f"{url}/v1"))
        assert took.is_set()
    message = str(err.value)
    assert f"cannot reach the server at {url}/v1 — is it running?" in message and "asr.openai.base_url" in message


def test_connection_refused():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(RecognitionError) as err:
        heard(OpenAIRecognizer(url))
    message = str(err.value)
    assert f"openai speech recognition: cannot reach the server at {url} — is it running?" in message
    assert "point asr.openai.base_url at a running server" in message


def test_a_hung_server_times_out_without_a_retry(server):
    server.mode = "hang"
    started = time.monotonic()
    with pytest.raises(RecognitionError) as err:
        heard(OpenAIRecognizer(server.url, read_timeout=0.5))
    assert time.monotonic() - started < 1.5
    message = str(err.value)
    assert "no reply from" in message and "within 0.5 s" in message and "asr.openai.read_timeout" in message
    assert len(server.seen) == 1


def test_backend_status_does_not_touch_the_network():
    settings = AsrSettings(backend="openai")
    status = backend_status(settings, Path("."))
    assert not status.ok and status.backend is None
    assert "asr.openai.base_url" in status.detail and "asr.openai.base_url" in status.fix
    with pytest.raises(ValueError, match=r"asr\.openai\.base_url"):
        create_recognizer(settings, [], Path("."))
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: status still says ok
    status = backend_status(AsrSettings(backend="openai", openai=OpenAIAsrSettings(base_url=url)), Path("."))
    assert status.ok and status.backend == "openai"
    assert url in status.detail and "checked on first use" in status.detail
