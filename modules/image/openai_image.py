"""An ImageGenerator for any OpenAI-compatible image server (``image.backend: openai``).

It POSTs ``{base_url}/images/generations`` with ``{prompt, n: 1, size: "WxH", response_format}`` (plus
``model`` when ``image.openai.model`` is set, and ``seed`` with ``image.openai.send_seed``) and decodes the
picture of ``data[0]``: ``b64_json`` inline, or ``url`` fetched (the API key is sent only to the server's own
host). Progress is ImageProgress(0, 1) when the request goes out and (1, 1) when the picture is in; then the
GeneratedImage. The remote side owns its model and LoRA, so ``trigger_words`` is "" unless
``image.lora.trigger_words`` says otherwise.

Drawing is idempotent: a request whose connection failed before any answer (refused, reset, the server hung
up) is sent once more; a timeout, an HTTP error or a garbled answer is not. Setting ``cancel`` while the server
draws shuts the connection at once (the server sees the client go and can stop), and the generator ends
without a picture, as the local pipeline does when stopped. Failures are ImageGenerationErrors naming the
server's URL, the config key and what to do.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import io
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import httpx

from modules.image.base import GeneratedImage, ImageGenerationError, ImageProgress, ImageRequest
from modules.openai_http import Endpoint, error_text, excerpt, http_client, send_retrying
from modules.status import BackendStatus

if TYPE_CHECKING:
    from modules.image.settings import ImageSettings

log = logging.getLogger(__name__)

_URL_KEY = "image.openai.base_url"
_WATCH_S = 0.05  # how often a request in flight looks at the cancel event


class _Aborter:
    """Shuts a request's sockets from another thread: a blocked read wakes at once and the server sees us go.

    The sockets are learnt from httpx's ``trace`` extension as each connection opens (the client keeps no
    idle connections, so every request opens one).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.aborted = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            if self.aborted:
                self._shut(sock)

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def openai_status(settings: ImageSettings, name: str) -> BackendStatus:
    """Whether ``image.openai`` is configured; the server itself is checked on first use, not here."""
    remote = settings.openai
    url = remote.base_url.strip()
    if not url:
        return BackendStatus(
            name,
            False,
            f"image.backend=openai but {_URL_KEY} is empty",
            f"set {_URL_KEY} to the /v1 URL of an OpenAI-compatible image server (e.g. http://127.0.0.1:8000/v1), "
            "and image.openai.model / image.openai.api_key_env as it needs",
        )
    model = f"model {remote.model}" if remote.model else "the server's default model"
    key = f", key from ${remote.api_key_env}" if os.environ.get(remote.api_key_env) else ""
    detail = f"remote drawing at {url} ({model}, {settings.width}x{settings.height}{key}), checked on first use"
    return BackendStatus(name, True, detail, "", "openai")


class OpenAIImageGenerator:
    """Draws through an OpenAI-compatible ``/images/generations`` endpoint."""

    name = "openai"

    def __init__(self, settings: ImageSettings, api_key: str | None = None) -> None:
        remote = settings.openai
        if not remote.base_url.strip():
            raise ValueError(
                f"image.backend=openai: the server URL is empty; set {_URL_KEY}, e.g. http://127.0.0.1:8000/v1"
            )
        self.settings = settings
        self.base_url = remote.base_url.strip().rstrip("/")
        self.model = remote.model
        self.response_format = remote.response_format
        self.send_seed = remote.send_seed
        self.read_timeout = remote.read_timeout
        self._endpoint = Endpoint(
            prefix=f"{self.name} drawing",
            server="the image server",
            section="image.openai",
            verb="draws",
            error=ImageGenerationError,
            base_url=self.base_url,
            connect_timeout=remote.connect_timeout,
            api_key_env=remote.api_key_env,
            has_key=bool(api_key),
            model=remote.model,
        )
        # No idle connections: each request opens its own, whose socket a cancel can shut (see _Aborter).
        limits = httpx.Limits(max_keepalive_connections=0)
        self._client = http_client(api_key, remote.connect_timeout, remote.read_timeout, limits=limits)

    @classmethod
    def from_settings(cls, settings: ImageSettings) -> OpenAIImageGenerator:
        """A generator for ``image.openai``; the key is read from the environment variable it names."""
        return cls(settings, api_key=os.environ.get(settings.openai.api_key_env) or None)

    @property
    def url(self) -> str:
        return f"{self.base_url}/images/generations"

    @property
    def trigger_words(self) -> str:
        """The remote side owns its LoRA: "" unless image.lora.trigger_words names words to lead with."""
        return self.settings.lora.trigger_words.strip()

    def request_for(self, prompt: str, negative_prompt: str | None = None, seed: int | None = None) -> ImageRequest:
        """A request with the configured size (steps and guidance are recorded; the server picks its own)."""
        return ImageRequest(
            prompt=prompt,
            negative_prompt=self.settings.negative_prompt if negative_prompt is None else negative_prompt,
            seed=seed,
            steps=self.settings.steps,
            guidance=self.settings.guidance,
            width=self.settings.width,
            height=self.settings.height,
        )

    def generate(
        self, request: ImageRequest, cancel: threading.Event | None = None
    ) -> Generator[ImageProgress | GeneratedImage, None, None]:
        """(0, 1) when the request goes out, (1, 1) and the picture when it is in; ``cancel`` drops the request."""
        # OpenAI's API takes no seed: unless the server is sent one (or says which it used), the picture's seed
        # is unknown (-1, as A1111 writes a random one).
        seed = (request.seed if request.seed is not None else secrets.randbelow(2**32)) if self.send_seed else -1
        payload: dict[str, Any] = {
            "prompt": request.prompt,
            "n": 1,
            "size": f"{request.width}x{request.height}",
            "response_format": self.response_format,
        }
        if self.model:
            payload["model"] = self.model
        if self.send_seed:
            payload["seed"] = seed
        yield ImageProgress(0, 1)
        if cancel is not None and cancel.is_set():
            return
        aborter = _Aborter()
        finished = threading.Event()
        watcher = None
        if cancel is not None:
            watcher = threading.Thread(
                target=_watch, args=(cancel, finished, aborter), name="image-cancel", daemon=True
            )
            watcher.start()
        started = time.perf_counter()
        try:
            body = self._send("POST", self.url, aborter, json=payload)
            picture, told = (None, None) if body is None else self._picture_bytes(body, aborter)
        finally:
            finished.set()
            if watcher is not None:
                watcher.join()
        if picture is None or aborter.aborted:
            log.info("image.openai: drawing stopped; the request to %s was dropped", self.url)
            return
        if told is not None:
            seed = told  # a server that says which seed it drew with (an extension): redrawable
        image = self._decode(picture)
        elapsed = time.perf_counter() - started
        width, height = image.size
        if (width, height) != (request.width, request.height):
            log.info(
                "image.openai: asked for %dx%d, the server drew %dx%d", request.width, request.height, width, height
            )
            with contextlib.suppress(ValueError):  # a size ImageRequest cannot hold keeps the one asked for
                request = dataclasses.replace(request, width=width, height=height)
        yield ImageProgress(1, 1)
        yield GeneratedImage(
            image=image, request=request, seed=seed, model=self.model or self.name, lora=None, elapsed_s=elapsed
        )

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def __enter__(self) -> OpenAIImageGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the requests ---------------------------------------------------------------------------

    def _send(self, method: str, url: str, aborter: _Aborter, **kwargs: Any) -> bytes | None:
        """The body of a successful answer, or None when cancelled; one more try when the connection failed
        before any answer."""

        def send() -> httpx.Response | None:
            request = self._client.build_request(method, url, extensions={"trace": aborter.trace}, **kwargs)
            if not self._same_origin(request.url):
                request.headers.pop("Authorization", None)  # the key is for our server, not a storage host
            try:
                return self._client.send(request)
            except httpx.HTTPError:
                if aborter.aborted:
                    return None  # the cancel shut the socket: no failure, and no second try
                raise

        try:
            response = send_retrying(self._endpoint, url, send, log)
        except httpx.TimeoutException:
            raise ImageGenerationError(
                f"{self.name} drawing: no picture from {url} within {self.read_timeout:g} s — the image "
                "server may be overloaded or still loading; try again, or raise image.openai.read_timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise self._endpoint.failed(url, exc) from None
        if response is None:
            return None
        if response.status_code >= 400:
            raise self._endpoint.status(response.status_code, response.content, url)
        return response.content

    def _same_origin(self, url: httpx.URL) -> bool:
        base = httpx.URL(self.base_url)
        return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)

    def _picture_bytes(self, body: bytes, aborter: _Aborter) -> tuple[bytes | None, int | None]:
        """The encoded picture of an images response (``b64_json`` decoded, or ``url`` fetched; None when
        cancelled) and the seed, when the server says (``data[0].seed``, not in OpenAI's API)."""
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("error"):
            raise ImageGenerationError(f"{self.name} drawing: the image server at {self.base_url} reported an error: "
                                       f"{error_text(body)}")  # fmt: skip
        items = data.get("data") if isinstance(data, dict) else None
        first = items[0] if isinstance(items, list) and items else None
        if not isinstance(first, dict):
            raise self._malformed("an images response without data[0]", body)
        b64, url = first.get("b64_json"), first.get("url")
        if isinstance(first.get("revised_prompt"), str):
            log.info("image.openai: the server drew %r", first["revised_prompt"])
        told = first.get("seed")
        seed = told if type(told) is int and told >= 0 else None
        if isinstance(b64, str) and b64:
            return self._b64(b64, body), seed
        if isinstance(url, str) and url.strip():
            url = url.strip()
            if url.startswith("data:"):
                return self._b64(url.partition(",")[2], body), seed
            target = httpx.URL(self.base_url + "/").join(url)
            return self._send("GET", str(target), aborter), seed
        raise self._malformed("data[0] holds neither b64_json nor url", body)

    def _b64(self, text: str, body: bytes) -> bytes:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise self._malformed("b64_json that is not base64", body) from None

    def _decode(self, picture: bytes) -> Any:
        from PIL import Image, UnidentifiedImageError

        try:
            image = Image.open(io.BytesIO(picture))
            image.load()
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise ImageGenerationError(
                f"{self.name} drawing: the image server at {self.base_url} sent a picture that cannot be read "
                f"({len(picture)} bytes: {exc}); is {_URL_KEY} an OpenAI-compatible image server?"
            ) from None
        return image if image.mode in ("RGB", "RGBA") else image.convert("RGB")

    # -- errors ---------------------------------------------------------------------------------

    def _malformed(self, what: str, body: bytes) -> ImageGenerationError:
        text = excerpt(body.decode("utf-8", errors="replace"), 120)
        return ImageGenerationError(
            f"{self.name} drawing: {self.url} did not answer with a picture ({what}: {text!r}); is {_URL_KEY} the "
            "/v1 URL of an OpenAI-compatible image server?"
        )


def _watch(cancel: threading.Event, finished: threading.Event, aborter: _Aborter) -> None:
    """Drop the request as soon as ``cancel`` is set; end with the request."""
    while not finished.is_set():
        if cancel.wait(_WATCH_S):
            aborter.abort()
            return
