"""The speech-recognition pipeline the app calls: audio in, a corrected transcript (or a clear refusal) out.

    load_audio -> silero VAD (no speech: NoSpeechError) -> recogniser (FunASR or Whisper, prompt echoes
    dropped) -> game-term correction -> Transcript(text, raw_text)

The backend is chosen by ``asr.backend``; ``auto`` takes FunASR when its models are on this machine, else
Whisper when its model is, else says which download command gets one. Models load on first use and are
then shared by every caller (each backend serialises its own model calls).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from modules.asr.audio import AudioError, AudioSource, load_audio
from modules.asr.base import SpeechRecognizer, Transcript, TranscriptSegment
from modules.asr.vad import SpeechChunk
from modules.audio_types import AudioClip
from modules.model_files import ModelNotFoundError, locate_model
from modules.status import BackendStatus

if TYPE_CHECKING:
    from modules.asr.correction import TermCorrector
    from modules.asr.settings import AsrSettings
    from modules.asr.vad import SileroVad
    from modules.rag.types import Document

log = logging.getLogger(__name__)

NO_SPEECH_MESSAGES = {
    "zh": "没有听清，请再说一遍",
    "en": "Sorry, I didn't catch that — please say it again.",
}
DOWNLOAD_FUNASR = "python -m app download asr"
DOWNLOAD_WHISPER = "python -m app download asr-cpu"


class NoSpeechError(AudioError):
    """The recording holds no speech (silence, noise, a cut-off fragment) or nothing could be recognised."""

    def __init__(self, language: str = "zh") -> None:
        super().__init__("no_speech", NO_SPEECH_MESSAGES["en" if language == "en" else "zh"])
        self.language = language


def _library_present(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _funasr_missing(settings: AsrSettings, repo_root: Path) -> list[str]:
    """The configured FunASR models (config keys) that are not on this machine."""
    keys = [("asr.funasr.model", settings.funasr.model)]
    keys += [(k, v) for k, v in (("asr.funasr.vad_model", settings.funasr.vad_model),
                                 ("asr.funasr.punc_model", settings.funasr.punc_model)) if v]  # fmt: skip
    return [f"{key}={spec}" for key, spec in keys if locate_model(spec, repo_root).path is None]


def _status(
    settings: AsrSettings, backend: str | None, ready: bool, message: str, path: Path | None = None
) -> BackendStatus:
    return BackendStatus(f"voice input (asr.backend={settings.backend})", ready, message, "", backend, path)


def _funasr_status(settings: AsrSettings, repo_root: Path) -> BackendStatus:
    where = locate_model(settings.funasr.model, repo_root)
    missing = _funasr_missing(settings, repo_root)
    if not _library_present("funasr"):
        message = "funasr is not installed: run `pip install funasr==1.4.16`"
    elif missing:
        message = f"FunASR model not on this machine ({', '.join(missing)}): run `{DOWNLOAD_FUNASR}`"
    else:
        message = f"FunASR {settings.funasr.model} ({where.path})"
    ready = not missing and _library_present("funasr")
    return _status(settings, "funasr", ready, message, where.path)


def _whisper_status(settings: AsrSettings, repo_root: Path) -> BackendStatus:
    where = locate_model(settings.whisper.model, repo_root)
    present = where.path is not None and (where.path / "model.bin").is_file()
    if not _library_present("faster_whisper"):
        message = "faster-whisper is not installed: run `pip install faster-whisper==1.2.1`"
    elif not present:
        message = (
            f"Whisper model asr.whisper.model={settings.whisper.model} not on this machine: run `{DOWNLOAD_WHISPER}`"
        )
    else:
        message = f"faster-whisper {settings.whisper.model} ({where.path})"
    ready = present and _library_present("faster_whisper")
    return _status(settings, "whisper", ready, message, where.path)


def backend_status(settings: AsrSettings, repo_root: Path) -> BackendStatus:
    """What ``create_recognizer`` would use, without loading anything (cheap enough for ``doctor``)."""
    if settings.backend == "openai":
        from modules.asr.openai_asr import openai_status

        return openai_status(settings.openai, f"voice input (asr.backend={settings.backend})")
    if settings.backend == "funasr":
        return _funasr_status(settings, repo_root)
    if settings.backend == "whisper":
        return _whisper_status(settings, repo_root)
    funasr, whisper = _funasr_status(settings, repo_root), _whisper_status(settings, repo_root)
    if funasr.ok:
        return funasr
    if whisper.ok:
        return whisper
    message = (
        "voice input needs a speech model: run `python -m app download asr-cpu` (Whisper base, for CPUs) "
        f"or `{DOWNLOAD_FUNASR}` (FunASR Paraformer, best for Chinese). FunASR: {funasr.detail}; "
        f"Whisper: {whisper.detail}"
    )
    return _status(settings, None, False, message)


def create_recognizer(settings: AsrSettings, names: Sequence[str], repo_root: Path) -> SpeechRecognizer:
    """Load the recogniser ``asr.backend`` selects; ModelNotFoundError (with the command) when it is absent.

    ``openai`` is a remote server (ValueError naming asr.openai.base_url when that is empty).
    """
    if settings.backend == "openai":
        from modules.asr.openai_asr import OpenAIRecognizer

        return OpenAIRecognizer.from_settings(settings.openai, settings.language)
    status = backend_status(settings, repo_root)
    if status.backend is None:
        raise ModelNotFoundError(status.detail)
    if status.backend == "funasr":
        if not _library_present("funasr"):
            raise ImportError(status.detail)
        from modules.asr.funasr_asr import FunasrRecognizer

        return FunasrRecognizer.from_settings(settings.funasr, repo_root, names, settings.language)
    if not _library_present("faster_whisper"):
        raise ImportError(status.detail)
    if not status.ok or status.model_path is None:
        raise ModelNotFoundError(status.detail)
    from modules.asr.whisper_asr import WhisperRecognizer

    return WhisperRecognizer.from_settings(settings.whisper, status.model_path, names, settings.language)


def join_segments(texts: Sequence[str]) -> str:
    """Segment texts joined: nothing between Chinese characters, a space between anything else."""
    out = ""
    for text in (t.strip() for t in texts):
        if not text:
            continue
        if out and not (_is_han(out[-1]) or _is_han(text[0]) or out[-1] in "，。？！、" or text[0] in "，。？！、"):
            out += " "
        out += text
    return out


def _is_han(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff"


def _has_words(text: str) -> bool:
    return any(c.isalnum() for c in text)


class SpeechPipeline:
    """Turns recordings into transcripts; build once per app and share (models load on first use)."""

    def __init__(
        self,
        settings: AsrSettings,
        names: Sequence[str],
        repo_root: Path,
        recognizer: SpeechRecognizer | None = None,
    ) -> None:
        """``names``: the game vocabulary, most important first (``modules.asr.hotwords.game_vocabulary``)."""
        self.settings = settings
        self.names = list(names)
        self.repo_root = repo_root
        self._recognizer = recognizer
        self._vad: SileroVad | None = None
        self._corrector: TermCorrector | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_documents(
        cls,
        settings: AsrSettings,
        documents: Iterable[Document],
        repo_root: Path,
        recognizer: SpeechRecognizer | None = None,
    ) -> SpeechPipeline:
        """A pipeline whose vocabulary is the knowledge base's names plus game terms, in the right order."""
        from modules.asr.hotwords import game_vocabulary

        return cls(settings, game_vocabulary(documents), repo_root, recognizer)

    @property
    def max_bytes(self) -> int:
        return int(self.settings.max_upload_mb * 1024 * 1024)

    @property
    def language(self) -> str:
        """The language of messages to the player: English only when asr.language is en."""
        return "en" if self.settings.language == "en" else "zh"

    def status(self) -> BackendStatus:
        """The backend this pipeline uses (or would), and whether its model is present."""
        return backend_status(self.settings, self.repo_root)

    def recognizer(self) -> SpeechRecognizer:
        """The shared recogniser, loaded on first call."""
        with self._lock:
            if self._recognizer is None:
                self._recognizer = create_recognizer(self.settings, self.names, self.repo_root)
            return self._recognizer

    def vad(self) -> SileroVad:
        """The shared voice activity detector."""
        with self._lock:
            if self._vad is None:
                from modules.asr.vad import SileroVad

                self._vad = SileroVad(threshold=self.settings.vad_threshold)
            return self._vad

    def corrector(self) -> TermCorrector:
        """The shared game-term corrector (built from ``names`` on first call)."""
        with self._lock:
            if self._corrector is None:
                from modules.asr.correction import TermCorrector

                self._corrector = TermCorrector(self.names)
            return self._corrector

    def warm_up(self) -> None:
        """Load the recogniser, the VAD and the corrector now rather than on the first question."""
        self.recognizer()
        if self.settings.vad:
            self.vad()
        if self.settings.correction:
            self.corrector().correct("黑神话")

    def stream(self, source: AudioSource) -> Iterator[TranscriptSegment]:
        """Corrected segments as the recogniser produces them; AudioError for bad audio, NoSpeechError for none."""
        heard = False
        for _, fixed in self._heard(source)[1]:
            heard = True
            yield fixed
        if not heard:
            raise NoSpeechError(self.language)

    def transcribe(self, source: AudioSource) -> Transcript:
        """The whole transcript: ``raw_text`` as recognised, ``text`` with game names corrected."""
        clip_seconds, pairs = self._heard(source)
        segments = list(pairs)
        raw = join_segments([raw.text for raw, _ in segments])
        text = join_segments([fixed.text for _, fixed in segments])
        if not _has_words(raw):
            raise NoSpeechError(self.language)
        language = next((s.language for _, s in segments if s.language), None)
        return Transcript(text, raw, language, clip_seconds, getattr(self.recognizer(), "name", ""))

    def recognize_phrase(self, clip: AudioClip) -> list[TranscriptSegment]:
        """The raw segments of one phrase a live turn detector cut (16 kHz, no VAD trim, no correction)."""
        return [seg for seg in self.recognizer().segments(clip) if _has_words(seg.text)]

    def transcript(self, raw: Sequence[TranscriptSegment], seconds: float) -> Transcript:
        """Phrases recognised one by one, joined and corrected into one Transcript; NoSpeechError for none."""
        raw_text = join_segments([seg.text for seg in raw])
        if not _has_words(raw_text):
            raise NoSpeechError(self.language)
        corrector = self.corrector() if self.settings.correction else None
        fixed = [corrector.correct(seg.text) if corrector is not None else seg.text for seg in raw]
        language = next((seg.language for seg in raw if seg.language), None)
        return Transcript(join_segments(fixed), raw_text, language, seconds, getattr(self.recognizer(), "name", ""))

    def _heard(self, source: AudioSource) -> tuple[float, Iterator[tuple[TranscriptSegment, TranscriptSegment]]]:
        clip = load_audio(source, self.settings.max_seconds, self.max_bytes)
        pieces = [SpeechChunk(clip, 0.0)]
        if self.settings.vad:
            found = self.vad().trim(clip)
            if found is None:
                raise NoSpeechError(self.language)
            pieces = list(found.chunks)  # speech cut at pauses: each piece fits one recogniser window
        recognizer = self.recognizer()  # loaded before streaming starts, so a missing model fails here
        corrector = self.corrector() if self.settings.correction else None

        def pairs() -> Iterator[tuple[TranscriptSegment, TranscriptSegment]]:
            for piece in pieces:
                for seg in recognizer.segments(piece.clip):
                    if not _has_words(seg.text):
                        continue
                    fixed = corrector.correct(seg.text) if corrector is not None else seg.text
                    if fixed != seg.text:
                        log.info("asr: corrected %r -> %r", seg.text, fixed)
                    start, end = seg.start + piece.offset, seg.end + piece.offset
                    yield (
                        TranscriptSegment(seg.text, start, end, seg.language),
                        TranscriptSegment(fixed, start, end, seg.language),
                    )

        return clip.seconds, pairs()
