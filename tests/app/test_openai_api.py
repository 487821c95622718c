"""The OpenAI-compatible API: the app started for real on loopback and driven with the official client."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.events import Answer, Drawn, Source, SourcesFound, TextDelta, TurnEvent
from app.openai_api import ApiError, add_openai_api, is_loopback, parse_chat_request, required_api_key
from llm.base import ChatModelError, ChatTurn
from modules.config_layers import ConfigError
from tests.app.serving import app_command, app_env, free_port, start_app
from tests.conftest import REPO, write_kb

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
    assert [m.id for m in client.models.list()] == ["wulewule"]
    raw = httpx.get(app_url + "/v1/models").json()
    assert raw["data"][0]["metadata"] == {"backend": "extractive"}


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
    assert [m.id for m in right.models.list()] == ["wulewule"]
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


@pytest.fixture
def scripted_url(tmp_path: Path) -> Iterator[tuple[str, Scripted]]:
    import uvicorn
    from fastapi import FastAPI

    assistant = Scripted(tmp_path)
    app = FastAPI()
    add_openai_api(app, assistant, backend="scripted", api_key=None, image_dir=tmp_path)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", assistant
    server.should_exit = True
    thread.join(timeout=10)


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
    assert model.list_models() == ["wulewule"]
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
