"""Speech out for the app: pick the backend, and speak an answer while it is still being written.

``create_synthesizer`` picks the backend from ``tts.backend`` (auto: ChatTTS when its model is on
this machine, else espeak-ng when installed, else none, with ``backend_status`` saying why).

``speak_stream`` is the voice of a streamed answer. Three parties run at once::

    feeder thread   pulls the answer's text deltas, cuts them into sentences (SentenceSplitter)
    worker thread   normalises each sentence and synthesises it, chunk by chunk, in order
    the caller      iterates the audio chunks as they are ready

so sentence N+1 is being synthesised while sentence N plays and while the model is still writing
sentence N+2. Chunks come out in text order, back to back (nothing is dropped, repeated or mixed).
Closing the iterator stops the worker at its next chunk and closes the synthesizer's stream for the
sentence in hand; the feeder stops pulling text at its next delta. ``synthesize`` is the same stream
collected, for ``python -m app say``.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import wave
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.config import TtsSettings
from modules.audio_types import AudioClip
from modules.model_files import locate_model
from modules.tts.base import SpeechSynthesizer
from modules.tts.normalize import Lang, speech_segments
from modules.tts.splitter import SentenceSplitter

log = logging.getLogger(__name__)

_END = object()
_JOIN_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class TtsStatus:
    """Which backend the settings give on this machine, and why."""

    backend: str | None  # "chattts", "espeak", or None: answers stay text only
    reason: str
    chattts_model: Path | None  # the ChatTTS folder when it is complete
    espeak: str | None  # the espeak-ng executable when installed


def _chattts_dir(settings: TtsSettings, repo_root: Path) -> tuple[Path | None, str]:
    from modules.tts.chattts_tts import missing_assets, model_root

    spec = settings.chattts.model
    if not spec.strip():
        return None, "tts.chattts.model is empty"
    found = locate_model(spec, repo_root).path
    if found is None:
        return None, f"ChatTTS model {spec!r} (tts.chattts.model) is not on this machine: python -m app download tts"
    root = model_root(found)
    missing = missing_assets(root)
    if missing:
        return None, f"ChatTTS model {root} is incomplete (no {missing[0]}): python -m app download tts"
    if settings.chattts.device == "cpu" or (settings.chattts.device == "auto" and not _has_cuda()):
        # Measured (bench/bench_tts.py): several times slower than real time on a 2-core CPU.
        return root, f"ChatTTS model at {root}, on CPU: slower than real time (tts.backend=espeak speaks at once)"
    return root, f"ChatTTS model at {root}"


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def backend_status(settings: TtsSettings, repo_root: Path) -> TtsStatus:
    """What create_synthesizer would build, without loading anything (for the UI and `doctor`)."""
    from modules.tts.espeak_tts import INSTALL_HINT, find_espeak

    chattts_dir, chattts_why = _chattts_dir(settings, repo_root)
    espeak = find_espeak(settings.espeak.command)
    espeak_why = (
        f"espeak-ng at {espeak}" if espeak else f"espeak-ng ({settings.espeak.command!r}) not found: {INSTALL_HINT}"
    )
    if settings.backend == "chattts":
        backend, reason = ("chattts" if chattts_dir else None), chattts_why
    elif settings.backend == "espeak":
        backend, reason = ("espeak" if espeak else None), espeak_why
    elif chattts_dir:
        backend, reason = "chattts", chattts_why
    elif espeak:
        backend, reason = "espeak", f"{espeak_why} ({chattts_why})"
    else:
        backend, reason = None, f"no speech synthesis: {chattts_why}; {espeak_why}"
    return TtsStatus(backend, reason, chattts_dir, espeak)


def create_synthesizer(
    settings: TtsSettings, repo_root: Path, *, verify_checksums: bool = True
) -> SpeechSynthesizer | None:
    """The configured synthesizer (models load on first use); None in auto mode when none is available.

    An explicitly chosen backend that is missing raises (ModelNotFoundError naming tts.chattts.model,
    EspeakNotFoundError naming the apt package). ``verify_checksums`` is ChatTTS's sha256 check.
    """
    status = backend_status(settings, repo_root)
    if settings.backend == "chattts" or status.backend == "chattts":
        from modules.tts.chattts_tts import ChatTTSSynthesizer, check_model_dir

        spec = settings.chattts.model
        root = status.chattts_model
        if root is None:  # chosen explicitly but absent or incomplete: raises, naming the key and the fix
            root = check_model_dir(locate_model(spec, repo_root).path if spec.strip() else None, spec)
        speaker = settings.chattts.speaker
        speaker = speaker if speaker.is_absolute() else repo_root / speaker
        return ChatTTSSynthesizer(settings.chattts, root, speaker, verify_checksums=verify_checksums)
    if settings.backend == "espeak" or status.backend == "espeak":
        from modules.tts.espeak_tts import EspeakSynthesizer

        return EspeakSynthesizer(settings.espeak)
    log.info("answers stay text only: %s", status.reason)
    return None


class SpeechStream:
    """Push text in (``feed``/``end``), iterate audio out; synthesis runs ahead in a worker thread."""

    def __init__(
        self,
        synth: SpeechSynthesizer,
        lang: Lang = "auto",
        max_sentence_chars: int = 80,
        first_clause_chars: int = 12,
    ) -> None:
        if lang not in ("auto", "zh", "en"):
            raise ValueError(f"lang must be 'auto', 'zh' or 'en', got {lang!r}")
        self.synth = synth
        self.lang: Lang = lang
        self.max_sentence_chars = max_sentence_chars
        self._splitter = SentenceSplitter(first_clause_chars=first_clause_chars)
        self._feed_lock = threading.Lock()
        self._ended = False
        self._sentences: queue.Queue[object] = queue.Queue()
        self._audio: queue.Queue[object] = queue.Queue()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name=f"tts-{synth.name}", daemon=True)
        self._worker.start()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def feed(self, delta: str) -> None:
        """More answer text; every sentence it completes is queued for synthesis."""
        with self._feed_lock:
            if self._ended:
                raise RuntimeError("SpeechStream.feed after end()")
            for sentence in self._splitter.feed(delta):
                self._sentences.put(sentence)

    def end(self, error: BaseException | None = None) -> None:
        """No more text (the rest is flushed); with error, the audio iterator raises it after the last sentence."""
        with self._feed_lock:
            if self._ended:
                return
            self._ended = True
            for sentence in self._splitter.flush():
                self._sentences.put(sentence)
            if error is not None:
                self._sentences.put(error)
            self._sentences.put(_END)

    def close(self) -> None:
        """Stop now: the worker ends at its next chunk; queued sentences are dropped."""
        self._stop.set()
        self._sentences.put(_END)
        if self._worker is not threading.current_thread():
            self._worker.join(timeout=_JOIN_TIMEOUT_S)
            if self._worker.is_alive():
                log.warning(
                    "speech worker still busy %.0f s after stop; it ends after its current chunk", _JOIN_TIMEOUT_S
                )

    @property
    def worker_alive(self) -> bool:
        return self._worker.is_alive()

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                item = self._sentences.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    self._audio.put(item)
                    break
                assert isinstance(item, str)
                self._speak(item)
        except Exception as exc:  # handed to the consumer, who raises it
            self._audio.put(exc)
        finally:
            self._audio.put(_END)

    def _speak(self, sentence: str) -> None:
        for segment in speech_segments(sentence, self.lang, self.max_sentence_chars):
            chunks = self.synth.stream_tts(segment)
            try:
                for clip in chunks:
                    if self._stop.is_set():
                        return
                    self._audio.put(clip)
            finally:
                close = getattr(chunks, "close", None)
                if callable(close):
                    close()  # a backend mid-sentence stops generating now
            if self._stop.is_set():
                return

    def __iter__(self) -> Iterator[AudioClip]:
        """Audio chunks in order until the text has ended and all of it is spoken; raises a worker's error."""
        while True:
            item = self._audio.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, AudioClip)
            yield item

    def __enter__(self) -> SpeechStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def speak_stream(
    text_deltas: Iterable[str],
    synth: SpeechSynthesizer,
    lang: Lang = "auto",
    *,
    max_sentence_chars: int = 80,
    first_clause_chars: int = 12,
) -> Iterator[AudioClip]:
    """The answer's audio, chunk by chunk, while its text still streams in (see the module docstring)."""
    stream = SpeechStream(synth, lang, max_sentence_chars, first_clause_chars)

    def pull() -> None:
        deltas = iter(text_deltas)
        try:
            for delta in deltas:
                if stream.stopped:
                    break
                stream.feed(delta)
        except Exception as exc:  # the text source failed: speak what came, then raise
            stream.end(exc)
        finally:
            stream.end()
            if stream.stopped:
                close = getattr(deltas, "close", None)
                if callable(close):
                    close()

    feeder = threading.Thread(target=pull, name="tts-feeder", daemon=True)
    feeder.start()
    try:
        yield from stream
    finally:
        stream.close()


def synthesize(text: str, synth: SpeechSynthesizer, lang: Lang = "auto", max_sentence_chars: int = 80) -> AudioClip:
    """The whole text as one clip (the stream collected); ValueError when nothing in it is speakable."""
    chunks = list(speak_stream([text], synth, lang, max_sentence_chars=max_sentence_chars))
    if not chunks:
        raise ValueError(f"nothing to say: {text[:60]!r} has no speakable text")
    return AudioClip(np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate)


def wav_bytes(clip: AudioClip) -> bytes:
    """The clip as a 16-bit PCM mono WAV file's bytes."""
    pcm = (np.clip(clip.samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(clip.sample_rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def write_wav(clip: AudioClip, path: Path) -> Path:
    """Write the clip as a 16-bit PCM mono WAV (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(clip))
    return path
