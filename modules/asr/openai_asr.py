"""A SpeechRecognizer for any OpenAI-compatible transcription server (``asr.backend: openai``).

It POSTs ``{base_url}/audio/transcriptions`` as multipart form data: the clip as a 16 kHz 16-bit mono WAV
(``file``), ``model``, ``language`` when ``asr.language`` is zh or en, and ``response_format=json``; the
answer ``{"text": ...}`` becomes one TranscriptSegment spanning the clip. Traditional characters are made
simplified, as the local Whisper does; game-term correction is the pipeline's job and runs after this.

Transcribing is idempotent, so a request that never got an answer because the connection failed (refused,
reset, the server hung up before replying) is sent once more; a timeout, an HTTP error or a garbled answer is
not retried. Every failure becomes a RecognitionError naming the server's URL, the config key and what to do.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx

from modules.asr.audio import TARGET_RATE, frame_16k
from modules.asr.base import RecognitionError, TranscriptSegment
from modules.asr.chinese import han_count, to_simplified
from modules.audio_types import AudioClip, wav_bytes
from modules.openai_http import Endpoint, excerpt, http_client, send_retrying
from modules.status import BackendStatus

if TYPE_CHECKING:
    from modules.asr.settings import OpenAIAsrSettings

log = logging.getLogger(__name__)

_LANGUAGES = {"zh": "zh", "chinese": "zh", "mandarin": "zh", "en": "en", "english": "en"}
_URL_KEY = "asr.openai.base_url"


def wav_16k(audio: AudioClip) -> bytes:
    """The clip as a 16 kHz 16-bit PCM mono WAV file's bytes (resampled when it is at another rate)."""
    if audio.sample_rate == TARGET_RATE:
        return wav_bytes(audio)
    return wav_bytes(AudioClip(frame_16k(audio.sample_rate, audio.samples), TARGET_RATE))


def openai_status(settings: OpenAIAsrSettings, name: str) -> BackendStatus:
    """Whether ``asr.openai`` is configured; the server itself is checked on first use, not here."""
    url = settings.base_url.strip()
    if not url:
        return BackendStatus(
            name,
            False,
            f"asr.backend=openai but {_URL_KEY} is empty",
            f"set {_URL_KEY} to the /v1 URL of an OpenAI-compatible transcription server "
            "(e.g. http://127.0.0.1:8000/v1), and asr.openai.model / asr.openai.api_key_env as it needs",
        )
    key = f", key from ${settings.api_key_env}" if os.environ.get(settings.api_key_env) else ""
    model = f"model {settings.model}" if settings.model else "the server's default model"
    detail = f"remote speech recognition at {url} ({model}{key}), checked on first use"
    return BackendStatus(name, True, detail, "", "openai")


class OpenAIRecognizer:
    """Sends each clip to an OpenAI-compatible ``/audio/transcriptions`` endpoint; one segment per clip."""

    def __init__(
        self,
        base_url: str,
        model: str = "",
        api_key: str | None = None,
        language: str = "auto",
        connect_timeout: float = 5,
        read_timeout: float = 60,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        name: str = "openai",
    ) -> None:
        if not base_url.strip():
            raise ValueError(
                f"asr.backend=openai: the server URL is empty; set {_URL_KEY}, e.g. http://127.0.0.1:8000/v1"
            )
        if language not in ("auto", "zh", "en"):
            raise ValueError(f"asr.language must be auto, zh or en (got {language!r})")
        self.base_url = base_url.strip().rstrip("/")
        self.model = model
        self.language = language
        self.name = name
        self.read_timeout = read_timeout
        self._endpoint = Endpoint(
            prefix=f"{name} speech recognition",
            server="the server",
            section="asr.openai",
            verb="transcribes audio",
            error=RecognitionError,
            base_url=self.base_url,
            connect_timeout=connect_timeout,
            api_key_env=api_key_env,
            has_key=bool(api_key),
            model=model,
        )
        self._client = http_client(api_key, connect_timeout, read_timeout)

    @classmethod
    def from_settings(cls, settings: OpenAIAsrSettings, language: str = "auto") -> OpenAIRecognizer:
        """A recogniser for ``asr.openai``; the key is read from the environment variable it names."""
        return cls(
            settings.base_url,
            settings.model,
            api_key=os.environ.get(settings.api_key_env) or None,
            language=language,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            api_key_env=settings.api_key_env,
        )

    @property
    def url(self) -> str:
        return f"{self.base_url}/audio/transcriptions"

    def segments(self, audio: AudioClip) -> Iterator[TranscriptSegment]:
        """The clip's transcript as one segment (none when the server heard nothing)."""
        form: dict[str, Any] = {"response_format": "json"}
        if self.model:  # empty = not sent: the server's own model
            form["model"] = self.model
        if self.language in ("zh", "en"):
            form["language"] = self.language
        body = self._post(form, wav_16k(audio))
        text, heard = self._parse(body)
        language = self.language if self.language in ("zh", "en") else heard
        if han_count(text):
            text = to_simplified(text)
            language = language or "zh"
        elif language is None and any(c.isascii() and c.isalpha() for c in text):
            language = "en"
        if text:
            yield TranscriptSegment(text, 0.0, audio.seconds, language)

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    def __enter__(self) -> OpenAIRecognizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the request ----------------------------------------------------------------------------

    def _post(self, form: dict[str, Any], wav: bytes) -> bytes:
        """The body of a successful answer; one more try when the connection failed before any answer."""
        try:
            response = send_retrying(
                self._endpoint,
                self.url,
                lambda: self._client.post(self.url, data=form, files={"file": ("speech.wav", wav, "audio/wav")}),
                log,
            )
        except httpx.TimeoutException:
            raise RecognitionError(
                f"{self.name} speech recognition: no reply from {self.url} within {self.read_timeout:g} s — "
                "it may be overloaded or still loading; try again, or raise asr.openai.read_timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise self._endpoint.failed(self.url, exc) from None
        if response.status_code >= 400:
            raise self._endpoint.status(response.status_code, response.content, self.url)
        return response.content

    def _parse(self, body: bytes) -> tuple[str, str | None]:
        """The text (and the language, when the server says) of a json transcription."""
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise RecognitionError(
                f"{self.name} speech recognition: {self.url} did not answer with a transcription "
                f"({excerpt(body.decode('utf-8', errors='replace'), 120)!r}); is {_URL_KEY} the /v1 URL of an "
                "OpenAI-compatible server?"
            )
        heard = data.get("language")
        language = _LANGUAGES.get(heard.strip().lower()) if isinstance(heard, str) else None
        return data["text"].strip(), language
