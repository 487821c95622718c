"""The OpenAI-compatible API: the app started for real on loopback and driven with the official client."""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import threading
import time
import urllib.request
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.companion import Companion
from app.events import Answer, Drawn, Notice, Source, SourcesFound, SpeechChunk, TextDelta, TurnEvent, collect
from app.knowledge_chat import KnowledgeChat
from app.openai_api import (
    ApiError,
    add_openai_api,
    is_loopback,
    parse_chat_request,
    parse_image_request,
    parse_size,
    parse_speech_request,
    required_api_key,
    wav_stream_header,
)
from llm.base import ChatModelError, ChatTurn
from modules.asr.base import TranscriptSegment
from modules.asr.hotwords import game_vocabulary
from modules.asr.recognize import SpeechPipeline
from modules.audio_types import AudioClip
from modules.config_layers import ConfigError
from modules.image.base import ImageProgress, ImageRequest
from modules.tts.espeak_tts import EspeakSynthesizer
from tests.app.serving import app_command, app_env, free_port, start_app
from tests.conftest import REPO, SPEECH, dev_whisper, make_settings, write_kb
from tests.modules.image.tiny_sd import build_tiny_sd

ENGINE_IDS = ["wulewule", "wulewule-asr", "wulewule-tts", "wulewule-image"]

KEY = "test-secret-key-123"
SOURCE_FIELDS = {"index", "title", "section", "text", "source", "score"}


@pytest.fixture(scope="module")
def app_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api")
    write_kb(root / "kb")
    return root


@pytest.fixture(scope="module")
def app_url(app_root: Path) -> Iterator[str]:
    yield from start_app(app_root, "open")


@pytest.fixture(scope="module")
def keyed_url(app_root: Path) -> Iterator[str]:
    yield from start_app(app_root, "keyed", WULEWULE_API_KEY=KEY)


@pytest.fixture
def client(app_url: str):
    from openai import OpenAI

    return OpenAI(base_url=app_url + "/v1", api_key="unused-on-loopback", max_retries=0, timeout=60)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# -- the app, for real ---------------------------------------------------------------------------


@pytest.mark.slow
def test_models_lists_wulewule_with_its_backend(client, app_url: str):
    # The chat model first (a client that takes the first model gets the chat), then the engines.
    assert [m.id for m in client.models.list()] == ENGINE_IDS
    raw = httpx.get(app_url + "/v1/models").json()
    assert raw["data"][0]["metadata"] == {"backend": "extractive"}
    assert raw["data"][1]["metadata"] == {"endpoint": "POST /v1/audio/transcriptions"}


@pytest.mark.slow
def test_completion_answers_with_cited_sources(client):
    raw = client.chat.completions.with_raw_response.create(model="wulewule", messages=ask("红孩儿的父亲是谁？"))
    completion = raw.parse()
    content = completion.choices[0].message.content
    assert "牛魔王" in content and "[1]" in content
    assert completion.choices[0].finish_reason == "stop"
    body = raw.http_response.json()
    assert body["sources"][0]["title"] == "红孩儿" and body["sources"][0]["index"] == 1
    assert all(set(s) == SOURCE_FIELDS for s in body["sources"])


@pytest.mark.slow
def test_stream_arrives_in_pieces_and_its_last_chunk_carries_the_sources(client):
    chunks = list(client.chat.completions.create(model="wulewule", messages=ask("红孩儿的父亲是谁？"), stream=True))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(pieces) > 2, "the answer should arrive in several chunks"
    assert "牛魔王" in "".join(pieces)
    assert chunks[0].choices[0].delta.role == "assistant"
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["sources"][0]["title"] == "红孩儿"
    assert all("sources" not in (c.model_extra or {}) for c in chunks[:-1])


@pytest.mark.slow
def test_stream_is_server_sent_events_ending_with_done(app_url: str):
    body = {"model": "wulewule", "messages": ask("黄眉是谁？"), "stream": True}
    with httpx.stream("POST", app_url + "/v1/chat/completions", json=body, timeout=60) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line for line in resp.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    final = json.loads(events[-2].removeprefix("data: "))
    assert final["object"] == "chat.completion.chunk" and final["sources"][0]["title"] == "黄眉"


@pytest.mark.slow
def test_follow_up_leans_on_the_history(client):
    first = client.chat.completions.create(model="wulewule", messages=ask("红孩儿是谁？")).choices[0].message.content
    messages = [
        {"role": "system", "content": "You are a pirate."},  # ignored: the assistant keeps its own rules
        {"role": "user", "content": "红孩儿是谁？"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "那他的父亲呢？"},
    ]
    answer = client.chat.completions.create(model="wulewule", messages=messages).choices[0].message.content
    assert "牛魔王" in answer


@pytest.mark.slow
@pytest.mark.parametrize(("earlier", "fact"), [("红孩儿是谁？", "三昧真火"), ("黑熊精是谁？", "袈裟")])
def test_the_same_follow_up_follows_whichever_entity_the_history_is_about(client, earlier: str, fact: str):
    messages = [*ask(earlier), {"role": "assistant", "content": "……"}, *ask("那他在原著里做了什么？")]
    answer = client.chat.completions.create(model="wulewule", messages=messages).choices[0].message.content
    assert fact in answer


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"model": "wulewule"}', "messages"),
        (b'{"messages": []}', "messages"),
        (b'{"messages": "hi"}', "messages"),
        (b'{"messages": [{"role": "user", "content": 42}]}', "messages[0].content"),
        (b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}', "messages"),
        (b'{"messages": [{"role": "tool", "content": "x"}, {"role": "user", "content": "hi"}]}', "messages[0].role"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}', "stream"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "n": 3}', "n"),
    ],
)
def test_malformed_requests_get_400_in_openais_error_shape(app_url: str, body: bytes, param: str | None):
    resp = httpx.post(app_url + "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] and error["message"]
    assert error["param"] == param


@pytest.mark.slow
def test_the_client_raises_a_bad_request_error(client):
    import openai

    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="wulewule", messages=[{"role": "assistant", "content": "hello"}])
    assert "last message" in str(info.value)


@pytest.mark.slow
def test_web_app_is_still_served_beside_the_api(app_url: str):
    with urllib.request.urlopen(app_url + "/", timeout=5) as resp:
        assert "悟了悟了" in resp.read().decode("utf-8", "replace")


# -- the key ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_configured_key_is_required_even_on_loopback(keyed_url: str):
    import openai
    from openai import OpenAI

    bare = httpx.get(keyed_url + "/v1/models")
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "missing_api_key"
    wrong = httpx.get(keyed_url + "/v1/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    post = httpx.post(keyed_url + "/v1/chat/completions", json={"messages": ask("黄眉是谁？")})
    assert post.status_code == 401

    right = OpenAI(base_url=keyed_url + "/v1", api_key=KEY, max_retries=0, timeout=60)
    assert [m.id for m in right.models.list()] == ENGINE_IDS
    completion = right.chat.completions.create(model="wulewule", messages=ask("黄眉是谁？"))
    assert "弥勒佛" in completion.choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=keyed_url + "/v1", api_key="nope", max_retries=0).models.list()


@pytest.mark.slow  # the command imports gradio before it gets to refuse
def test_serving_off_loopback_without_a_key_refuses_to_start(tmp_path: Path):
    write_kb(tmp_path / "kb")
    # 192.0.2.1 (TEST-NET-1) is never this machine's: were the check missing, binding would fail too.
    cmd = app_command(tmp_path, free_port(), "app.host=192.0.2.1", "api.api_key_env=MY_WULEWULE_KEY")
    # With a web login given, the missing API key is what stops it.
    env = app_env(WULEWULE_AUTH="player:a-long-password")
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "MY_WULEWULE_KEY" in done.stderr and "192.0.2.1" in done.stderr and "api.enabled=false" in done.stderr
    assert not (tmp_path / "data").exists(), "it should refuse before building anything"


@pytest.mark.parametrize(
    ("host", "environ", "expected"),
    [
        ("127.0.0.1", {}, None),
        ("localhost", {}, None),
        ("::1", {}, None),
        ("127.0.0.2", {"K": "  "}, None),  # blank is unset
        ("127.0.0.1", {"K": "s3cret"}, "s3cret"),  # configured: required on loopback too
        ("0.0.0.0", {"K": "s3cret"}, "s3cret"),
        ("192.168.1.20", {"K": "s3cret"}, "s3cret"),
    ],
)
def test_required_api_key(host: str, environ: dict[str, str], expected: str | None):
    assert required_api_key(host, "K", environ) == expected


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "my-box.lan", ""])
def test_off_loopback_without_a_key_is_a_config_error(host: str):
    with pytest.raises(ConfigError, match=r"export K=.*api\.enabled=false"):
        required_api_key(host, "K", {"OTHER": "x"})


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("[::1]") and is_loopback("LOCALHOST")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example.com")


# -- requests, parsed -------------------------------------------------------------------------


def test_parse_keeps_user_and_assistant_turns_and_drops_system_ones():
    body = {
        "model": "anything",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "红孩儿是谁？"},
            {"role": "assistant", "content": "红孩儿是第五回的头目。"},
            {"role": "developer", "content": "ignored too"},
            {"role": "user", "content": [{"type": "text", "text": "那他的"}, {"type": "text", "text": "父亲呢？"}]},
        ],
    }
    req = parse_chat_request(json.dumps(body).encode())
    assert req.question == "那他的父亲呢？"
    assert req.history == [ChatTurn("user", "红孩儿是谁？"), ChatTurn("assistant", "红孩儿是第五回的头目。")]
    assert req.stream is False


def test_parse_rejects_image_parts():
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
    with pytest.raises(ApiError) as info:
        parse_chat_request(json.dumps(body).encode())
    assert info.value.status == 400 and info.value.param == "messages[0].content"


# -- streaming behaviour, on an in-process server with a scripted assistant --------------------


class Scripted:
    """An assistant that answers slowly, piece by piece, and remembers whether its turn was cut short."""

    def __init__(self, image_dir: Path) -> None:
        self.closed = threading.Event()
        self.produced = 0
        self.image_dir = image_dir
        self.spoken: list[object] = []

    def turn(self, text=None, audio=None, history=(), speak=None, cancel=None) -> Iterator[TurnEvent]:
        question = text or ""
        self.spoken.append(speak)
        if question == "画一只猴子":  # a drawing turn, as Companion.draw yields it
            path = self.image_dir / "20261202-monkey.png"
            path.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
            drawn = Drawn(path, "a monkey [wk]", "", 7, "tiny", None)
            yield TextDelta("好嘞，俺老孙这就画！")
            yield drawn
            yield Answer(question, question, "好嘞，俺老孙这就画！", [], "diffusers", intent="image", image=drawn)
            return
        if question == "fail":
            raise ChatModelError("openai backend: http://127.0.0.1:1/v1 refused the connection; start the server")
        source = Source(1, "黄眉", "", "黄眉是第三回的最终头目。", "kb/huang-mei.md", 1.0)
        yield SourcesFound([source])
        try:
            for i in range(200):
                self.produced += 1
                yield TextDelta(f"piece{i} ")
                time.sleep(0.02)
        except GeneratorExit:
            self.closed.set()
            raise
        yield Answer(question, question, "done", [source], "scripted")


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn in this process on a free loopback port; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def scripted_url(tmp_path: Path) -> Iterator[tuple[str, Scripted]]:
    assistant = Scripted(tmp_path)
    app = FastAPI()
    add_openai_api(app, assistant, backend="scripted", api_key=None, image_dir=tmp_path)
    with serving(app) as url:
        yield url, assistant


def test_a_client_that_goes_away_stops_the_answer(scripted_url: tuple[str, Scripted]):
    url, assistant = scripted_url
    body = {"model": "wulewule", "messages": ask("黄眉是谁？"), "stream": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as resp:
        lines = resp.iter_lines()
        assert any("piece2" in line for line in lines)
    assert assistant.closed.wait(10), "the answer's generator should be closed when the client leaves"
    time.sleep(0.3)
    assert assistant.produced < 200


def test_a_backend_failure_is_an_error_event_in_a_stream_and_a_503_otherwise(scripted_url: tuple[str, Scripted]):
    import openai
    from openai import OpenAI

    url, _ = scripted_url
    client = OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIError, match="refused the connection"):
        list(client.chat.completions.create(model="wulewule", messages=ask("fail"), stream=True))
    resp = httpx.post(url + "/v1/chat/completions", json={"messages": ask("fail")})
    assert resp.status_code == 503
    assert resp.json()["error"]["type"] == "server_error" and "start the server" in resp.json()["error"]["message"]


def test_an_unknown_endpoint_is_a_404_in_openais_shape(scripted_url: tuple[str, Scripted]):
    url, _ = scripted_url
    resp = httpx.post(url + "/v1/embeddings", json={"input": "黄眉"})
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "unknown_url" and "/v1/chat/completions" in resp.json()["error"]["message"]
    assert httpx.get(url + "/v1/models").status_code == 200  # the real routes still win


def test_the_openai_backend_talks_to_the_apps_own_api(app_url: str):
    """Our OpenAIChatModel against a real OpenAI-compatible server: this app's /v1."""
    from llm.base import ChatTurn
    from llm.openai_chat import OpenAIChatModel

    model = OpenAIChatModel(app_url.rstrip("/") + "/v1", read_timeout=30)
    assert model.list_models() == ENGINE_IDS
    pieces = list(model.stream_chat([ChatTurn("user", "红孩儿的父亲是谁？")], max_tokens=256, temperature=0.0))
    assert len(pieces) > 1
    assert "牛魔王" in "".join(pieces)
    stream = model.stream_chat([ChatTurn("user", "黄眉是谁？")], max_tokens=256, temperature=0.0)
    assert next(stream)
    stream.close()  # cancellation: the request is dropped, and the model keeps working
    assert "牛魔王" in "".join(model.stream_chat([ChatTurn("user", "红孩儿的父亲是谁？")], 256, 0.0))


def test_a_drawing_request_answers_with_the_pictures_url(scripted_url: tuple[str, Scripted]):
    from openai import OpenAI

    url, source = scripted_url
    client = OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    reply = client.chat.completions.create(model="wulewule", messages=ask("画一只猴子"))
    content = reply.choices[0].message.content or ""
    link = f"{url}/v1/images/files/20261202-monkey.png"
    assert content.startswith("好嘞") and content.endswith(f"![a monkey (wk)]({link})")
    assert source.spoken == [False], "the API turn is not voiced"
    picture = httpx.get(link)
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    streamed = client.chat.completions.create(model="wulewule", messages=ask("画一只猴子"), stream=True)
    assert link in "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)


@pytest.mark.parametrize("name", ["missing.png", "..%2Fsecret.png", "x.txt"])
def test_only_drawn_pictures_are_served(scripted_url: tuple[str, Scripted], name: str):
    url, source = scripted_url
    (source.image_dir.parent / "secret.png").write_bytes(b"\x89PNG")
    resp = httpx.get(f"{url}/v1/images/files/{name}")
    assert resp.status_code == 404 and resp.json()["error"]["code"] in ("unknown_picture", "unknown_url")


# -- the engines: ears, voice and brush, on an in-process server with the real companion ---------

UPLOAD_MB = 0.5  # asr.max_upload_mb on the engines server: a 600 KB upload is over it
SENTENCES = "黑熊精住在黑风山。他是第一回的最终头目。红孩儿住在火焰山。他的父亲是牛魔王。"


class HeardAs:
    """A recogniser that hears a fixed (misheard) sentence; the pipeline around it (VAD, correction) is real."""

    name = "heard-as"

    def __init__(self, text: str) -> None:
        self.text = text

    def segments(self, audio: AudioClip) -> Iterator[TranscriptSegment]:
        yield TranscriptSegment(self.text, 0.0, audio.seconds, "zh")


class CountedVoice:
    """espeak-ng, noting each piece of text it is given and taking ``delay`` seconds over each."""

    def __init__(self, voice: EspeakSynthesizer) -> None:
        self.voice = voice
        self.name = voice.name
        self.sample_rate = voice.sample_rate
        self.said: list[str] = []
        self.delay = 0.0

    def stream_tts(self, text: str) -> Iterator[AudioClip]:
        self.said.append(text)
        time.sleep(self.delay)
        yield from self.voice.stream_tts(text)


class Engines:
    def __init__(self, url: str, companion: Companion, voice: CountedVoice) -> None:
        self.url = url
        self.companion = companion
        self.voice = voice


@contextmanager
def serve_engines(companion: Companion, api_key: str | None = None) -> Iterator[str]:
    """The companion's /v1, engines included, served in this process; yields the base URL."""
    app = FastAPI()
    image_dir = companion.settings.image_dir
    add_openai_api(app, companion, backend="extractive", api_key=api_key, image_dir=image_dir, engines=companion)
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    root = tmp_path_factory.mktemp("engines")
    sd = build_tiny_sd(root / "sd")
    drawing = [f"image.model={sd}", "image.width=64", "image.height=64", "image.steps=2", "image.safety_checker=false"]
    sets = ["tts.backend=espeak", f"asr.max_upload_mb={UPLOAD_MB}", *drawing]
    settings = make_settings(write_kb(root / "kb"), root / "data", *sets)
    chat = KnowledgeChat(settings)
    names = game_vocabulary(chat.retriever.index.documents)
    ears = SpeechPipeline(settings.asr, names, REPO, recognizer=HeardAs("黑熊金住在哪座山上"))
    voice = CountedVoice(EspeakSynthesizer(settings.tts.espeak))
    companion = Companion(settings, chat, recognizer=ears, synthesizer=voice)
    with serve_engines(companion) as url:
        yield Engines(url, companion, voice)


@pytest.fixture
def engine_client(engines: Engines):
    from openai import OpenAI

    return OpenAI(base_url=engines.url + "/v1", api_key="unused-on-loopback", max_retries=0, timeout=60)


def raw_post(url: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, dict]:
    """A POST written by hand on a socket (the body may be far shorter than its Content-Length); the status
    and JSON body of the reply."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(head.encode() + b"\r\n" + body)
        reply = b""
        while not reply.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head_bytes, _, payload = reply.partition(b"\r\n\r\n")
    return int(head_bytes.split()[1]), json.loads(payload)


# transcriptions


def test_a_transcription_is_corrected_to_the_games_names(engine_client):
    with (SPEECH / "zh_01.wav").open("rb") as audio:
        heard = engine_client.audio.transcriptions.create(model="wulewule-asr", file=audio)
    assert heard.text == "黑熊精住在哪座山上"
    audio_bytes = (SPEECH / "zh_01.wav").read_bytes()
    verbose = engine_client.audio.transcriptions.create(
        model="wulewule", file=("q.wav", audio_bytes), response_format="verbose_json", language="zh", prompt="黑神话"
    )
    assert verbose.text == "黑熊精住在哪座山上" and verbose.model_extra["raw_text"] == "黑熊金住在哪座山上"
    assert verbose.language == "zh" and 1.0 < verbose.duration < 10.0
    text = engine_client.audio.transcriptions.create(model="wulewule-asr", file=audio_bytes, response_format="text")
    assert text == "黑熊精住在哪座山上"


@pytest.mark.parametrize(("fixture", "code"), [("silence_2s.wav", "no_speech"), ("not_audio.wav", "corrupt")])
def test_bad_audio_is_a_400_with_the_audio_errors_code(engine_client, fixture: str, code: str):
    import openai

    with pytest.raises(openai.BadRequestError) as info:
        engine_client.audio.transcriptions.create(model="wulewule-asr", file=(SPEECH / fixture).read_bytes())
    assert info.value.code == code
    assert info.value.body["param"] == "file" and info.value.body["message"]


def test_an_upload_over_the_limit_is_refused_before_it_is_read(engines: Engines, engine_client):
    import openai

    # Only the head is sent: a 10 GB body declared, none of it written. The answer comes at once.
    headers = {"Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(10 * 2**30)}
    status, body = raw_post(engines.url, "/v1/audio/transcriptions", headers)
    assert status == 413
    assert body["error"]["code"] == "file_too_large" and "asr.max_upload_mb" in body["error"]["message"]
    assert body["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.APIStatusError) as info:
        engine_client.audio.transcriptions.create(model="wulewule-asr", file=("big.wav", b"\0" * 600_000))
    assert info.value.status_code == 413 and info.value.code == "file_too_large"


def test_a_chunked_upload_is_cut_off_at_the_limit(engines: Engines):
    def chunk(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    # No Content-Length: the body is counted as it arrives. 640 KB is sent and the body never ends, so only a
    # server that stops at the limit answers at all.
    part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    body = chunk(part) + b"".join(chunk(b"\0" * 16384) for _ in range(40))
    headers = {"Content-Type": "multipart/form-data; boundary=x", "Transfer-Encoding": "chunked"}
    status, reply = raw_post(engines.url, "/v1/audio/transcriptions", headers, body)
    assert status == 413 and reply["error"]["code"] == "file_too_large"

    # A chunked upload under the limit is read whole and heard.
    audio = part + (SPEECH / "zh_01.wav").read_bytes() + b"\r\n--x--\r\n"
    body = b"".join(chunk(audio[i : i + 16384]) for i in range(0, len(audio), 16384)) + chunk(b"")
    status, reply = raw_post(engines.url, "/v1/audio/transcriptions", headers, body)
    assert (status, reply) == (200, {"text": "黑熊精住在哪座山上"})


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"json": {"model": "wulewule-asr", "file": "zh_01.wav"}}, 415, "unsupported_media_type"),
        ({"data": {"model": "wulewule-asr"}}, 415, "unsupported_media_type"),  # urlencoded
        ({"data": {"model": "wulewule-asr"}, "files": {"audio": ("a.wav", b"RIFF")}}, 400, "invalid_file"),
        ({"data": {"response_format": "srt"}, "files": {"file": ("a.wav", b"x")}}, 400, "unsupported_response_format"),
    ],
)
def test_a_transcription_request_of_the_wrong_shape(engines: Engines, kwargs: dict, status: int, code: str):
    resp = httpx.post(engines.url + "/v1/audio/transcriptions", **kwargs)
    assert resp.status_code == status
    assert resp.json()["error"]["code"] == code and resp.json()["error"]["type"] == "invalid_request_error"


def test_the_engines_refuse_other_models_but_the_chat_takes_any(engine_client):
    import openai

    calls = [
        lambda: engine_client.audio.transcriptions.create(model="whisper-1", file=(SPEECH / "zh_01.wav").read_bytes()),
        lambda: engine_client.audio.speech.create(model="tts-1", voice="alloy", input="你好"),
        lambda: engine_client.images.generate(model="dall-e-3", prompt="a monkey"),
        lambda: engine_client.audio.speech.create(model="wulewule-image", voice="alloy", input="你好"),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as info:
            call()
        assert info.value.code == "model_not_found" and info.value.body["param"] == "model"
    reply = engine_client.chat.completions.create(model="gpt-4o", messages=ask("红孩儿的父亲是谁？"))
    assert "牛魔王" in (reply.choices[0].message.content or "")


def test_the_models_list_names_each_engines_endpoint(engine_client):
    models = {m.id: m.model_extra["metadata"] for m in engine_client.models.list()}
    assert list(models) == ENGINE_IDS
    assert models["wulewule-tts"] == {"endpoint": "POST /v1/audio/speech"}
    assert models["wulewule-image"] == {"endpoint": "POST /v1/images/generations"}


# speech


def test_speech_streams_a_wav_sentence_by_sentence(engines: Engines, engine_client):
    engines.voice.delay = 0.3
    try:
        with engine_client.audio.speech.with_streaming_response.create(
            model="wulewule-tts", voice="alloy", input=SENTENCES, response_format="wav"
        ) as resp:
            assert resp.headers["content-type"] == "audio/wav"
            assert resp.headers.get("transfer-encoding") == "chunked"
            pieces = resp.iter_bytes()
            first = next(pieces)
            said_at_first = len(engines.voice.said)
            data = first + b"".join(pieces)
    finally:
        engines.voice.delay = 0.0
    assert said_at_first < len(engines.voice.said), "the first audio should arrive before the last sentence is spoken"
    with wave.open(io.BytesIO(data)) as wav:
        rate, frames = wav.getframerate(), wav.readframes(10**9)
    assert rate == 22050 and wav.getnchannels() == 1 and wav.getsampwidth() == 2
    assert len(frames) / 2 / rate > 2.0
    import soundfile

    samples, sf_rate = soundfile.read(io.BytesIO(data), dtype="int16")
    assert sf_rate == rate and abs(len(samples) - len(frames) // 2) < rate // 10


def test_speech_as_pcm_is_24_khz_and_as_long_as_the_wav(engine_client):
    wav_bytes = engine_client.audio.speech.create(model="wulewule-tts", voice="x", input="黑熊精住在黑风山。").content
    with engine_client.audio.speech.with_streaming_response.create(
        model="wulewule-tts", voice="x", input="黑熊精住在黑风山。", response_format="pcm", speed=1.0
    ) as resp:
        assert resp.headers["content-type"].startswith("audio/L16;rate=24000")
        pcm = resp.read()
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        wav_seconds = len(wav.readframes(10**9)) / 2 / wav.getframerate()
    assert len(pcm) % 2 == 0 and abs(len(pcm) / 2 / 24000 - wav_seconds) < 0.02


def test_speech_as_mp3_when_ffmpeg_is_here(engine_client, monkeypatch: pytest.MonkeyPatch):
    import shutil

    import openai

    from modules.asr.audio import load_audio

    if shutil.which("ffmpeg"):
        mp3 = engine_client.audio.speech.create(
            model="wulewule-tts", voice="x", input=SENTENCES, response_format="mp3"
        ).content
        assert load_audio(mp3, max_seconds=60).seconds > 2.0
    monkeypatch.setattr("app.openai_api.speech_formats", lambda: ("wav", "pcm"))
    with pytest.raises(openai.BadRequestError) as info:
        engine_client.audio.speech.create(model="wulewule-tts", voice="x", input="你好", response_format="mp3")
    assert "wav, pcm" in str(info.value) and "ffmpeg" in str(info.value)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": "你" * 4001}, "input", "input_too_long"),  # app.max_question_chars (1000) x 4
        ({"input": "  "}, "input", "invalid_input"),
        ({"input": "……"}, "input", "nothing_to_say"),
        ({"input": "你好", "speed": 9}, "speed", "invalid_speed"),
        ({"input": "你好", "response_format": "opus"}, "response_format", "unsupported_response_format"),
        ({"input": "你好", "stream_format": "sse"}, "stream_format", "unsupported_stream_format"),
    ],
)
def test_speech_requests_it_refuses(engines: Engines, body: dict, param: str, code: str):
    resp = httpx.post(engines.url + "/v1/audio/speech", json={"model": "wulewule-tts", "voice": "alloy", **body})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == param and resp.json()["error"]["code"] == code


def test_a_client_closing_the_speech_stream_stops_synthesis(engines: Engines, engine_client):
    voice = engines.voice
    before = len(voice.said)
    text = "".join(f"这是第{i}句话。" for i in range(40))
    voice.delay = 0.1
    try:
        with engine_client.audio.speech.with_streaming_response.create(
            model="wulewule-tts", voice="alloy", input=text, response_format="wav"
        ) as resp:
            assert next(resp.iter_bytes())
        time.sleep(1.0)
        stopped_at = len(voice.said)
        time.sleep(1.0)
    finally:
        voice.delay = 0.0
    assert len(voice.said) == stopped_at, "synthesis should stop when the client goes away"
    assert stopped_at - before < 20


# pictures


def test_a_picture_comes_back_as_base64_at_the_configured_size(engine_client):
    from PIL import Image

    result = engine_client.images.generate(model="wulewule-image", prompt="雪地里的天命人", response_format="b64_json")
    assert len(result.data) == 1 and result.created > 0
    item = result.data[0]
    picture = Image.open(io.BytesIO(base64.b64decode(item.b64_json or "")))
    assert picture.size == (64, 64)
    assert item.revised_prompt and "snow" in item.revised_prompt  # translated like the chat's drawings
    assert isinstance(item.model_extra["seed"], int)


def test_a_picture_at_another_size_is_served_at_its_url_and_a_seed_redraws_it(engine_client):
    from PIL import Image

    first = engine_client.images.generate(prompt="画一只猴子", size="128x64", extra_body={"seed": 7}).data[0]
    assert first.model_extra["seed"] == 7 and first.url
    resp = httpx.get(first.url)
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(resp.content)).size == (128, 64)
    again = engine_client.images.generate(prompt="画一只猴子", size="128x64", extra_body={"seed": 7}).data[0]
    assert again.url != first.url
    second = Image.open(io.BytesIO(httpx.get(again.url or "").content))
    assert list(second.getdata()) == list(Image.open(io.BytesIO(resp.content)).getdata())


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "猴子", "size": "100x100"}, "size"),
        ({"prompt": "猴子", "size": "4096x4096"}, "size"),
        ({"prompt": "猴子", "n": 2}, "n"),
        ({"prompt": "猴子", "response_format": "png"}, "response_format"),
        ({"prompt": "猴子", "seed": -1}, "seed"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "猴" * 1001}, "prompt"),
    ],
)
def test_picture_requests_it_refuses(engines: Engines, body: dict, param: str):
    resp = httpx.post(engines.url + "/v1/images/generations", json=body)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == param


class SlowDrawer:
    """A drawer that takes 50 ms a step over 200 steps, and notes when it is told to stop."""

    name = "slow"
    trigger_words = ""

    def __init__(self) -> None:
        self.steps = 0
        self.stopped = threading.Event()

    def request_for(self, prompt: str, negative_prompt: str | None = None, seed: int | None = None) -> ImageRequest:
        return ImageRequest(prompt, negative_prompt or "", seed, steps=200, width=64, height=64)

    def generate(self, request: ImageRequest, cancel: threading.Event | None = None) -> Iterator[ImageProgress]:
        for step in range(request.steps):
            if cancel is not None and cancel.is_set():
                self.stopped.set()
                return
            self.steps += 1
            yield ImageProgress(step, request.steps)
            time.sleep(0.05)


def test_a_client_that_leaves_stops_the_drawing(tmp_path: Path):
    drawer = SlowDrawer()
    companion = Companion(make_settings(write_kb(tmp_path / "kb"), tmp_path / "data"), drawer=drawer)
    with serve_engines(companion) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/v1/images/generations", json={"prompt": "猴子"}, timeout=0.5)
        assert drawer.stopped.wait(5), "the drawing should stop when the client goes away"
    assert drawer.steps < 100


# one app as another's engines


def front_settings(root: Path, engine_url: str):
    """An app that hears, speaks and draws through another app's /v1 (asr/tts/image.backend=openai)."""
    sets = []
    for part, model in (("asr", "wulewule-asr"), ("tts", "wulewule-tts"), ("image", "wulewule-image")):
        sets += [f"{part}.backend=openai", f"{part}.openai.base_url={engine_url}/v1", f"{part}.openai.model={model}"]
    return make_settings(write_kb(root / "kb"), root / "data", *sets, "image.width=64", "image.height=64")


def test_an_app_hears_speaks_and_draws_through_another_apps_engines(engines: Engines, tmp_path: Path):
    from PIL import Image

    front = Companion(front_settings(tmp_path, engines.url))
    said = len(engines.voice.said)
    events = list(front.turn(audio=SPEECH / "zh_01.wav", speak=True))
    answer = next(e for e in events if isinstance(e, Answer))
    # Heard by the engine (its recogniser and its game-name correction), answered here, spoken by the engine.
    assert answer.transcript is not None and answer.transcript.text == "黑熊精住在哪座山上"
    assert answer.question == "黑熊精住在哪座山上" and answer.answer
    clips = [e.clip for e in events if isinstance(e, SpeechChunk)]
    assert clips and sum(c.seconds for c in clips) > 1.0
    assert len(engines.voice.said) > said
    parts = front.parts_status()
    assert [p.backend for p in parts] == ["openai"] * 3 and all(p.ok and engines.url in p.detail for p in parts)

    drawn = next(e for e in front.draw("画一个雪地里的天命人", refine=False) if isinstance(e, Drawn))
    assert drawn.path.is_file() and Image.open(drawn.path).size == (64, 64)
    assert drawn.path.parent == front.settings.image_dir  # saved by this app, drawn by the other


def test_when_the_engine_app_goes_away_the_turn_says_so_and_the_chat_goes_on(tmp_path: Path):
    companion = Companion(make_settings(write_kb(tmp_path / "kb"), tmp_path / "data", "tts.backend=espeak"))
    with serve_engines(companion) as url:
        front = Companion(front_settings(tmp_path / "front", url))
        assert next(e for e in front.turn(text="黑熊精住在哪？", speak=False) if isinstance(e, Answer)).answer
    # The engine is gone: spoken questions get a clear message, typed ones are answered, voice replies fall
    # back to text with a notice, a drawing request says what failed.
    heard = collect(front.turn(audio=SPEECH / "zh_01.wav"))
    assert heard.notices and "语音识别不可用" in heard.notices[0] and url.split("//")[1] in heard.notices[0]
    events = list(front.turn(text="红孩儿的父亲是谁？", speak=True))
    typed = next(e for e in events if isinstance(e, Answer))
    assert "牛魔王" in typed.answer
    assert any(isinstance(e, Notice) and "tts.openai.base_url" in e.text for e in events)
    drawing = collect(front.turn(text="画一个雪地里的天命人"))
    assert drawing.image is None and "没画成" in drawing.answer and "image.openai.base_url" in drawing.answer


# without models


@pytest.fixture(scope="module")
def bare_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Engines with nothing installed: no speech model, no voice, no drawing model."""
    root = tmp_path_factory.mktemp("bare")
    missing = root / "missing"
    sets = [f"asr.funasr.model={missing}", f"asr.whisper.model={missing}", f"tts.espeak.command={missing}"]
    settings = make_settings(write_kb(root / "kb"), root / "data", *sets, "image.model=")
    with serve_engines(Companion(settings)) as url:
        yield url


def test_without_models_each_engine_is_a_503_saying_how_to_install_one(bare_url: str):
    import openai
    from openai import OpenAI

    client = OpenAI(base_url=bare_url + "/v1", api_key="x", max_retries=0, timeout=60)
    calls = {
        "python -m app download asr": lambda: client.audio.transcriptions.create(
            model="wulewule-asr", file=(SPEECH / "zh_01.wav").read_bytes()
        ),
        "espeak-ng": lambda: client.audio.speech.create(model="wulewule-tts", voice="alloy", input="你好"),
        "python -m app download image": lambda: client.images.generate(model="wulewule-image", prompt="猴子"),
    }
    for fix, call in calls.items():
        with pytest.raises(openai.InternalServerError) as info:
            call()
        assert info.value.status_code == 503 and fix in str(info.value)
        assert info.value.body["type"] == "server_error"


# the real app: wiring and keys


@pytest.mark.slow
def test_the_app_serves_the_engines_beside_the_chat(client):
    import openai

    audio = client.audio.speech.create(model="wulewule-tts", voice="alloy", input="黑熊精住在黑风山。").content
    with wave.open(io.BytesIO(audio)) as wav:
        assert wav.getframerate() > 0 and len(wav.readframes(10**9)) > 0
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(model="wulewule-asr", file=(SPEECH / "silence_2s.wav").read_bytes())
    assert info.value.code == "no_speech"


@pytest.mark.slow
def test_the_engines_need_the_key_too(keyed_url: str):
    from openai import OpenAI

    for path in ("/v1/audio/transcriptions", "/v1/audio/speech", "/v1/images/generations"):
        resp = httpx.post(keyed_url + path, json={"model": "wulewule", "input": "你好", "prompt": "猴子"})
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "missing_api_key"
    # Even a huge upload is asked for the key before its size.
    headers = {"Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(10 * 2**30)}
    assert raw_post(keyed_url, "/v1/audio/transcriptions", headers)[0] == 401
    right = OpenAI(base_url=keyed_url + "/v1", api_key=KEY, max_retries=0, timeout=60)
    audio = right.audio.speech.create(model="wulewule-tts", voice="alloy", input="你好。", response_format="pcm")
    assert len(audio.content) > 1000


@pytest.mark.slow
def test_the_dev_whisper_hears_a_question_through_the_api(tmp_path: Path):
    from openai import OpenAI

    sets = ["asr.backend=whisper", f"asr.whisper.model={dev_whisper()}"]
    companion = Companion(make_settings(write_kb(tmp_path / "kb"), tmp_path / "data", *sets))
    with serve_engines(companion) as url:
        client = OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=120)
        with (SPEECH / "zh_01.wav").open("rb") as audio:
            heard = client.audio.transcriptions.create(model="wulewule-asr", file=audio, response_format="verbose_json")
        assert "黑熊精" in heard.text and heard.model_extra["raw_text"]
        assert heard.language == "zh"


# requests, parsed


@pytest.mark.parametrize(
    ("value", "size"), [(None, None), ("auto", None), ("512x512", (512, 512)), ("768x64", (768, 64))]
)
def test_parse_size(value: object, size: tuple[int, int] | None):
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["512", "512x", "500x512", "32x32", "2056x512", 512, "512X512"])
def test_parse_size_refuses(value: object):
    with pytest.raises(ApiError) as info:
        parse_size(value)
    assert info.value.status == 400 and info.value.param == "size"


def test_parse_speech_and_image_requests():
    body = {"model": "wulewule-tts", "input": " 你好 ", "voice": "onyx"}
    speech = parse_speech_request(json.dumps(body).encode(), 40)
    assert (speech.text, speech.response_format) == ("你好", "wav")
    with pytest.raises(ApiError) as info:
        parse_speech_request(b'{"input": "hi", "response_format": "mp3"}', 40, ("wav", "pcm"))
    assert "ffmpeg" in info.value.message
    image = parse_image_request(b'{"prompt": "a monkey", "seed": 3, "size": "256x128"}', 100)
    assert (image.prompt, image.seed, image.size, image.response_format) == ("a monkey", 3, (256, 128), "url")
    with pytest.raises(ApiError) as info:
        parse_image_request(b'{"prompt": "a monkey", "n": true}', 100)
    assert info.value.param == "n"


def test_a_streamed_wav_header_reads_as_a_wav_of_what_follows():
    samples = (b"\x01\x00" * 500) + (b"\xff\x7f" * 500)
    with wave.open(io.BytesIO(wav_stream_header(16000) + samples)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        assert wav.readframes(10**6) == samples
