"""An OpenAI-compatible API served beside the web app: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Any OpenAI client talks to the assistant::

    client = OpenAI(base_url="http://127.0.0.1:7860/v1", api_key="unused-on-loopback")
    client.chat.completions.create(model="wulewule", messages=[{"role": "user", "content": "黑熊精在哪里打？"}])

What differs from OpenAI's API, on purpose:

- The answer is the assistant's grounded answer. Its passages travel in an extra field, ``sources``: a list
  of ``{index, title, section, text, source, score}`` where ``index`` is the ``[n]`` the answer cites. A
  completion carries it at the top level; a stream carries it on its last chunk (the one with
  ``finish_reason``), just before ``data: [DONE]``. ``notices`` (e.g. "the question was cut") travels the
  same way.
- There is one model, ``wulewule``; any ``model`` value is accepted and answered by it.
- A request goes through the same turn as the web chat (``Companion.turn``, without the voice): a drawing
  request ("画一个雪地里的天命人") draws the picture, and the answer's content ends with it as a Markdown image,
  ``![prompt](<base>/v1/images/files/<name>.png)``, served by ``GET /v1/images/files/<name>`` under the same
  key rules. Without a drawing model the content says how to install one.
- System (and developer) messages from the client are ignored: the assistant's own system prompt and
  rules apply. The last message must be the user's question; earlier user/assistant messages are the
  conversation. Sampling options (``temperature``, ``max_tokens`` …) are ignored: the server's ``llm.*``
  settings decide.
- Errors use OpenAI's shape, ``{"error": {"message", "type", "code", "param"}}``.

Off the loopback interface every request needs ``Authorization: Bearer <key>``, the key being read from the
environment variable named by ``api.api_key_env``; without one the API refuses to start. On loopback no key
is needed unless one is set, in which case it is required too.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.events import Answer, Collector, Drawn, TextDelta, TurnEvent, collect
from llm.base import ChatModelError, ChatTurn
from modules.asr.audio import AudioSource
from modules.config_layers import ConfigError

log = logging.getLogger(__name__)

MODEL_ID = "wulewule"
_IGNORED_ROLES = ("system", "developer")
_PICTURE_NAME = re.compile(r"[\w.-]+\.png")  # a file name only: no way out of the image folder


class TurnSource(Protocol):
    """What the API needs: one whole turn's events, ending with the Answer (``Companion.turn``)."""

    def turn(
        self,
        text: str | None = None,
        audio: AudioSource | None = None,
        history: Sequence[ChatTurn] = (),
        speak: bool | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[TurnEvent]: ...


@dataclass(frozen=True)
class ChatRequest:
    """A chat completion request reduced to what the assistant uses."""

    question: str
    history: list[ChatTurn]
    stream: bool


class ApiError(Exception):
    """A request the API refuses, with the HTTP status and OpenAI's error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        param: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.kind = kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "code": self.code, "param": self.param}}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


# -- who may call ------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name could resolve anywhere


def required_api_key(host: str, api_key_env: str, environ: Mapping[str, str]) -> str | None:
    """The key every /v1 request must carry, or None when none is needed.

    Raises ConfigError when the app is bound off loopback and the key variable is unset: the API would
    otherwise answer anyone on the network.
    """
    key = environ.get(api_key_env, "").strip()
    if key:
        return key
    if is_loopback(host):
        return None
    raise ConfigError(
        f"the OpenAI-compatible API (/v1) would be served on {host}, which is not a loopback address, "
        f"without a key. Set one: export {api_key_env}=<a long random secret> (clients send "
        f"'Authorization: Bearer <key>'), or serve the web app without the API: --set api.enabled=false"
    )


def _check_key(expected: str | None, header: str | None) -> None:
    if expected is None:
        return
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'", "missing_api_key")
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise ApiError(401, "incorrect API key", "invalid_api_key")


# -- requests ----------------------------------------------------------------------------------


def _text(content: Any, where: str) -> str:
    """A message's text: a string, or a list of text parts (what newer clients send)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
    ):
        return "".join(p["text"] for p in content)
    raise ApiError(
        400,
        f"{where}.content must be a string (or a list of text parts); got {type(content).__name__}",
        "invalid_content",
        f"{where}.content",
    )


def parse_chat_request(raw: bytes) -> ChatRequest:
    """The request body as a ChatRequest; ApiError (400) naming the first thing wrong with it."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", "invalid_body")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(400, "model must be a string", "invalid_model", "model")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise ApiError(400, f"stream must be true or false; got {stream!r}", "invalid_stream", "stream")
    n = body.get("n")
    if n is not None and n != 1:
        raise ApiError(400, "only n=1 is supported", "invalid_n", "n")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list of {role, content}", "invalid_messages", "messages")

    turns: list[ChatTurn] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise ApiError(400, f"{where} must be an object with role and content", "invalid_message", where)
        role = msg.get("role")
        if role in _IGNORED_ROLES:
            continue
        if role not in ("user", "assistant"):
            raise ApiError(
                400,
                f"{where}.role must be user, assistant or system; got {role!r} (tools are not supported)",
                "invalid_role",
                f"{where}.role",
            )
        turns.append(ChatTurn(role, _text(msg.get("content"), where)))
    last = messages[-1].get("role")
    if last != "user":
        raise ApiError(
            400, f"the last message must be the user's question; got role {last!r}", "invalid_last_message", "messages"
        )
    return ChatRequest(question=turns[-1].content, history=turns[:-1], stream=bool(stream))


# -- responses ---------------------------------------------------------------------------------


def _sources(answer: Answer | None) -> list[dict[str, object]]:
    return [s.to_dict() for s in answer.sources] if answer else []


def _answer_error(exc: Exception) -> ApiError:
    if isinstance(exc, ChatModelError):
        return ApiError(503, str(exc), "backend_unavailable", kind="server_error")
    log.exception("answering through the API failed")
    return ApiError(500, f"the assistant failed to answer: {exc}", "internal_error", kind="server_error")


def picture_markdown(drawn: Drawn, base_url: str) -> str:
    """A drawn picture as a Markdown image served by this API (see the module docstring)."""
    alt = drawn.prompt.replace("[", "(").replace("]", ")")[:200]
    return f"\n\n![{alt}]({base_url.rstrip('/')}/v1/images/files/{drawn.path.name})"


def _complete(source: TurnSource, req: ChatRequest, base_url: str) -> dict[str, Any]:
    answer = collect(source.turn(text=req.question, history=req.history, speak=False))
    content = answer.answer + (picture_markdown(answer.image, base_url) if answer.image else "")
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL_ID,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "sources": _sources(answer),
        "notices": answer.notices,
    }


def _event(data: object) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _stream_events(source: TurnSource, req: ChatRequest, base_url: str) -> Generator[str, None, None]:
    """The server-sent events of one streamed answer, in OpenAI's chunk format, ending with [DONE]."""
    head = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL_ID,
    }

    def chunk(delta: dict[str, str], finish: str | None = None, **extra: object) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _event({**head, "choices": [choice], **extra})

    # The role goes first so the client sees the answer begin before retrieval has run.
    yield chunk({"role": "assistant", "content": ""})
    turn = Collector()
    try:
        for event in source.turn(text=req.question, history=req.history, speak=False):
            turn.add(event)
            if isinstance(event, TextDelta) and event.text:
                yield chunk({"content": event.text})
            elif isinstance(event, Drawn):
                yield chunk({"content": picture_markdown(event, base_url)})
            if turn.answer is not None:
                break
    except Exception as exc:  # the status line is sent; the error travels as an event
        yield _event(_answer_error(exc).body())
        yield "data: [DONE]\n\n"
        return
    yield chunk({}, "stop", sources=_sources(turn.answer), notices=turn.notices)
    yield "data: [DONE]\n\n"


async def _off_loop(events: Generator[str, None, None]) -> AsyncIterator[str]:
    """A blocking generator iterated in worker threads; when the client goes away it is closed, which
    ends the answer (and a chat model's generation) instead of letting it run to the end unheard."""
    try:
        while True:
            item = await anyio.to_thread.run_sync(next, events, None)
            if item is None:
                return
            yield item
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(events.close)


# -- routes ------------------------------------------------------------------------------------


def add_openai_api(
    app: FastAPI, source: TurnSource, *, backend: str, api_key: str | None, image_dir: Path | None = None
) -> None:
    """Serve /v1/models, /v1/chat/completions and the drawn pictures on ``app``, answering through ``source``.

    ``backend`` is the active answerer's name (shown in the model's metadata); ``api_key``, when set, is
    required as a Bearer token on every request (see required_api_key).
    """
    started = int(time.time())

    def authorize(request: Request) -> None:
        _check_key(api_key, request.headers.get("authorization"))

    router = APIRouter(prefix="/v1", dependencies=[Depends(authorize)])

    @router.get("/models")
    async def list_models() -> dict[str, Any]:
        model = {"id": MODEL_ID, "object": "model", "created": started, "owned_by": "wulewule"}
        return {"object": "list", "data": [{**model, "metadata": {"backend": backend}}]}

    @router.post("/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
        req = parse_chat_request(await request.body())
        if req.stream:
            return StreamingResponse(
                _off_loop(_stream_events(source, req, str(request.base_url))),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        try:
            return JSONResponse(await run_in_threadpool(_complete, source, req, str(request.base_url)))
        except Exception as exc:
            return _answer_error(exc).response()

    @router.get("/images/files/{name}", response_model=None)
    async def picture(name: str) -> FileResponse:
        """A picture the chat drew (the link in a drawing answer's content)."""
        path = (image_dir / name) if image_dir is not None and _PICTURE_NAME.fullmatch(name) else None
        if path is None or not path.is_file():
            raise ApiError(404, f"no picture {name!r} here", "unknown_picture", "name")
        return FileResponse(path, media_type="image/png")

    @router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def unknown(path: str) -> JSONResponse:
        message = f"no endpoint /v1/{path} here; this server offers GET /v1/models and POST /v1/chat/completions"
        return ApiError(404, message, "unknown_url").response()

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        error = exc if isinstance(exc, ApiError) else ApiError(500, str(exc), "internal_error", kind="server_error")
        return error.response()

    app.add_exception_handler(ApiError, on_api_error)
    app.include_router(router)
