"""OpenAISpeechSynthesizer against a real HTTP server on loopback that streams OpenAI's /audio/speech."""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest

from modules.tts.base import SpeechSynthesisError, SpeechSynthesizer
from modules.tts.openai_tts import OpenAISpeechSynthesizer, PcmDecoder, WavDecoder
from modules.tts.service import backend_status, create_synthesizer, synthesize
from modules.tts.settings import OpenAITtsSettings, TtsSettings
from tests.modules.loopback import client_gone, dying_server, free_port, read_body, reset, serve

RATE = 24000
# 0.3 s of a tone as 16-bit PCM; sent in pieces whose edges fall mid-sample, as a network may cut them
TONE = (0.4 * np.sin(2 * np.pi * 330 * np.arange(int(0.3 * RATE)) / RATE) * 32767).astype("<i2")
PIECES = [TONE.tobytes()[i : i + 2001] for i in range(0, TONE.nbytes, 2001)]


def wav_header(rate: int, channels: int = 1, size: int = 0xFFFFFFFF) -> bytes:
    """A WAV header as a streaming server writes it: the data size unknown unless given."""
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    riff = 0xFFFFFFFF if size == 0xFFFFFFFF else 4 + 8 + len(fmt) + 8 + size
    return b"RIFF" + struct.pack("<I", riff) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + \
        b"data" + struct.pack("<I", size)  # fmt: skip


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict


@dataclass
class FakeServer:
    url: str = ""
    mode: str = "pcm"
    api_key: str | None = None
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)  # "gate": send the rest
    finished: threading.Event = field(default_factory=threading.Event)  # the whole body was written
    disconnected: threading.Event = field(default_factory=threading.Event)
    closing: threading.Event = field(default_factory=threading.Event)
    sent_slow: int = 0


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

        def _start(self, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def _send(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _end(self) -> None:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            fake.finished.set()

        def do_POST(self) -> None:
            body = read_body(self)
            fake.seen.append(Seen(self.path, dict(self.headers.items()), json.loads(body) if body else {}))
            if fake.api_key is not None and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                self._reply(401, json.dumps({"error": {"message": "Incorrect API key provided"}}).encode())
                return
            if self.path != "/v1/audio/speech":
                self._reply(404, b'{"detail": "Not Found"}')
                return
            mode = fake.mode
            if mode == "reset_once" and len(fake.seen) == 1:
                reset(self)
                return
            if mode == "500":
                error = {"error": {"message": "voice 'monkey' not found", "type": "invalid_request_error"}}
                self._reply(500, json.dumps(error).encode())
                return
            if mode == "json_200":
                self._reply(200, b'{"error": {"message": "quota exceeded"}}')
                return
            if mode == "hang_before":
                fake.closing.wait(2.0)
            kind = "audio/wav" if mode.startswith("wav") or mode == "not_wav" else "audio/pcm"
            if mode == "l16":
                kind = "audio/L16;rate=16000;channels=1"  # as wulewule's own /v1/audio/speech says it
            self._start(kind)
            if mode == "not_wav":
                self._send(b"ID3\x04 this is an mp3, not a wav file")
                self._end()
                return
            if mode == "empty":
                self._end()
                return
            if mode.startswith("wav"):
                rate = 16000 if mode == "wav_16k" else RATE
                channels = 2 if mode == "wav_stereo" else 1
                if channels == 2:
                    pcm = np.repeat(TONE, 2).tobytes()
                    self._send(wav_header(rate, 2, len(pcm)) + pcm + b"LIST\x04\x00\x00\x00junk")
                    self._end()
                    return
                head = wav_header(rate)
                self._send(head[:10])  # the header itself arrives in pieces
                self._send(head[10:])
            if mode == "slow":
                try:
                    for _ in range(400):
                        self._send(PIECES[0][:960])
                        fake.sent_slow += 1
                        time.sleep(0.02)
                except (BrokenPipeError, ConnectionResetError):
                    fake.disconnected.set()
                return
            self._send(PIECES[0])
            if mode == "gate":
                fake.release.wait(5.0)
            elif mode == "hang_mid":
                if client_gone(self, 2.0):
                    fake.disconnected.set()
                return
            elif mode == "cut_mid":
                self.close_connection = True  # the server dies mid-body: the chunked body never ends
                return
            for piece in PIECES[1:]:
                self._send(piece)
            self._end()

    return Handler


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()

    def stop() -> None:
        fake.closing.set()
        fake.release.set()

    with serve(make_handler(fake), on_stop=stop) as url:
        fake.url = f"{url}/v1"
        yield fake


def samples(clips) -> np.ndarray:
    return np.concatenate([c.samples for c in clips])


def speak(synth: OpenAISpeechSynthesizer, text: str = "大圣到此一游。") -> list:
    return list(synth.stream_tts(text))


def test_is_a_speech_synthesizer(server):
    synth = OpenAISpeechSynthesizer(server.url)
    assert isinstance(synth, SpeechSynthesizer)
    assert (synth.name, synth.sample_rate) == ("openai", 24000)


def test_empty_base_url_is_a_value_error():
    with pytest.raises(ValueError, match=r"tts\.openai\.base_url"):
        OpenAISpeechSynthesizer("")


def test_streams_pcm_and_sends_the_request(server):
    synth = OpenAISpeechSynthesizer(server.url + "/", "tts-1-hd", "onyx")
    clips = speak(synth)
    assert len(clips) > 1  # piece by piece, not one clip at the end
    assert {c.sample_rate for c in clips} == {RATE}
    assert np.array_equal(samples(clips), TONE.astype(np.float32) / 32768.0)  # no sample lost or split wrong
    (seen,) = server.seen
    assert seen.path == "/v1/audio/speech"
    assert seen.body == {"model": "tts-1-hd", "input": "大圣到此一游。", "voice": "onyx", "response_format": "pcm"}


def test_pcm_rate_from_the_content_type_and_no_model_when_empty(server):
    server.mode = "l16"
    synth = OpenAISpeechSynthesizer(server.url, model="")
    clips = speak(synth)
    assert {c.sample_rate for c in clips} == {16000} and synth.sample_rate == 16000
    assert "model" not in server.seen[0].body


def test_the_first_clip_arrives_before_the_server_finished(server):
    server.mode = "gate"
    stream = OpenAISpeechSynthesizer(server.url).stream_tts("大圣到此一游。")
    first = next(stream)
    assert len(first.samples) == len(PIECES[0]) // 2
    assert not server.finished.is_set()  # the server is still holding the rest back
    server.release.set()
    rest = list(stream)
    assert server.finished.wait(1.0)
    assert np.array_equal(samples([first, *rest]), TONE.astype(np.float32) / 32768.0)


@pytest.mark.parametrize("mode", ["wav", "wav_16k", "wav_stereo"])
def test_streams_wav_parsing_the_header(server, mode):
    server.mode = mode
    synth = OpenAISpeechSynthesizer(server.url, response_format="wav")
    clips = speak(synth)
    rate = 16000 if mode == "wav_16k" else RATE
    assert {c.sample_rate for c in clips} == {rate}
    assert synth.sample_rate == rate  # a WAV's own rate wins over the configured one
    assert np.array_equal(samples(clips), TONE.astype(np.float32) / 32768.0)  # stereo mixed down, LIST not audio
    assert server.seen[0].body["response_format"] == "wav"


def test_decoders_alone():
    pcm = PcmDecoder(8000)
    assert pcm.feed(b"\x01") is None and pcm.leftover == 1
    clip = pcm.feed(b"\x00\xff\x7f")
    assert clip is not None and np.allclose(clip.samples, [1 / 32768, 32767 / 32768])
    wav = WavDecoder()
    assert wav.feed(b"RIFF") is None
    with pytest.raises(ValueError, match="does not start as a WAV file"):
        WavDecoder().feed(b"OggS" + bytes(20))


def test_closing_the_iterator_drops_the_connection(server):
    server.mode = "slow"
    synth = OpenAISpeechSynthesizer(server.url)  # kept alive: the drop must come from close(), not from GC
    stream = synth.stream_tts("大圣到此一游。")
    next(stream)
    stream.close()
    assert server.disconnected.wait(1.0), "the server never saw the client go away"
    sent = server.sent_slow
    time.sleep(0.1)
    assert server.sent_slow == sent < 400
    server.mode = "pcm"
    assert speak(synth)  # the synthesizer is still usable afterwards


def test_the_whole_answer_through_the_speech_stream(server):
    synth = create_synthesizer(TtsSettings(backend="openai", openai=OpenAITtsSettings(base_url=server.url)), Path("."))
    assert isinstance(synth, OpenAISpeechSynthesizer)
    clip = synthesize("大圣到此一游。天命人，走吧！", synth, TtsSettings())
    assert len(server.seen) >= 2  # one request per sentence
    assert clip.sample_rate == RATE and clip.seconds == pytest.approx(0.3 * len(server.seen), abs=0.01)


def test_api_key_from_the_named_environment_variable(server, monkeypatch):
    server.api_key = "sk-tts"
    monkeypatch.setenv("MY_TTS_KEY", "sk-tts")
    synth = OpenAISpeechSynthesizer.from_settings(OpenAITtsSettings(base_url=server.url, api_key_env="MY_TTS_KEY"))
    assert speak(synth)
    assert server.seen[0].headers["Authorization"] == "Bearer sk-tts"


@pytest.mark.parametrize(("key", "says"), [(None, "no API key was sent"), ("sk-wrong", "the API key sent was refused")])
def test_401_names_the_key_variable(server, key, says):
    server.api_key = "sk-right"
    with pytest.raises(SpeechSynthesisError) as err:
        speak(OpenAISpeechSynthesizer(server.url, api_key=key, api_key_env="MY_TTS_KEY"))
    message = str(err.value)
    assert "HTTP 401" in message and "Incorrect API key provided" in message and says in message
    assert "MY_TTS_KEY" in message and "tts.openai.api_key_env" in message


def test_500_carries_the_servers_message(server):
    server.mode = "500"
    with pytest.raises(SpeechSynthesisError) as err:
        speak(OpenAISpeechSynthesizer(server.url))
    assert f"openai voice: {server.url}/audio/speech answered HTTP 500: voice 'monkey' not found" in str(err.value)
    assert len(server.seen) == 1


def test_404_says_to_check_the_v1_url(server):
    with pytest.raises(SpeechSynthesisError, match=r"HTTP 404.*tts\.openai\.base_url ends in /v1"):
        speak(OpenAISpeechSynthesizer(server.url.removesuffix("/v1")))


@pytest.mark.parametrize(
    ("mode", "fmt", "what"),
    [
        ("json_200", "pcm", "answered with application/json, not audio: quota exceeded"),
        ("not_wav", "wav", "does not start as a WAV file"),
        ("empty", "pcm", "held no audio at all"),
    ],
)
def test_garbage_is_a_clear_error(server, mode, fmt, what):
    server.mode = mode
    with pytest.raises(SpeechSynthesisError) as err:
        speak(OpenAISpeechSynthesizer(server.url, response_format=fmt))
    message = str(err.value)
    assert "did not send usable audio" in message and what in message and "tts.openai.base_url" in message


def test_a_reset_before_any_answer_is_retried_once(server):
    server.mode = "reset_once"
    assert np.array_equal(samples(speak(OpenAISpeechSynthesizer(server.url))), TONE.astype(np.float32) / 32768.0)
    assert len(server.seen) == 2


def test_a_stream_cut_mid_sentence_is_never_retried(server):
    server.mode = "cut_mid"
    got: list = []
    with pytest.raises(SpeechSynthesisError) as err:
        got.extend(OpenAISpeechSynthesizer(server.url).stream_tts("大圣到此一游。"))
    assert len(got) == 1  # the audio before the cut was played
    assert len(server.seen) == 1  # the sentence is not asked for again: it would be heard twice
    assert f"the speech server at {server.url} broke off in the middle of the sentence" in str(err.value)


def test_a_server_killed_mid_request():
    with dying_server() as (url, took):
        with pytest.raises(SpeechSynthesisError) as err:
            speak(OpenAISpeechSynthesizer(f"{url}/v1"))
        assert took.is_set()
    message = str(err.value)
    assert (
        f"cannot reach the speech server at {url}/v1 — is it running?" in message and "tts.openai.base_url" in message
    )


def test_connection_refused():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(SpeechSynthesisError) as err:
        speak(OpenAISpeechSynthesizer(url))
    message = str(err.value)
    assert f"openai voice: cannot reach the speech server at {url} — is it running?" in message
    assert "point tts.openai.base_url at a running server" in message


@pytest.mark.parametrize(
    ("mode", "where", "clips"), [("hang_before", "before any audio", 0), ("hang_mid", "in the middle", 1)]
)
def test_a_hung_server_times_out(server, mode, where, clips):
    server.mode = mode
    got: list = []
    started = time.monotonic()
    with pytest.raises(SpeechSynthesisError) as err:
        got.extend(OpenAISpeechSynthesizer(server.url, read_timeout=0.5).stream_tts("大圣到此一游。"))
    assert time.monotonic() - started < 1.5
    message = str(err.value)
    assert "sent nothing for 0.5 s" in message and where in message and "tts.openai.read_timeout" in message
    assert len(got) == clips
    assert len(server.seen) == 1
    if mode == "hang_mid":
        assert server.disconnected.wait(1.0)  # the timed-out response was closed


def test_backend_status_does_not_touch_the_network():
    settings = TtsSettings(backend="openai")
    status = backend_status(settings, Path("."))
    assert not status.ok and status.backend is None
    assert "tts.openai.base_url" in status.detail and "tts.openai.base_url" in status.fix
    with pytest.raises(ValueError, match=r"tts\.openai\.base_url"):
        create_synthesizer(settings, Path("."))
    url = f"http://127.0.0.1:{free_port()}/v1"
    status = backend_status(TtsSettings(backend="openai", openai=OpenAITtsSettings(base_url=url)), Path("."))
    assert status.ok and status.backend == "openai"
    assert url in status.detail and "checked on first use" in status.detail
