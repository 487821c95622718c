"""An OpenAI-compatible API served beside the web app: ``GET /v1/models`` and ``POST /v1/chat/completions``,
and, given the companion's engines, ``POST /v1/audio/transcriptions``, ``POST /v1/audio/speech`` and
``POST /v1/images/generations`` (so one app can be the remote ears, voice or brush of another; their shapes,
limits and errors are in docs/api.md).

Any OpenAI client talks to the assistant::

    client = OpenAI(base_url="http://127.0.0.1:7860/v1", api_key="unused-on-loopback")
    client.chat.completions.create(model="wulewule", messages=[{"role": "user", "content": "黑熊精在哪里打？"}])

What differs from OpenAI's API, on purpose:

- The answer is the assistant's grounded answer. Its passages travel in an extra field, ``sources``: a list
  of ``{index, title, section, text, source, score}`` where ``index`` is the ``[n]`` the answer cites. A
  completion carries it at the top level; a stream carries it on its last chunk (the one with
  ``finish_reason``), just before ``data: [DONE]``. ``notices`` (e.g. "the question was cut") travels the
  same way.
- The chat model is ``wulewule``; chat completions accept any ``model`` value and answer with it. The
  engines have their own ids (``wulewule-asr``, ``wulewule-tts``, ``wulewule-image``, listed by
  ``/v1/models``): their endpoints accept their id or ``wulewule`` and refuse any other with a 404
  ``model_not_found``, since a client naming ``whisper-1`` or ``dall-e-3`` would get something else.
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

import base64
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import anyio.to_thread
import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.types import Message

from app.events import Answer, Collector, Drawn, TextDelta, TurnEvent, collect
from llm.base import ChatModelError, ChatTurn
from modules.asr.audio import AudioSource
from modules.config_layers import ConfigError

if TYPE_CHECKING:
    from app.companion import Companion
    from modules.asr.base import Transcript
    from modules.audio_types import AudioClip
    from modules.image.base import GeneratedImage, ImageGenerator, ImageProgress, ImageRequest
    from modules.tts.base import SpeechSynthesizer
    from modules.tts.settings import TtsSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

MODEL_ID = "wulewule"
ASR_MODEL_ID = "wulewule-asr"  # POST /v1/audio/transcriptions
TTS_MODEL_ID = "wulewule-tts"  # POST /v1/audio/speech
IMAGE_MODEL_ID = "wulewule-image"  # POST /v1/images/generations
TRANSCRIPTION_FORMATS = ("json", "text", "verbose_json")
FORM_SLACK_BYTES = 64 * 1024  # an upload's form fields and part headers, beside the file itself
SPEECH_INPUT_FACTOR = 4  # speech input may be this many questions long (app.max_question_chars each)
PCM_RATE = 24000  # response_format=pcm is OpenAI's: 24 kHz, 16-bit signed little-endian, mono
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


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", "invalid_body")
    return body


def check_model(value: object, own: str) -> None:
    """An engine endpoint's ``model``: absent, its own id or ``wulewule``; any other is a 404, as at OpenAI."""
    if value is None or value in (own, MODEL_ID):
        return
    if not isinstance(value, str):
        raise ApiError(400, "model must be a string", "invalid_model", "model")
    raise ApiError(
        404,
        f"the model {value!r} does not exist here; this endpoint serves {own!r} (or {MODEL_ID!r}), see GET /v1/models",
        "model_not_found",
        "model",
    )


def _choice(body: Mapping[str, Any], key: str, allowed: Sequence[str], default: str) -> str:
    value = body.get(key)
    if value is None:
        return default
    if value not in allowed:
        raise ApiError(400, f"{key} must be one of {', '.join(allowed)}; got {value!r}", f"unsupported_{key}", key)
    return str(value)


def parse_chat_request(raw: bytes) -> ChatRequest:
    """The request body as a ChatRequest; ApiError (400) naming the first thing wrong with it."""
    body = _json_object(raw)
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


def picture_url(drawn: Drawn, base_url: str) -> str:
    """Where ``GET /v1/images/files/<name>`` serves a drawn picture."""
    return f"{base_url.rstrip('/')}/v1/images/files/{drawn.path.name}"


def picture_markdown(drawn: Drawn, base_url: str) -> str:
    """A drawn picture as a Markdown image served by this API (see the module docstring)."""
    alt = drawn.prompt.replace("[", "(").replace("]", ")")[:200]
    return f"\n\n![{alt}]({picture_url(drawn, base_url)})"


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


async def _off_loop(events: Generator[T, None, None]) -> AsyncIterator[T]:
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


def _after(first: T, rest: Generator[T, None, None]) -> Generator[T, None, None]:
    """``first``, already taken from ``rest``, then the rest; closing this closes ``rest``."""
    try:
        yield first
        yield from rest
    finally:
        rest.close()


async def _while_connected(request: Request, work: Callable[[threading.Event], T]) -> T:
    """``work`` in a worker thread; the event it is given is set when the client goes away, so a drawing
    stops between steps instead of running on for nobody."""
    cancel = threading.Event()
    outcome: list[T] = []
    failure: list[Exception] = []

    async def watch() -> None:
        while not await request.is_disconnected():
            await anyio.sleep(0.5)
        cancel.set()

    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        try:
            outcome.append(await anyio.to_thread.run_sync(work, cancel))
        except Exception as exc:  # raised below, outside the group (which would wrap it)
            failure.append(exc)
        group.cancel_scope.cancel()
    if failure:
        raise failure[0]
    return outcome[0]


# -- audio transcriptions ----------------------------------------------------------------------


@dataclass(frozen=True)
class TranscriptionRequest:
    """An upload to transcribe, reduced to what the recogniser uses."""

    audio: bytes
    response_format: str  # json | text | verbose_json


def upload_limit_bytes(max_upload_mb: float) -> int:
    """The largest transcription request body: asr.max_upload_mb for the file, plus the form's other fields."""
    return int(max_upload_mb * 1024 * 1024) + FORM_SLACK_BYTES


def _too_large(size: int | None, max_upload_mb: float) -> ApiError:
    what = f"the upload is {size / 1_048_576:.1f} MB," if size is not None else "the upload is"
    return ApiError(
        413,
        f"{what} over the {max_upload_mb:g} MB limit (asr.max_upload_mb); send a shorter recording",
        "file_too_large",
        "file",
    )


def check_content_length(headers: Mapping[str, str], limit: int, max_upload_mb: float) -> None:
    """A declared body over ``limit`` is refused (413) before a byte of it is read."""
    declared = headers.get("content-length")
    if declared is None:
        return  # chunked: counted as it arrives (_capped)
    try:
        size = int(declared)
    except ValueError:
        raise ApiError(400, f"Content-Length must be a number; got {declared!r}", "invalid_content_length") from None
    if size > limit:
        raise _too_large(size, max_upload_mb)


def _capped(request: Request, limit: int, max_upload_mb: float) -> Request:
    """The request, its body refused (413) as soon as more than ``limit`` bytes of it have arrived."""
    receive = request.receive
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(None, max_upload_mb)
        return message

    return Request(request.scope, counted)


async def read_transcription_form(form: FormData) -> TranscriptionRequest:
    """OpenAI's transcription form: ``file`` and ``model``; ``language`` and ``prompt`` are checked, not used."""
    check_model(form.get("model"), ASR_MODEL_ID)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ApiError(400, "file must be the audio, sent as a multipart file part", "invalid_file", "file")
    for key in ("language", "prompt"):
        if not isinstance(form.get(key, ""), str):
            raise ApiError(400, f"{key} must be text", f"invalid_{key}", key)
    fmt = _choice(form, "response_format", TRANSCRIPTION_FORMATS, "json")
    return TranscriptionRequest(await upload.read(), fmt)


def transcribe(engines: Companion, audio: bytes) -> Transcript:
    """The recording heard by the companion's recogniser (VAD, recognition, game-term correction)."""
    from modules.asr.audio import AudioError
    from modules.model_files import ModelNotFoundError

    try:
        return engines.recognizer.transcribe(audio)
    except AudioError as exc:  # silence, noise, not audio, too long: the caller's recording
        if exc.code == "too_large":  # a file just under the body's limit but over asr.max_upload_mb
            raise ApiError(413, str(exc), "file_too_large", "file") from None
        raise ApiError(400, str(exc), exc.code, "file") from None
    except (ModelNotFoundError, ImportError) as exc:  # no model or library here; the message says how to get one
        raise ApiError(503, str(exc), "asr_unavailable", kind="server_error") from None
    except Exception as exc:
        log.exception("transcription through the API failed")
        raise ApiError(500, f"speech recognition failed: {exc}", "asr_failed", kind="server_error") from None


def transcription_response(transcript: Transcript, fmt: str) -> Response:
    """``json``: the corrected text; ``text``: the same as plain text; ``verbose_json``: with the recogniser's
    own words (``raw_text``), the language heard and the recording's length."""
    if fmt == "text":
        return PlainTextResponse(transcript.text)
    if fmt == "verbose_json":
        return JSONResponse(
            {
                "task": "transcribe",
                "language": transcript.language or "",
                "duration": round(transcript.audio_seconds, 3),
                "text": transcript.text,
                "raw_text": transcript.raw_text,
            }
        )
    return JSONResponse({"text": transcript.text})


# -- speech ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeechRequest:
    """Text to speak in the Monkey King's voice, and how to send it."""

    text: str
    response_format: str  # wav | pcm | mp3


SPEECH_MEDIA_TYPES = {"wav": "audio/wav", "pcm": f"audio/L16;rate={PCM_RATE};channels=1", "mp3": "audio/mpeg"}


def speech_formats() -> tuple[str, ...]:
    """What /v1/audio/speech sends: WAV and raw PCM always, MP3 when ffmpeg is installed."""
    return ("wav", "pcm", "mp3") if shutil.which("ffmpeg") else ("wav", "pcm")


def parse_speech_request(raw: bytes, max_chars: int, formats: Sequence[str] = ("wav", "pcm")) -> SpeechRequest:
    """OpenAI's speech body; ``voice`` and ``speed`` are checked, not used (there is one voice)."""
    body = _json_object(raw)
    check_model(body.get("model"), TTS_MODEL_ID)
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "input must be the text to speak, a non-empty string", "invalid_input", "input")
    if len(text) > max_chars:
        raise ApiError(
            400,
            f"input is {len(text)} characters, over the {max_chars} spoken at once "
            f"(app.max_question_chars x {SPEECH_INPUT_FACTOR}); send it in parts",
            "input_too_long",
            "input",
        )
    voice = body.get("voice")
    if voice is not None and not isinstance(voice, str | dict):
        raise ApiError(400, "voice must be a string (every voice is the Monkey King's)", "invalid_voice", "voice")
    speed = body.get("speed")
    if speed is not None and (isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4):
        raise ApiError(400, f"speed must be a number from 0.25 to 4.0; got {speed!r}", "invalid_speed", "speed")
    if body.get("stream_format") not in (None, "audio"):
        message = "stream_format must be audio (server-sent events are not offered)"
        raise ApiError(400, message, "unsupported_stream_format", "stream_format")
    fmt = body.get("response_format")
    if fmt is not None and fmt not in formats:
        hint = " (mp3 needs ffmpeg on the server)" if fmt == "mp3" else ""
        message = f"response_format must be one of {', '.join(formats)}; got {fmt!r}{hint}"
        raise ApiError(400, message, "unsupported_response_format", "response_format")
    return SpeechRequest(text.strip(), fmt or "wav")


def wav_stream_header(sample_rate: int) -> bytes:
    """A 16-bit mono WAV header whose lengths are unknown (0xFFFFFFFF, as streaming servers write them): the
    samples follow as they are made, and readers (ffmpeg, soundfile, Python's wave) read to the end."""
    unknown = struct.pack("<I", 0xFFFFFFFF)
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return b"RIFF" + unknown + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + unknown


def pcm16(clip: AudioClip, rate: int | None = None) -> bytes:
    """The clip as 16-bit signed little-endian samples, resampled to ``rate`` when given."""
    samples = clip.samples
    if rate is not None and rate != clip.sample_rate:
        from math import gcd

        from scipy.signal import resample_poly

        divisor = gcd(rate, clip.sample_rate)
        samples = resample_poly(samples, rate // divisor, clip.sample_rate // divisor)
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def speech_audio(synth: SpeechSynthesizer, settings: TtsSettings, req: SpeechRequest) -> Generator[bytes, None, None]:
    """The response body, a piece as each sentence is synthesised (the companion's SpeechStream).

    The first piece comes once the first sentence is spoken, so nothing speakable (400) and a failing voice
    (500) are known before the status line is sent. Closing the generator (the client went away) closes the
    stream, which drops the sentences not yet spoken.
    """
    from modules.rag.text import mostly_english
    from modules.tts.service import SpeechStream

    stream = SpeechStream(synth, settings, "en" if mostly_english(req.text) else "zh")
    try:
        stream.feed(req.text)
        stream.end()
        clips = iter(stream)
        try:
            first = next(clips, None)
        except Exception as exc:
            log.warning("speech synthesis through the API failed: %s", exc)
            raise ApiError(500, f"speech synthesis failed: {exc}", "tts_failed", kind="server_error") from None
        if first is None:
            message = f"nothing to say: {req.text[:60]!r} has no speakable text"
            raise ApiError(400, message, "nothing_to_say", "input")
        if req.response_format == "mp3":
            ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
            yield from _ffmpeg_mp3((pcm16(clip) for clip in _prepend(first, clips)), first.sample_rate, ffmpeg)
        elif req.response_format == "pcm":
            for clip in _prepend(first, clips):
                yield pcm16(clip, PCM_RATE)
        else:
            yield wav_stream_header(first.sample_rate) + pcm16(first)
            for clip in clips:
                yield pcm16(clip)
    finally:
        stream.close()


def _prepend(first: T, rest: Iterator[T]) -> Iterator[T]:
    yield first
    yield from rest


def _ffmpeg_mp3(pcm: Iterator[bytes], rate: int, ffmpeg: str) -> Generator[bytes, None, None]:
    """16-bit mono PCM encoded to MP3 by ffmpeg as it arrives: fed from a thread, read here."""
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar", str(rate), "-ac", "1"]
    command += ["-i", "pipe:0", "-f", "mp3", "-b:a", "64k", "-flush_packets", "1", "pipe:1"]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout
    failed: list[Exception] = []

    def feed() -> None:
        try:
            for chunk in pcm:
                try:
                    stdin.write(chunk)
                    stdin.flush()
                except OSError:  # ffmpeg is gone (the client left, or it failed): the reader says which
                    return
        except Exception as exc:  # the voice failed: raised by the reader
            failed.append(exc)
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    writer = threading.Thread(target=feed, name="speech-mp3", daemon=True)
    writer.start()
    try:
        while chunk := os.read(stdout.fileno(), 1 << 16):
            yield chunk
        writer.join()
        if failed:
            raise failed[0]
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg could not encode MP3 (exit status {proc.returncode})")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        stdout.close()


def _voice(engines: Companion) -> SpeechSynthesizer:
    synth = engines.synthesizer
    if synth is None:
        message = f"no voice on this server: {engines.synthesizer_problem}"
        raise ApiError(503, message, "tts_unavailable", kind="server_error")
    return synth


# -- image generations -------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageGenerationRequest:
    """A picture to draw, reduced to what the companion's drawing path uses."""

    prompt: str
    size: tuple[int, int] | None  # None: image.width x image.height
    response_format: str  # url | b64_json
    seed: int | None


_SIZE = re.compile(r"(\d+)x(\d+)")


def parse_size(value: object) -> tuple[int, int] | None:
    """``WIDTHxHEIGHT`` (multiples of 8, 64 to 2048, what Stable Diffusion draws); None for absent or auto."""
    if value is None or value == "auto":
        return None
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if match:
        width, height = int(match[1]), int(match[2])
        if all(side % 8 == 0 and 64 <= side <= 2048 for side in (width, height)):
            return width, height
    raise ApiError(
        400,
        f"size must be WIDTHxHEIGHT, both multiples of 8 from 64 to 2048 (e.g. 512x512), or auto; got {value!r}",
        "invalid_size",
        "size",
    )


def parse_image_request(raw: bytes, max_chars: int) -> ImageGenerationRequest:
    """OpenAI's image generation body (``n`` = 1), with ``seed`` as an extension."""
    body = _json_object(raw)
    check_model(body.get("model"), IMAGE_MODEL_ID)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ApiError(400, "prompt must be a non-empty string", "invalid_prompt", "prompt")
    if len(prompt) > max_chars:
        message = f"prompt is {len(prompt)} characters, over the {max_chars} allowed (app.max_question_chars)"
        raise ApiError(400, message, "prompt_too_long", "prompt")
    n = body.get("n")
    if n is not None and (type(n) is not int or n != 1):
        raise ApiError(400, f"only n=1 is supported; got {n!r}", "invalid_n", "n")
    seed = body.get("seed")
    if seed is not None and (type(seed) is not int or not 0 <= seed < 2**32):
        raise ApiError(400, f"seed must be an integer from 0 to 4294967295; got {seed!r}", "invalid_seed", "seed")
    fmt = _choice(body, "response_format", ("url", "b64_json"), "url")
    return ImageGenerationRequest(prompt.strip(), parse_size(body.get("size")), fmt, seed)


class _SizedDrawer:
    """A drawer whose pictures are ``width`` x ``height`` rather than image.width x image.height."""

    def __init__(self, drawer: ImageGenerator, width: int, height: int) -> None:
        self.drawer = drawer
        self.name = drawer.name
        self.width = width
        self.height = height

    @property
    def trigger_words(self) -> str:
        return self.drawer.trigger_words

    def request_for(self, prompt: str, negative_prompt: str | None = None, seed: int | None = None) -> ImageRequest:
        request = self.drawer.request_for(prompt, negative_prompt=negative_prompt, seed=seed)
        return replace(request, width=self.width, height=self.height)

    def generate(
        self, request: ImageRequest, cancel: threading.Event | None = None
    ) -> Generator[ImageProgress | GeneratedImage, None, None]:
        return self.drawer.generate(request, cancel=cancel)


def draw_picture(engines: Companion, req: ImageGenerationRequest, cancel: threading.Event | None = None) -> Drawn:
    """The picture drawn the way the chat draws one (``Companion.draw``), the prompt not refined by the chat
    model: the prompt is the caller's, translated and given the LoRA's trigger words."""
    from app.companion import Companion
    from modules.image.service import NO_IMAGE_MODEL

    try:
        drawer = engines.drawer
    except Exception as exc:  # a broken model folder, a missing library: the message says which
        raise ApiError(503, f"drawing is unavailable: {exc}", "image_unavailable", kind="server_error") from None
    if drawer is None:
        raise ApiError(503, NO_IMAGE_MODEL, "image_unavailable", kind="server_error")
    painter = engines
    configured = (engines.settings.image.width, engines.settings.image.height)
    if req.size is not None and req.size != configured:
        # The same companion and drawer (the loaded pipeline is shared), asking for another size.
        painter = Companion(engines.settings, engines.chat, drawer=_SizedDrawer(drawer, *req.size))
    said: list[str] = []

    def note(event: TurnEvent) -> None:
        if isinstance(event, TextDelta) and event.text.strip():
            said.append(event.text.strip())

    answer = collect(painter.draw(req.prompt, cancel, seed=req.seed, refine=False), note)
    if answer.image is None:
        why = said[-1] if said else answer.answer
        raise ApiError(500, f"the picture was not drawn: {why}", "image_generation_failed", kind="server_error")
    return answer.image


def image_result(drawn: Drawn, fmt: str, base_url: str) -> dict[str, Any]:
    """OpenAI's images response; ``seed`` (an extension) redraws the same picture."""
    item: dict[str, Any] = {"revised_prompt": drawn.prompt, "seed": drawn.seed}
    if fmt == "b64_json":
        item["b64_json"] = base64.b64encode(drawn.path.read_bytes()).decode("ascii")
    else:
        item["url"] = picture_url(drawn, base_url)
    return {"created": int(time.time()), "data": [item]}


# -- routes ------------------------------------------------------------------------------------


ENGINE_ENDPOINTS = {
    ASR_MODEL_ID: "POST /v1/audio/transcriptions",
    TTS_MODEL_ID: "POST /v1/audio/speech",
    IMAGE_MODEL_ID: "POST /v1/images/generations",
}


def _add_engine_routes(router: APIRouter, engines: Companion) -> None:
    """The companion's ears, voice and brush behind OpenAI's audio and image endpoints."""

    @router.post("/audio/transcriptions", response_model=None)
    async def transcriptions(request: Request) -> Response:
        max_mb = engines.settings.asr.max_upload_mb
        limit = upload_limit_bytes(max_mb)
        check_content_length(request.headers, limit, max_mb)  # before a byte of the body is read
        kind = request.headers.get("content-type", "")
        if kind.partition(";")[0].strip().lower() != "multipart/form-data":
            message = f"send the audio as multipart/form-data (parts file and model); got Content-Type {kind!r}"
            raise ApiError(415, message, "unsupported_media_type")
        try:
            async with _capped(request, limit, max_mb).form(max_files=1, max_fields=16) as form:
                req = await read_transcription_form(form)
        except HTTPException as exc:  # a malformed multipart body, or more than one file
            raise ApiError(400, f"the multipart body could not be read: {exc.detail}", "invalid_multipart") from None
        transcript = await run_in_threadpool(transcribe, engines, req.audio)
        return transcription_response(transcript, req.response_format)

    @router.post("/audio/speech", response_model=None)
    async def speech(request: Request) -> StreamingResponse:
        max_chars = engines.settings.app.max_question_chars * SPEECH_INPUT_FACTOR
        req = parse_speech_request(await request.body(), max_chars, speech_formats())
        synth = await run_in_threadpool(_voice, engines)
        audio = speech_audio(synth, engines.settings.tts, req)
        first = await anyio.to_thread.run_sync(next, audio, b"")  # the first sentence, or the 400/500
        return StreamingResponse(
            _off_loop(_after(first, audio)),
            media_type=SPEECH_MEDIA_TYPES[req.response_format],
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.post("/images/generations", response_model=None)
    async def images(request: Request) -> JSONResponse:
        req = parse_image_request(await request.body(), engines.settings.app.max_question_chars)
        drawn = await _while_connected(request, lambda cancel: draw_picture(engines, req, cancel))
        return JSONResponse(image_result(drawn, req.response_format, str(request.base_url)))


def add_openai_api(
    app: FastAPI,
    source: TurnSource,
    *,
    backend: str,
    api_key: str | None,
    image_dir: Path | None = None,
    engines: Companion | None = None,
) -> None:
    """Serve /v1/models, /v1/chat/completions and the drawn pictures on ``app``, answering through ``source``.

    ``backend`` is the active answerer's name (shown in the model's metadata); ``api_key``, when set, is
    required as a Bearer token on every request (see required_api_key). ``engines`` (the companion) adds
    /v1/audio/transcriptions, /v1/audio/speech and /v1/images/generations, under the same key.
    """
    started = int(time.time())
    offered = ["GET /v1/models", "POST /v1/chat/completions", *(ENGINE_ENDPOINTS.values() if engines else ())]

    def authorize(request: Request) -> None:
        _check_key(api_key, request.headers.get("authorization"))

    router = APIRouter(prefix="/v1", dependencies=[Depends(authorize)])

    @router.get("/models")
    async def list_models() -> dict[str, Any]:
        def model(model_id: str, metadata: dict[str, str]) -> dict[str, Any]:
            return {"id": model_id, "object": "model", "created": started, "owned_by": "wulewule", "metadata": metadata}

        data = [model(MODEL_ID, {"backend": backend})]
        if engines is not None:
            data += [model(model_id, {"endpoint": endpoint}) for model_id, endpoint in ENGINE_ENDPOINTS.items()]
        return {"object": "list", "data": data}

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

    if engines is not None:
        _add_engine_routes(router, engines)  # before the catch-all below, which would shadow them

    @router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def unknown(path: str) -> JSONResponse:
        message = f"no endpoint /v1/{path} here; this server offers {', '.join(offered)}"
        return ApiError(404, message, "unknown_url").response()

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        error = exc if isinstance(exc, ApiError) else ApiError(500, str(exc), "internal_error", kind="server_error")
        return error.response()

    app.add_exception_handler(ApiError, on_api_error)
    app.include_router(router)
