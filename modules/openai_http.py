"""What every client of an OpenAI-compatible server (chat, transcription, speech, images) reads the same way,
and how the transcription, speech and image clients send a request and word its failures."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

EXCERPT_CHARS = 300

E = TypeVar("E", bound=Exception)
R = TypeVar("R")


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The text on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def error_text(body: bytes) -> str:
    """The useful part of an error body: the message of an OpenAI-style error object, else the raw text."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        return excerpt(text) or "(empty body)"
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            value = data.get(key)
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return excerpt(value["message"])
            if isinstance(value, str):
                return excerpt(value)
    return excerpt(text)


def http_client(api_key: str | None, connect_timeout: float, read_timeout: float, **options: Any) -> httpx.Client:
    """A client sending the key (when there is one) as a bearer token; ``read_timeout`` bounds each wait
    for the next bytes (and each write), ``connect_timeout`` a new connection or a free pooled one."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout)
    return httpx.Client(headers=headers, timeout=timeout, **options)


@dataclass(frozen=True)
class Endpoint(Generic[E]):
    """One client's server, as its error messages name it: ``status``, ``unreachable`` … build the errors.

    ``prefix`` leads every message ("openai voice"), ``server`` is what the messages call the server ("the
    speech server"), ``section`` the config section its keys live in ("tts.openai"), ``verb`` what a server
    that has the right endpoint does ("speaks"), and ``error`` the exception class the client raises.
    """

    prefix: str
    server: str
    section: str
    verb: str
    error: type[E]
    base_url: str
    connect_timeout: float
    api_key_env: str
    has_key: bool
    model: str

    def unreachable(self, exc: Exception) -> E:
        """No connection: refused, or none within the connect (or pool) timeout."""
        why = f"no connection within {self.connect_timeout:g} s" if isinstance(exc, httpx.TimeoutException) else exc
        return self.error(
            f"{self.prefix}: cannot reach {self.server} at {self.base_url} — is it running? "
            f"Start it, or point {self.section}.base_url at a running server ({why})"
        )

    def hung_up(self, exc: Exception) -> E:
        """The connection broke before any answer, on both tries."""
        return self.error(
            f"{self.prefix}: {self.server} at {self.base_url} hung up without answering, twice ({exc}) — it may "
            f"have crashed or be restarting; check its log, or point {self.section}.base_url at a running server"
        )

    def status(self, status: int, body: bytes, url: str) -> E:
        """An HTTP error answer from ``url``: what the server said, and for 401/403/404 what to check."""
        said = error_text(body)
        if status in (401, 403):
            key = "the API key sent was refused" if self.has_key else "no API key was sent"
            return self.error(
                f"{self.prefix}: {url} answered HTTP {status} ({said}): {key}. Put the key in the environment "
                f"variable {self.api_key_env} ({self.section}.api_key_env) and restart"
            )
        if status == 404:
            model = f", and that it has the model {self.model!r} ({self.section}.model)" if self.model else ""
            return self.error(
                f"{self.prefix}: {url} answered HTTP 404 ({said}). Check that {self.section}.base_url ends in /v1 "
                f"and that the server {self.verb}{model}"
            )
        return self.error(f"{self.prefix}: {url} answered HTTP {status}: {said}")

    def failed(self, url: str, exc: Exception) -> E:
        """Any other failure of the request."""
        return self.error(f"{self.prefix}: talking to {url} failed: {exc}")


def send_retrying(endpoint: Endpoint[Any], url: str, send: Callable[[], R], log: logging.Logger) -> R:
    """What ``send()`` returns, with one more try when the connection failed before any answer.

    A connect (or pool) timeout is ``endpoint.unreachable`` at once. A refused, reset or hung-up connection
    is logged (on ``log``, the client's own) and sent once more; failing again it is ``unreachable``
    (refused) or ``hung_up``. Every other error (a read timeout, …) is the caller's to turn into a message.
    Only for idempotent requests: one the server may have started on is sent twice.
    """
    for attempt in (1, 2):
        try:
            return send()
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise endpoint.unreachable(exc) from None
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            if attempt == 1:
                log.info("%s: the connection to %s failed (%s); trying once more", endpoint.section, url, exc)
                continue
            if isinstance(exc, httpx.ConnectError):
                raise endpoint.unreachable(exc) from None
            raise endpoint.hung_up(exc) from None
    raise AssertionError("unreachable")  # the loop returns or raises
