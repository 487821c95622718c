"""A SpeechSynthesizer for any OpenAI-compatible speech server (``tts.backend: openai``), streamed.

It POSTs ``{base_url}/audio/speech`` with JSON ``{model, input, voice, response_format}`` and reads the body
as it arrives, yielding an AudioClip for every piece: ``pcm`` is raw 16-bit little-endian mono at
``tts.openai.sample_rate`` (OpenAI's is 24 kHz) unless its type says otherwise (``audio/L16;rate=…``);
``wav`` is parsed header first (16-bit PCM, any channel count, mixed down to mono; the data size may be
unknown, as streaming servers write it), then streamed the same way. The first clip plays while the server
is still speaking the rest of the sentence.

Closing the iterator closes the HTTP response, which drops the connection, so the server stops. A request
that failed before any answer (connection refused or reset) is sent once more; once audio is flowing it is
never repeated (the player would hear the sentence twice). Failures are SpeechSynthesisErrors naming the
server's URL, the config key and what to do.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from modules.audio_types import AudioClip
from modules.openai_http import Endpoint, error_text, http_client, send_retrying
from modules.status import BackendStatus
from modules.tts.base import SpeechSynthesisError

if TYPE_CHECKING:
    from modules.tts.settings import OpenAITtsSettings

log = logging.getLogger(__name__)

_BODY_BYTES = 4096
_HEADER_BYTES = 65536  # a WAV header longer than this (before its data chunk) is not one a server sends
_URL_KEY = "tts.openai.base_url"
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # what streaming servers write for a data size they do not know yet


class MalformedAudioError(ValueError):
    """The body is not the audio format asked for; the message says what was wrong."""


class PcmDecoder:
    """Raw 16-bit little-endian PCM in, float32 clips out; a sample split across two pieces is kept whole."""

    def __init__(self, sample_rate: int, channels: int = 1) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self._carry = b""

    def feed(self, data: bytes) -> AudioClip | None:
        """The whole frames in ``data`` (and what was left over before) as one clip; None when none is whole."""
        buffer = self._carry + data
        frame = 2 * self.channels
        usable = len(buffer) - len(buffer) % frame
        self._carry = buffer[usable:]
        if not usable:
            return None
        samples = np.frombuffer(buffer[:usable], dtype="<i2").astype(np.float32) / 32768.0
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels).mean(axis=1)
        return AudioClip(samples, self.sample_rate)

    @property
    def leftover(self) -> int:
        """Bytes of an unfinished frame still held."""
        return len(self._carry)


def _pcm_layout(content_type: str, sample_rate: int) -> tuple[int, int]:
    """(rate, channels) of raw PCM: ``audio/L16;rate=…;channels=…`` (RFC 2586) when the server says, else
    the configured rate, mono."""
    params = dict(
        (key.strip().lower(), value.strip().strip('"'))
        for key, _, value in (part.partition("=") for part in content_type.split(";")[1:])
    )
    rate = int(params["rate"]) if params.get("rate", "").isdigit() and int(params["rate"]) > 0 else sample_rate
    channels = int(params["channels"]) if params.get("channels", "").isdigit() and int(params["channels"]) > 0 else 1
    return rate, channels


class WavDecoder:
    """A streamed WAV: the header is parsed as soon as it is in, then the data is decoded piece by piece."""

    def __init__(self) -> None:
        self._head = b""
        self._pcm: PcmDecoder | None = None
        self._remaining: int | None = None  # data bytes still to come; None = unknown (streamed WAV)

    @property
    def sample_rate(self) -> int | None:
        return self._pcm.sample_rate if self._pcm else None

    @property
    def leftover(self) -> int:
        return self._pcm.leftover if self._pcm else len(self._head)

    @property
    def started(self) -> bool:
        return self._pcm is not None

    def feed(self, data: bytes) -> AudioClip | None:
        if self._pcm is None:
            self._head += data
            data = self._parse_header()
            if self._pcm is None:
                return None
        if self._remaining is not None:
            data = data[: self._remaining]  # chunks after the data (LIST …) are not audio
            self._remaining -= len(data)
        return self._pcm.feed(data) if data else None

    def _parse_header(self) -> bytes:
        """Parse what of the header is in; returns the audio bytes after it once the data chunk starts."""
        head = self._head
        if len(head) >= 12 and (head[:4] != b"RIFF" or head[8:12] != b"WAVE"):
            raise MalformedAudioError(f"it does not start as a WAV file does (starts {head[:12]!r})")
        pos, fmt = 12, None
        while len(head) >= pos + 8:
            chunk_id, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
            if chunk_id == b"data":
                if fmt is None:
                    raise MalformedAudioError("its data comes before its fmt chunk")
                channels, rate = fmt
                self._pcm = PcmDecoder(rate, channels)
                self._remaining = None if size in _UNKNOWN_SIZES else size
                self._head = b""
                return head[pos + 8 :]
            end = pos + 8 + size + size % 2  # chunks are padded to an even length
            if len(head) < end:
                break
            if chunk_id == b"fmt ":
                fmt = self._format(head[pos + 8 : pos + 8 + size])
            pos = end
        if len(head) > _HEADER_BYTES:
            raise MalformedAudioError(f"no data chunk in its first {_HEADER_BYTES} bytes")
        return b""

    @staticmethod
    def _format(body: bytes) -> tuple[int, int]:
        """(channels, sample rate) of a 16-bit PCM fmt chunk."""
        if len(body) < 16:
            raise MalformedAudioError("its fmt chunk is too short")
        tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
        if tag not in (1, 0xFFFE) or bits != 16:
            raise MalformedAudioError(f"it is not 16-bit PCM (format {tag}, {bits} bits); ask for pcm instead")
        if channels < 1 or rate < 1:
            raise MalformedAudioError(f"its fmt chunk says {channels} channels at {rate} Hz")
        return channels, rate


def openai_status(settings: OpenAITtsSettings, name: str) -> BackendStatus:
    """Whether ``tts.openai`` is configured; the server itself is checked on first use, not here."""
    url = settings.base_url.strip()
    if not url:
        return BackendStatus(
            name,
            False,
            f"tts.backend=openai but {_URL_KEY} is empty",
            f"set {_URL_KEY} to the /v1 URL of an OpenAI-compatible speech server (e.g. http://127.0.0.1:8000/v1), "
            "and tts.openai.model / tts.openai.voice / tts.openai.api_key_env as it needs",
        )
    fmt = settings.response_format + (f" at {settings.sample_rate} Hz" if settings.response_format == "pcm" else "")
    key = f", key from ${settings.api_key_env}" if os.environ.get(settings.api_key_env) else ""
    model = f"model {settings.model}" if settings.model else "the server's default model"
    detail = f"remote voice at {url} ({model}, voice {settings.voice}, {fmt}{key}), checked on first use"
    return BackendStatus(name, True, detail, "", "openai")


class OpenAISpeechSynthesizer:
    """Streams speech from an OpenAI-compatible ``/audio/speech`` endpoint, clip by clip as it arrives."""

    def __init__(
        self,
        base_url: str,
        model: str = "",
        voice: str = "alloy",
        response_format: str = "pcm",
        sample_rate: int = 24000,
        api_key: str | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        name: str = "openai",
    ) -> None:
        if not base_url.strip():
            raise ValueError(
                f"tts.backend=openai: the server URL is empty; set {_URL_KEY}, e.g. http://127.0.0.1:8000/v1"
            )
        if response_format not in ("pcm", "wav"):
            raise ValueError(f"tts.openai.response_format must be pcm or wav (got {response_format!r})")
        if sample_rate <= 0:
            raise ValueError(f"tts.openai.sample_rate must be positive (got {sample_rate})")
        self.base_url = base_url.strip().rstrip("/")
        self.model = model
        self.voice = voice
        self.response_format = response_format
        self.sample_rate = sample_rate
        self.name = name
        self.read_timeout = read_timeout
        self._endpoint = Endpoint(
            prefix=f"{name} voice",
            server="the speech server",
            section="tts.openai",
            verb="speaks",
            error=SpeechSynthesisError,
            base_url=self.base_url,
            connect_timeout=connect_timeout,
            api_key_env=api_key_env,
            has_key=bool(api_key),
            model=model,
        )
        # read_timeout bounds the wait for each next piece of audio, not the whole sentence.
        self._client = http_client(api_key, connect_timeout, read_timeout)

    @classmethod
    def from_settings(cls, settings: OpenAITtsSettings) -> OpenAISpeechSynthesizer:
        """A synthesizer for ``tts.openai``; the key is read from the environment variable it names."""
        return cls(
            settings.base_url,
            settings.model,
            settings.voice,
            settings.response_format,
            settings.sample_rate,
            api_key=os.environ.get(settings.api_key_env) or None,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            api_key_env=settings.api_key_env,
        )

    @property
    def url(self) -> str:
        return f"{self.base_url}/audio/speech"

    def stream_tts(self, text: str) -> Iterator[AudioClip]:
        """Clips of the sentence as the server sends them; closing the iterator drops the connection."""
        payload = {"input": text, "voice": self.voice, "response_format": self.response_format}
        if self.model:  # empty = not sent: the server's own model
            payload["model"] = self.model
        decoder: PcmDecoder | WavDecoder = WavDecoder()
        got_audio = False
        try:
            # The response lives inside this generator: closing the generator closes it, and with it the
            # connection, so the server sees the client go away and stops speaking.
            with self._open(payload) as response:
                if self.response_format == "pcm":
                    decoder = PcmDecoder(*_pcm_layout(response.headers.get("content-type", ""), self.sample_rate))
                for data in response.iter_bytes():
                    clip = decoder.feed(data)
                    if clip is None:
                        continue
                    if clip.sample_rate != self.sample_rate:
                        self._adopt_rate(clip.sample_rate)
                    got_audio = True
                    yield clip
        except MalformedAudioError as exc:
            raise self._malformed(f"its {self.response_format} audio is malformed: {exc}") from None
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                raise self._endpoint.unreachable(exc) from None
            where = "in the middle of the sentence" if got_audio else "before any audio"
            raise SpeechSynthesisError(
                f"{self.name} voice: the speech server at {self.base_url} sent nothing for {self.read_timeout:g} s "
                f"{where} — it may be overloaded or still loading; try again, or raise tts.openai.read_timeout"
            ) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            where = "in the middle of the sentence" if got_audio else "before sending any audio"
            raise SpeechSynthesisError(
                f"{self.name} voice: the speech server at {self.base_url} broke off {where} ({exc}) — it may have "
                "crashed; check its log"
            ) from None
        except httpx.HTTPError as exc:
            raise self._endpoint.failed(self.url, exc) from None
        if not got_audio:
            if isinstance(decoder, WavDecoder) and not decoder.started and decoder.leftover:
                raise self._malformed("the answer ended inside its WAV header")
            if decoder.leftover or isinstance(decoder, WavDecoder):
                raise self._malformed("the answer ended before a whole sample of audio")
            raise self._malformed("the answer held no audio at all")

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    def __enter__(self) -> OpenAISpeechSynthesizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the pieces of stream_tts ---------------------------------------------------------------

    @contextmanager
    def _open(self, payload: dict[str, Any]) -> Iterator[httpx.Response]:
        """The streaming response, status and type checked; closed on leaving.

        A connection that failed before any answer is tried once more; nothing after the answer began.
        """
        # Any other error of the send (a read timeout, …) is stream_tts's to word.
        response = send_retrying(
            self._endpoint,
            self.url,
            lambda: self._client.send(self._client.build_request("POST", self.url, json=payload), stream=True),
            log,
        )
        try:
            if response.status_code >= 400:
                raise self._endpoint.status(response.status_code, self._head(response), self.url)
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind == "application/json" or kind.startswith("text/"):
                raise self._malformed(f"it answered with {kind}, not audio: {error_text(self._head(response))}")
            yield response
        finally:
            response.close()

    @staticmethod
    def _head(response: httpx.Response) -> bytes:
        body = b""
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) >= _BODY_BYTES:
                break
        return body

    def _adopt_rate(self, rate: int) -> None:
        """Audio whose header (WAV) or type (audio/L16;rate=…) gives another rate: that is the truth, said once."""
        log.warning(
            "tts.openai: the server sends audio at %d Hz, not tts.openai.sample_rate=%d; using %d Hz",
            rate,
            self.sample_rate,
            rate,
        )
        self.sample_rate = rate

    # -- errors ---------------------------------------------------------------------------------

    def _malformed(self, what: str) -> SpeechSynthesisError:
        return SpeechSynthesisError(
            f"{self.name} voice: {self.url} did not send usable audio ({what}); is {_URL_KEY} the /v1 URL of an "
            f"OpenAI-compatible speech server, and tts.openai.response_format ({self.response_format}) a format "
            "it sends?"
        )
