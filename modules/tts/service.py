"""Speech out for the app: pick the backend, and speak an answer while it is still being written.

``create_synthesizer`` picks the backend from ``tts.backend`` (auto: ChatTTS when its model is on
this machine, else espeak-ng when installed, else none, with ``backend_status`` saying why).

``SpeechStream`` is the voice of a streamed answer: the caller pushes the answer's text in as it is
written (``feed``, then ``end``) and takes audio out, either without waiting (``ready``) or to the end
(iterating). One worker thread cuts the text into sentences (SentenceSplitter), normalises each and
synthesises it chunk by chunk, so sentence N+1 is being synthesised while sentence N plays and while the
model is still writing sentence N+2. Chunks come out in text order, back to back (nothing is dropped,
repeated or mixed). ``close`` stops at once: the worker ends at its next chunk and closes the
synthesizer's stream for the sentence in hand. ``synthesize`` is the same stream collected, for
``python -m app say``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Generator, Iterator
from pathlib import Path

import numpy as np

from modules.audio_types import AudioClip, wav_bytes
from modules.model_files import locate_model
from modules.status import BackendStatus
from modules.tts.base import SpeechSynthesizer
from modules.tts.normalize import Lang, speech_segments
from modules.tts.settings import TtsSettings
from modules.tts.splitter import SentenceSplitter

log = logging.getLogger(__name__)

_END = object()


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


def backend_status(settings: TtsSettings, repo_root: Path) -> BackendStatus:
    """What create_synthesizer would build, without loading anything (for the UI and `doctor`)."""
    from modules.tts.espeak_tts import INSTALL_HINT, find_espeak

    if settings.backend == "openai":
        from modules.tts.openai_tts import openai_status

        return openai_status(settings.openai, f"voice replies (tts.backend={settings.backend})")
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
    name = f"voice replies (tts.backend={settings.backend})"
    return BackendStatus(name, backend is not None, reason, "", backend, chattts_dir if backend == "chattts" else None)


def create_synthesizer(
    settings: TtsSettings, repo_root: Path, *, verify_checksums: bool = True
) -> SpeechSynthesizer | None:
    """The configured synthesizer (models load on first use); None in auto mode when none is available.

    An explicitly chosen backend that is missing raises (ModelNotFoundError naming tts.chattts.model,
    EspeakNotFoundError naming the apt package; ValueError naming tts.openai.base_url for ``openai`` without
    one). ``verify_checksums`` is ChatTTS's sha256 check.
    """
    if settings.backend == "openai":
        from modules.tts.openai_tts import OpenAISpeechSynthesizer

        return OpenAISpeechSynthesizer.from_settings(settings.openai)
    status = backend_status(settings, repo_root)
    if settings.backend == "chattts" or status.backend == "chattts":
        from modules.tts.chattts_tts import ChatTTSSynthesizer, check_model_dir

        spec = settings.chattts.model
        root = status.model_path
        if root is None:  # chosen explicitly but absent or incomplete: raises, naming the key and the fix
            root = check_model_dir(locate_model(spec, repo_root).path if spec.strip() else None, spec)
        speaker = settings.chattts.speaker
        speaker = speaker if speaker.is_absolute() else repo_root / speaker
        return ChatTTSSynthesizer(settings.chattts, root, speaker, verify_checksums=verify_checksums)
    if settings.backend == "espeak" or status.backend == "espeak":
        from modules.tts.espeak_tts import EspeakSynthesizer

        return EspeakSynthesizer(settings.espeak)
    log.info("answers stay text only: %s", status.detail)
    return None


class SpeechStream:
    """Push text in (``feed``/``end``), take audio out (``ready`` or iterate); synthesis runs on one worker."""

    def __init__(
        self,
        synth: SpeechSynthesizer,
        settings: TtsSettings,
        lang: Lang = "auto",
        first_clause_chars: int = 12,
    ) -> None:
        if lang not in ("auto", "zh", "en"):
            raise ValueError(f"lang must be 'auto', 'zh' or 'en', got {lang!r}")
        self.synth = synth
        self.lang: Lang = lang
        self.max_sentence_chars = settings.max_sentence_chars  # longer sentences are cut at natural pauses
        self._splitter = SentenceSplitter(first_clause_chars=first_clause_chars)
        self._feed_lock = threading.Lock()
        self._ended = False
        self._sentences: queue.Queue[object] = queue.Queue()
        self._audio: queue.Queue[object] = queue.Queue()
        self._finished = False  # the end marker (or an error) has been taken from the audio queue
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name=f"tts-{synth.name}", daemon=True)
        self._worker.start()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def feed(self, delta: str) -> None:
        """More answer text; every sentence it completes is queued for synthesis (ignored after close)."""
        with self._feed_lock:
            if self._stop.is_set():
                return
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

    def close(self, wait_s: float = 0.0) -> None:
        """Stop now: queued sentences are dropped and the worker ends at its next chunk.

        Returns at once by default (a stop must not wait for a slow model to finish its chunk); ``wait_s``
        waits up to that long for the worker to end.
        """
        self._stop.set()
        self._sentences.put(_END)
        if wait_s > 0 and self._worker is not threading.current_thread():
            self._worker.join(timeout=wait_s)

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
                if isinstance(chunks, Generator):
                    chunks.close()  # a backend mid-sentence stops generating now
            if self._stop.is_set():
                return

    def _take(self, block: bool) -> AudioClip | None:
        """The next chunk; None at the end (or, not blocking, when none is ready); raises a worker's error."""
        if self._finished or self._stop.is_set():
            return None
        try:
            item = self._audio.get(block=block)
        except queue.Empty:
            return None
        if item is _END:
            self._finished = True
            return None
        if isinstance(item, BaseException):
            self._finished = True
            raise item
        assert isinstance(item, AudioClip)
        return item

    def ready(self) -> list[AudioClip]:
        """The chunks finished so far, without waiting; raises a worker's error."""
        out = []
        while (clip := self._take(block=False)) is not None:
            out.append(clip)
        return out

    def __iter__(self) -> Iterator[AudioClip]:
        """Audio chunks in order until the text has ended and all of it is spoken; raises a worker's error."""
        while (clip := self._take(block=True)) is not None:
            yield clip

    def __enter__(self) -> SpeechStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def synthesize(text: str, synth: SpeechSynthesizer, settings: TtsSettings, lang: Lang = "auto") -> AudioClip:
    """The whole text as one clip (the stream collected); ValueError when nothing in it is speakable."""
    with SpeechStream(synth, settings, lang) as stream:
        stream.feed(text)
        stream.end()
        chunks = list(stream)
    if not chunks:
        raise ValueError(f"nothing to say: {text[:60]!r} has no speakable text")
    return AudioClip(np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate)


def write_wav(clip: AudioClip, path: Path) -> Path:
    """Write the clip as a 16-bit PCM mono WAV (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(clip))
    return path
