"""OpenAIImageGenerator against a real HTTP server on loopback that speaks OpenAI's /images/generations."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from PIL import Image

from modules.image.base import GeneratedImage, ImageGenerationError, ImageGenerator, ImageProgress
from modules.image.openai_image import OpenAIImageGenerator
from modules.image.png import save_png
from modules.image.service import backend_status, create_generator
from modules.image.settings import ImageSettings, LoraSettings, OpenAIImageSettings
from tests.modules.loopback import client_gone, dying_server, free_port, read_body, reset, serve

SIZE = (64, 96)


def png_bytes(size: tuple[int, int] = SIZE, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "gold" if mode == "RGB" else 7).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: dict | None


@dataclass
class FakeServer:
    url: str = ""
    mode: str = "b64"
    api_key: str | None = None
    picture: bytes = field(default_factory=png_bytes)
    file_url: str = "/files/pic.png"  # what data[0].url says in "url" mode
    seen: list[Seen] = field(default_factory=list)
    disconnected: threading.Event = field(default_factory=threading.Event)
    waiting: threading.Event = field(default_factory=threading.Event)  # a "hang" request is being held

    def posts(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]


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

        def _json(self, status: int, payload: object) -> None:
            self._reply(status, json.dumps(payload).encode())

        def _authorised(self) -> bool:
            if fake.api_key is None or self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                return True
            self._json(401, {"error": {"message": "Incorrect API key provided"}})
            return False

        def do_GET(self) -> None:
            fake.seen.append(Seen("GET", self.path, dict(self.headers.items()), None))
            if self.path == "/files/pic.png":
                self._reply(200, fake.picture, "image/png")
            else:
                self._json(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            body = read_body(self)
            fake.seen.append(Seen("POST", self.path, dict(self.headers.items()), json.loads(body) if body else None))
            if not self._authorised():
                return
            if self.path != "/v1/images/generations":
                self._json(404, {"detail": "Not Found"})
                return
            mode, posts = fake.mode, len(fake.posts())
            if mode == "reset_always" or (mode == "reset_once" and posts == 1):
                reset(self)
                return
            if mode == "hang":
                fake.waiting.set()
                if client_gone(self, 2.0):
                    fake.disconnected.set()
                    return
            b64 = base64.b64encode(fake.picture).decode()
            if mode == "500":
                self._json(500, {"error": {"message": "CUDA out of memory", "type": "server_error"}})
            elif mode == "400":
                error = {
                    "message": "Your request was rejected by the safety system",
                    "code": "content_policy_violation",
                }
                self._json(400, {"error": error})
            elif mode == "not_json":
                self._reply(200, b"Internal Server Error", "text/plain")
            elif mode == "no_data":
                self._json(200, {"created": 1, "data": []})
            elif mode == "bad_b64":
                self._json(200, {"data": [{"b64_json": "not base64!!"}]})
            elif mode == "not_an_image":
                self._json(200, {"data": [{"b64_json": base64.b64encode(b"GIF? no").decode()}]})
            elif mode == "seed":  # wulewule's own server says which seed it drew with
                self._json(200, {"data": [{"b64_json": b64, "seed": 4242}]})
            elif mode == "url":
                self._json(200, {"created": 1, "data": [{"url": fake.file_url}]})
            else:
                self._json(200, {"created": 1, "data": [{"b64_json": b64, "revised_prompt": "a golden monkey"}]})

    return Handler


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    with serve(make_handler(fake)) as url:
        fake.url = f"{url}/v1"
        yield fake


def settings(url: str, **remote) -> ImageSettings:
    return ImageSettings(
        backend="openai", width=SIZE[0], height=SIZE[1], openai=OpenAIImageSettings(base_url=url, **remote)
    )


def draw(gen: OpenAIImageGenerator, prompt: str = "the Destined One in the snow", **kwargs) -> list:
    return list(gen.generate(gen.request_for(prompt, seed=kwargs.pop("seed", None)), **kwargs))


def picture(events: list) -> GeneratedImage:
    (result,) = [e for e in events if isinstance(e, GeneratedImage)]
    return result


def test_is_an_image_generator(server):
    gen = OpenAIImageGenerator(settings(server.url))
    assert isinstance(gen, ImageGenerator)
    assert gen.name == "openai"
    assert gen.trigger_words == ""  # the remote side owns its LoRA
    with_words = ImageSettings(backend="openai", lora=LoraSettings(trigger_words=" wukong_dtm "))
    with_words.openai.base_url = server.url
    assert OpenAIImageGenerator(with_words).trigger_words == "wukong_dtm"


def test_empty_base_url_is_a_value_error():
    with pytest.raises(ValueError, match=r"image\.openai\.base_url"):
        OpenAIImageGenerator(ImageSettings(backend="openai"))


def test_draws_and_sends_the_request(server, tmp_path):
    gen = OpenAIImageGenerator(settings(server.url + "/"))
    events = draw(gen)
    assert events[:2] == [ImageProgress(0, 1), ImageProgress(1, 1)]
    result = picture(events)
    assert result.image.size == SIZE and result.image.mode == "RGB"
    assert result.image.getpixel((0, 0)) == (255, 215, 0)
    assert result.request.prompt == "the Destined One in the snow"
    assert (result.seed, result.model, result.lora) == (-1, "openai", None)  # the server chose the seed
    (post,) = server.posts()
    assert post.path == "/v1/images/generations"
    assert post.body == {
        "prompt": "the Destined One in the snow",
        "n": 1,
        "size": "64x96",
        "response_format": "b64_json",
    }
    assert "Authorization" not in post.headers
    saved = save_png(result, tmp_path)  # what the app does with it
    assert Image.open(saved).size == SIZE


def test_model_and_seed_are_sent_when_configured(server):
    gen = OpenAIImageGenerator(settings(server.url, model="sd-wukong", send_seed=True))
    result = picture(draw(gen, seed=1234))
    assert server.posts()[0].body["model"] == "sd-wukong"
    assert server.posts()[0].body["seed"] == 1234
    assert (result.seed, result.model) == (1234, "sd-wukong")


def test_a_seed_the_server_reports_is_recorded(server):
    server.mode = "seed"
    assert picture(draw(OpenAIImageGenerator(settings(server.url)))).seed == 4242


def test_another_size_from_the_server_is_recorded(server):
    server.picture = png_bytes((128, 128), mode="P")
    result = picture(draw(OpenAIImageGenerator(settings(server.url))))
    assert result.image.size == (128, 128) and result.image.mode == "RGB"
    assert (result.request.width, result.request.height) == (128, 128)


def test_url_response_is_fetched_with_the_key_for_its_own_host_only(server):
    server.mode, server.api_key = "url", "sk-img"
    gen = OpenAIImageGenerator(settings(server.url, response_format="url"), api_key="sk-img")
    assert picture(draw(gen)).image.size == SIZE
    get = [s for s in server.seen if s.method == "GET"]
    assert [g.path for g in get] == ["/files/pic.png"]
    assert get[0].headers["Authorization"] == "Bearer sk-img"
    assert server.posts()[0].body["response_format"] == "url"
    # the same server under another name is another host: the key stays home
    server.file_url = server.url.replace("127.0.0.1", "localhost").removesuffix("/v1") + "/files/pic.png"
    assert picture(draw(gen)).image.size == SIZE
    assert "Authorization" not in [s for s in server.seen if s.method == "GET"][1].headers


def test_api_key_from_the_named_environment_variable(server, monkeypatch):
    server.api_key = "sk-img"
    monkeypatch.setenv("MY_IMAGE_KEY", "sk-img")
    gen = create_generator(settings(server.url, api_key_env="MY_IMAGE_KEY"), Path("."))
    assert isinstance(gen, OpenAIImageGenerator)
    assert picture(draw(gen)).image.size == SIZE


@pytest.mark.parametrize(("key", "says"), [(None, "no API key was sent"), ("sk-wrong", "the API key sent was refused")])
def test_401_names_the_key_variable(server, key, says):
    server.api_key = "sk-right"
    with pytest.raises(ImageGenerationError) as err:
        draw(OpenAIImageGenerator(settings(server.url, api_key_env="MY_IMAGE_KEY"), api_key=key))
    message = str(err.value)
    assert "HTTP 401" in message and "Incorrect API key provided" in message and says in message
    assert "MY_IMAGE_KEY" in message and "image.openai.api_key_env" in message


@pytest.mark.parametrize(
    ("mode", "says"),
    [("500", "HTTP 500: CUDA out of memory"), ("400", "HTTP 400: Your request was rejected by the safety system")],
)
def test_http_errors_carry_the_servers_message_and_are_not_retried(server, mode, says):
    server.mode = mode
    with pytest.raises(ImageGenerationError) as err:
        draw(OpenAIImageGenerator(settings(server.url)))
    assert f"openai drawing: {server.url}/images/generations answered {says}" in str(err.value)
    assert len(server.posts()) == 1


def test_404_says_to_check_the_v1_url(server):
    with pytest.raises(ImageGenerationError, match=r"HTTP 404.*image\.openai\.base_url ends in /v1"):
        draw(OpenAIImageGenerator(settings(server.url.removesuffix("/v1"))))


@pytest.mark.parametrize(
    ("mode", "what"),
    [
        ("not_json", "did not answer with a picture (an images response without data[0]"),
        ("no_data", "did not answer with a picture (an images response without data[0]"),
        ("bad_b64", "b64_json that is not base64"),
        ("not_an_image", "sent a picture that cannot be read"),
    ],
)
def test_garbage_is_a_clear_error(server, mode, what):
    server.mode = mode
    with pytest.raises(ImageGenerationError) as err:
        draw(OpenAIImageGenerator(settings(server.url)))
    assert what in str(err.value) and "image.openai.base_url" in str(err.value)


def test_a_reset_connection_is_retried_once(server):
    server.mode = "reset_once"
    assert picture(draw(OpenAIImageGenerator(settings(server.url)))).image.size == SIZE
    assert len(server.posts()) == 2


def test_a_connection_reset_twice_is_an_error(server):
    server.mode = "reset_always"
    with pytest.raises(ImageGenerationError) as err:
        draw(OpenAIImageGenerator(settings(server.url)))
    assert len(server.posts()) == 2
    assert f"the image server at {server.url} hung up without answering, twice" in str(err.value)


def test_a_server_killed_mid_request():
    with dying_server() as (url, took):
        with pytest.raises(ImageGenerationError) as err:
            draw(OpenAIImageGenerator(settings(f"{url}/v1")))
        assert took.is_set()
    message = str(err.value)
    assert f"cannot reach the image server at {url}/v1 — is it running?" in message
    assert "image.openai.base_url" in message


def test_connection_refused():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ImageGenerationError) as err:
        draw(OpenAIImageGenerator(settings(url)))
    message = str(err.value)
    assert f"openai drawing: cannot reach the image server at {url} — is it running?" in message
    assert "point image.openai.base_url at a running server" in message


def test_a_hung_server_times_out_without_a_retry(server):
    server.mode = "hang"
    started = time.monotonic()
    with pytest.raises(ImageGenerationError) as err:
        draw(OpenAIImageGenerator(settings(server.url, read_timeout=0.5)))
    assert time.monotonic() - started < 1.5
    message = str(err.value)
    assert "no picture from" in message and "within 0.5 s" in message and "image.openai.read_timeout" in message
    assert len(server.posts()) == 1


def test_cancel_drops_the_request_at_once(server):
    server.mode = "hang"
    cancel = threading.Event()
    threading.Thread(target=lambda: server.waiting.wait(2.0) and cancel.set(), daemon=True).start()
    started = time.monotonic()
    events = draw(OpenAIImageGenerator(settings(server.url)), cancel=cancel)
    assert time.monotonic() - started < 1.0  # not the server's 2 s, nor the 300 s read timeout
    assert events == [ImageProgress(0, 1)]  # stopped: no picture, no error, as the local pipeline does
    assert server.disconnected.wait(1.0), "the server never saw the client go away"
    assert len(server.posts()) == 1  # a cancel is not a connection failure: no retry


def test_closing_before_the_request_sends_nothing(server):
    gen = OpenAIImageGenerator(settings(server.url))
    steps = gen.generate(gen.request_for("a monkey"))
    assert next(steps) == ImageProgress(0, 1)
    steps.close()
    assert server.seen == []


def test_backend_status_does_not_touch_the_network():
    status = backend_status(ImageSettings(backend="openai"), Path("."))
    assert not status.ok and status.backend is None
    assert "image.openai.base_url" in status.detail and "image.openai.base_url" in status.fix
    with pytest.raises(ValueError, match=r"image\.openai\.base_url"):
        create_generator(ImageSettings(backend="openai"), Path("."))
    url = f"http://127.0.0.1:{free_port()}/v1"
    status = backend_status(settings(url), Path("."))
    assert status.ok and status.backend == "openai"
    assert url in status.detail and "checked on first use" in status.detail
