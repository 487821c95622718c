"""A ChatModel for any OpenAI-compatible chat server: LMDeploy's api_server, vLLM, llama.cpp's server, hosted APIs.

It POSTs ``{base_url}/chat/completions`` with ``stream: true`` and reads the Server-Sent Events reply, one
``data: {...}`` line per chunk until ``data: [DONE]``, yielding each ``choices[0].delta.content``. Every
failure a player can meet (server down, bad key, timeout, a stream that breaks off) becomes a ChatModelError
that names the backend, the URL and what to do.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from llm.base import ChatModelError, ChatTurn
from modules.openai_http import error_text, excerpt

log = logging.getLogger(__name__)

_BODY_BYTES = 4096


class ChatServerUnreachableError(ChatModelError):
    """No connection to the chat server, or it hung up before answering; nothing was generated.

    Raised only before the first piece of text, so a caller may restart the server and try again.
    """


class OpenAIChatModel:
    """Streams chat completions from an OpenAI-compatible server over HTTP."""

    def __init__(
        self,
        base_url: str,
        model: str = "",
        api_key: str | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 60,
        name: str = "openai",
        *,
        url_key: str = "llm.openai.base_url",
    ) -> None:
        if not base_url.strip():
            raise ValueError(f"{name}: the server URL is empty; set {url_key}, e.g. http://127.0.0.1:23333/v1")
        self.base_url = base_url.strip().rstrip("/")
        self.model = model
        self.name = name
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._has_key = bool(api_key)
        self._url_key = url_key
        self._model_lock = threading.Lock()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # read= bounds the wait for each next piece of the stream, not the whole answer.
        timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout)
        self._client = httpx.Client(headers=headers, timeout=timeout)

    def start(self) -> None:
        """Nothing to start: the server is checked on the first request."""

    def stream_chat(self, messages: Sequence[ChatTurn], max_tokens: int, temperature: float) -> Iterator[str]:
        """Text pieces as the server generates them; closing the generator drops the connection."""
        payload = {
            "model": self.resolve_model(),
            "messages": [turn.to_dict() for turn in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
        }
        url = f"{self.base_url}/chat/completions"
        got_text = False
        try:
            # The response lives inside this generator so that closing the generator closes the
            # connection, and the server sees the client go away and stops generating.
            with self._open(url, payload) as response:
                for piece in self._pieces(response):
                    got_text = True
                    yield piece
        except httpx.TimeoutException as exc:
            raise self._timeout_error(exc) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise self._died_error(got_text, exc) from None
        except httpx.HTTPError as exc:
            raise ChatModelError(f"{self.name}: talking to the chat server at {self.base_url} failed: {exc}") from None

    def list_models(self) -> list[str]:
        """The model ids the server offers (``GET {base_url}/models``)."""
        url = f"{self.base_url}/models"
        try:
            response = self._client.get(url)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise self._unreachable_error(exc) from None
        except httpx.TimeoutException as exc:
            raise self._timeout_error(exc) from None
        except httpx.HTTPError as exc:
            raise ChatModelError(f"{self.name}: asking {url} for its models failed: {exc}") from None
        if response.status_code >= 400:
            raise self._status_error(response.status_code, response.content, url)
        try:
            data = response.json()["data"]
            return [str(item["id"]) for item in data]
        except (ValueError, KeyError, TypeError):
            raise ChatModelError(
                f"{self.name}: {url} did not answer with an OpenAI model list "
                f"({excerpt(response.text, 120)!r}); is {self._url_key} the server's /v1 URL?"
            ) from None

    def health(self) -> bool:
        """True when the server answers ``GET /models``."""
        try:
            self.list_models()
        except ChatModelError:
            return False
        return True

    def resolve_model(self) -> str:
        """The configured model, or the first one the server lists (asked once, then remembered)."""
        with self._model_lock:
            if not self.model:
                models = self.list_models()
                if not models:
                    raise ChatModelError(
                        f"{self.name}: the chat server at {self.base_url} lists no models; "
                        "load one there, or name it in the config (llm.openai.model)"
                    )
                self.model = models[0]
                log.info("%s: using model %r, the first the server lists", self.name, self.model)
            return self.model

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    def __enter__(self) -> OpenAIChatModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the pieces of stream_chat --------------------------------------------------------------

    @contextmanager
    def _open(self, url: str, payload: dict[str, Any]) -> Iterator[httpx.Response]:
        """The streaming response to the chat request, status checked; closed on leaving."""
        request = self._client.build_request("POST", url, json=payload, headers={"Accept": "text/event-stream"})
        try:
            response = self._client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise self._unreachable_error(exc) from None
        except httpx.RemoteProtocolError as exc:
            # The server took the connection and hung up before any reply: a crash, typically.
            raise ChatServerUnreachableError(
                f"{self.name}: the chat server at {self.base_url} hung up without answering ({exc}) — "
                "it may have crashed or be restarting"
            ) from None
        try:
            if response.status_code >= 400:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) >= _BODY_BYTES:
                        break
                raise self._status_error(response.status_code, body, url)
            yield response
        finally:
            response.close()

    def _pieces(self, response: httpx.Response) -> Iterator[str]:
        """The content pieces of an SSE chat-completions stream, checked line by line."""
        got_text = False
        finished = False
        for line in response.iter_lines():
            if not line or line.startswith((":", "event:", "id:", "retry:")):
                continue  # blank separators, keep-alive comments and SSE fields we do not need
            if not line.startswith("data:"):
                raise self._malformed("a line that is not Server-Sent Events", line)
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except ValueError:
                raise self._malformed("a data line that is not JSON", line) from None
            if not isinstance(chunk, dict):
                raise self._malformed("a data line that is not a JSON object", line)
            if chunk.get("error"):
                # vLLM and llama.cpp report failures after the 200 as an error event.
                raise ChatModelError(
                    f"{self.name}: the chat server at {self.base_url} reported an error mid-answer: "
                    f"{error_text(data.encode())}"
                )
            choices = chunk.get("choices")
            if not isinstance(choices, list):
                raise self._malformed("a chunk without choices", line)
            if not choices:
                continue  # usage-only chunks carry no text
            choice = choices[0]
            if not isinstance(choice, dict):
                raise self._malformed("a choice that is not an object", line)
            delta = choice.get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            if content:
                got_text = True
                yield content
            if choice.get("finish_reason"):
                finished = True
        # A server that said why it finished has ended the answer even if it forgot [DONE].
        if not finished:
            raise self._died_error(got_text, None)

    def _unreachable_error(self, exc: Exception) -> ChatServerUnreachableError:
        why = f"no connection within {self.connect_timeout:g} s" if isinstance(exc, httpx.TimeoutException) else exc
        return ChatServerUnreachableError(
            f"{self.name}: cannot reach the chat server at {self.base_url} — is it running? "
            f"Start it, or point {self._url_key} at a running server ({why})"
        )

    def _timeout_error(self, exc: httpx.TimeoutException) -> ChatModelError:
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return self._unreachable_error(exc)
        return ChatModelError(
            f"{self.name}: no reply from the chat server at {self.base_url} within {self.read_timeout:g} s — "
            "it may be overloaded or still loading; try again, or raise the read timeout in the config"
        )

    def _status_error(self, status: int, body: bytes, url: str) -> ChatModelError:
        said = error_text(body)
        if status in (401, 403):
            key = "the API key sent was refused" if self._has_key else "no API key was sent"
            return ChatModelError(
                f"{self.name}: the chat server at {self.base_url} answered HTTP {status} ({said}): {key}. "
                "Put the key in the environment variable named by llm.openai.api_key_env "
                "(OPENAI_API_KEY unless changed) and restart"
            )
        if status == 404:
            return ChatModelError(
                f"{self.name}: {url} answered HTTP 404 ({said}). Check that {self._url_key} ends in /v1 "
                f"and that the model {self.model!r} is one the server lists"
            )
        return ChatModelError(f"{self.name}: the chat server at {self.base_url} answered HTTP {status}: {said}")

    def _malformed(self, what: str, line: str) -> ChatModelError:
        return ChatModelError(
            f"{self.name}: the chat server at {self.base_url} sent a malformed stream ({what}: "
            f"{excerpt(line, 120)!r}); is it an OpenAI-compatible /v1 endpoint?"
        )

    def _died_error(self, got_text: bool, exc: Exception | None) -> ChatModelError:
        cause = f" ({exc})" if exc else ""
        if got_text:
            return ChatModelError(
                f"{self.name}: the chat server at {self.base_url} stopped in the middle of the answer — "
                f"the stream ended without [DONE], so the server probably died{cause}. Check its log and ask again"
            )
        return ChatModelError(
            f"{self.name}: the chat server at {self.base_url} closed the stream without answering{cause}. "
            "Check its log and ask again"
        )
