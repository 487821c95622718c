"""OpenAIChatModel against a real HTTP server on loopback that speaks the chat-completions streaming protocol."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llm.base import ChatModel, ChatModelError, ChatTurn
from llm.openai_chat import ChatServerUnreachableError, OpenAIChatModel

PIECES = ["大圣", "到此", "一游。"]
MODELS = ["wulewule-7b", "another-model"]
QUESTION = [ChatTurn("system", "你是悟了悟了"), ChatTurn("user", "黑熊精在哪？")]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: dict | None


@dataclass
class FakeServer:
    """What the test asks the server to do, and what the server saw."""

    url: str = ""
    mode: str = "ok"
    api_key: str | None = None  # when set, requests must carry it
    seen: list[Seen] = field(default_factory=list)
    sent_slow: int = 0  # pieces written in "slow" mode
    disconnected: threading.Event = field(default_factory=threading.Event)
    closing: threading.Event = field(default_factory=threading.Event)

    def posts(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]

    def gets(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "GET"]


def chunk(content: str | None = None, finish: str | None = None, role: str | None = None) -> dict:
    delta = {k: v for k, v in (("role", role), ("content", content)) if v is not None}
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def make_handler(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _record(self) -> Seen:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path, dict(self.headers.items()), json.loads(raw) if raw else None)
            fake.seen.append(seen)
            return seen

        def _json(self, status: int, payload: object) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authorised(self) -> bool:
            if fake.api_key is None or self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                return True
            self._json(401, {"error": {"message": "Invalid API key", "type": "invalid_request_error"}})
            return False

        def _start_stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def _send(self, data: str | dict) -> None:
            text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
            body = f"data: {text}\n\n".encode()
            self.wfile.write(f"{len(body):x}\r\n".encode() + body + b"\r\n")
            self.wfile.flush()

        def _end(self) -> None:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def do_GET(self) -> None:
            self._record()
            if not self._authorised():
                return
            if self.path == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]})
            else:
                self._json(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            self._record()
            if not self._authorised():
                return
            if self.path != "/v1/chat/completions":
                self._json(404, {"detail": "Not Found"})
                return
            mode = fake.mode
            if mode == "500":
                self._json(500, {"error": {"message": "CUDA out of memory", "type": "internal_error"}})
                return
            if mode == "not_sse":
                self._json(200, {"choices": [{"message": {"role": "assistant", "content": "whole answer"}}]})
                return
            if mode == "sleep_before":
                fake.closing.wait(2.0)
            self._start_stream()
            self._send(chunk(role="assistant"))  # role-only first chunk, content absent
            if mode == "slow":
                try:
                    for i in range(400):
                        self._send(chunk(f"片{i}"))
                        fake.sent_slow += 1
                        time.sleep(0.02)
                except (BrokenPipeError, ConnectionResetError):
                    fake.disconnected.set()
                return
            self._send(chunk(PIECES[0]))
            if mode == "sleep_mid":
                fake.closing.wait(2.0)
            elif mode == "bad_json":
                self._send("{not json")
            elif mode == "no_choices":
                self._send({"id": "c1", "object": "chat.completion.chunk"})
            elif mode == "error_event":
                self._send({"error": {"message": "prompt is longer than the session length"}})
            elif mode == "cut_clean":
                self._end()  # a well-formed end of the body, but no [DONE]: the server gave up
                return
            elif mode == "cut_abrupt":
                self.close_connection = True  # drop the socket mid chunked body
                return
            for piece in PIECES[1:]:
                self._send(chunk(piece))
            self._send(chunk(finish="stop"))
            if mode != "no_done":
                self._send("[DONE]")
            self._end()

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up mid-reply are what several tests are about


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    httpd = QuietServer(("127.0.0.1", 0), make_handler(fake))
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    fake.closing.set()
    httpd.shutdown()
    httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(model: OpenAIChatModel) -> str:
    return "".join(model.stream_chat(QUESTION, 64, 0.2))


def test_is_a_chat_model(server):
    model = OpenAIChatModel(server.url)
    assert isinstance(model, ChatModel)
    assert model.name == "openai"


def test_empty_base_url_is_a_value_error():
    with pytest.raises(ValueError, match=r"llm\.openai\.base_url"):
        OpenAIChatModel("  ")


def test_streams_pieces_in_order_and_sends_the_request(server):
    model = OpenAIChatModel(server.url + "/", "wulewule-7b")
    assert list(model.stream_chat(QUESTION, 64, 0.2)) == PIECES
    (post,) = server.posts()
    assert post.path == "/v1/chat/completions"
    assert post.body == {
        "model": "wulewule-7b",
        "messages": [{"role": "system", "content": "你是悟了悟了"}, {"role": "user", "content": "黑熊精在哪？"}],
        "max_tokens": 64,
        "temperature": 0.2,
        "stream": True,
    }
    assert server.gets() == []  # a configured model needs no /models lookup


def test_a_finish_reason_without_done_is_a_complete_answer(server):
    server.mode = "no_done"
    assert ask(OpenAIChatModel(server.url, "m")) == "".join(PIECES)


def test_empty_model_uses_the_first_listed_and_asks_once(server):
    model = OpenAIChatModel(server.url)
    assert ask(model) == "".join(PIECES)
    assert ask(model) == "".join(PIECES)
    assert [p.body["model"] for p in server.posts()] == ["wulewule-7b", "wulewule-7b"]
    assert len(server.gets()) == 1
    assert model.model == "wulewule-7b"


def test_list_models_and_health(server):
    model = OpenAIChatModel(server.url)
    assert model.list_models() == MODELS
    assert model.health() is True
    assert OpenAIChatModel(f"http://127.0.0.1:{free_port()}/v1").health() is False


def test_api_key_goes_in_the_authorization_header(server):
    server.api_key = "sk-test"
    model = OpenAIChatModel(server.url, api_key="sk-test")
    assert ask(model) == "".join(PIECES)
    assert {s.headers.get("Authorization") for s in server.seen} == {"Bearer sk-test"}
    assert [s.method for s in server.seen] == ["GET", "POST"]


def test_no_key_sends_no_authorization_header(server):
    ask(OpenAIChatModel(server.url, "m"))
    assert "Authorization" not in server.posts()[0].headers


@pytest.mark.parametrize(("key", "says"), [(None, "no API key was sent"), ("sk-wrong", "the API key sent was refused")])
def test_401_names_the_api_key_setting(server, key, says):
    server.api_key = "sk-right"
    with pytest.raises(ChatModelError) as err:
        ask(OpenAIChatModel(server.url, "m", api_key=key))
    message = str(err.value)
    assert message.startswith("openai: ")
    assert "HTTP 401" in message and "Invalid API key" in message and says in message
    assert "OPENAI_API_KEY" in message and "llm.openai.api_key_env" in message


def test_500_reports_status_and_the_servers_message(server):
    server.mode = "500"
    with pytest.raises(ChatModelError) as err:
        ask(OpenAIChatModel(server.url, "m"))
    message = str(err.value)
    assert "HTTP 500" in message and "CUDA out of memory" in message and server.url in message
    assert not isinstance(err.value, ChatServerUnreachableError)


def test_404_says_to_check_the_v1_url(server):
    with pytest.raises(ChatModelError, match=r"HTTP 404.*ends in /v1"):
        ask(OpenAIChatModel(server.url.removesuffix("/v1"), "m"))


def test_models_listing_failure_when_auto_selecting(server):
    server.api_key = "sk-right"
    with pytest.raises(ChatModelError, match="HTTP 401"):
        ask(OpenAIChatModel(server.url))
    assert server.posts() == []  # no chat request without a model to name


@pytest.mark.parametrize("mode", ["sleep_before", "sleep_mid"])
def test_read_timeout(server, mode):
    server.mode = mode
    model = OpenAIChatModel(server.url, "m", read_timeout=0.5)
    got: list[str] = []
    started = time.monotonic()
    with pytest.raises(ChatModelError) as err:
        got.extend(model.stream_chat(QUESTION, 64, 0.2))
    assert time.monotonic() - started < 1.5  # gave up at the timeout, not when the server woke
    assert "no reply from the chat server" in str(err.value) and "within 0.5 s" in str(err.value)
    assert got == ([] if mode == "sleep_before" else PIECES[:1])


@pytest.mark.parametrize(
    ("mode", "what"),
    [
        ("bad_json", "a data line that is not JSON"),
        ("no_choices", "a chunk without choices"),
        ("not_sse", "a line that is not Server-Sent Events"),
    ],
)
def test_malformed_stream(server, mode, what):
    server.mode = mode
    with pytest.raises(ChatModelError) as err:
        ask(OpenAIChatModel(server.url, "m"))
    assert "malformed stream" in str(err.value) and what in str(err.value)


def test_error_event_mid_stream_carries_the_servers_message(server):
    server.mode = "error_event"
    with pytest.raises(ChatModelError, match="reported an error mid-answer: prompt is longer than the session length"):
        ask(OpenAIChatModel(server.url, "m"))


@pytest.mark.parametrize("mode", ["cut_clean", "cut_abrupt"])
def test_stream_cut_off_without_done_says_the_server_died(server, mode):
    server.mode = mode
    got: list[str] = []
    with pytest.raises(ChatModelError) as err:
        got.extend(OpenAIChatModel(server.url, "m").stream_chat(QUESTION, 64, 0.2))
    assert got == PIECES[:1]
    assert "stopped in the middle of the answer" in str(err.value) and "without [DONE]" in str(err.value)


def test_connection_refused():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ChatServerUnreachableError) as err:
        ask(OpenAIChatModel(url, "m"))
    message = str(err.value)
    assert f"openai: cannot reach the chat server at {url} — is it running?" in message
    assert "llm.openai.base_url" in message


def test_closing_the_generator_drops_the_connection(server):
    server.mode = "slow"
    model = OpenAIChatModel(server.url, "m")  # kept alive: the drop must come from close(), not from GC
    stream = model.stream_chat(QUESTION, 64, 0.2)
    assert next(stream) == "片0"
    stream.close()
    assert server.disconnected.wait(1.0), "the server never saw the client go away"
    sent = server.sent_slow
    time.sleep(0.1)
    assert server.sent_slow == sent < 400  # it stopped sending, long before the end of the answer
    assert model.health()  # the client is still usable afterwards
