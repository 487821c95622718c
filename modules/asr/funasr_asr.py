"""FunASR speech recognition: Paraformer-zh (default), streaming Paraformer or SenseVoiceSmall, from local dirs.

Which model a directory holds is read from its ``config.yaml`` (``model:``):

- ``Paraformer`` / ``BiCifParaformer``: Chinese; takes no hotwords (the ``hotword`` argument is ignored).
- ``SeacoParaformer`` / ``ContextualParaformer``: Chinese with hotwords; the knowledge base's names are
  passed as a hotword file (one name per line, characters space-separated, which tokenizes the same
  with or without the model's ``seg_dict``).
- ``SenseVoiceSmall``: multilingual; gets ``language`` and ``use_itn`` and writes ``<|zh|>``-style tags
  that are read for the language and then stripped with ``rich_transcription_postprocess``.
- ``ParaformerStreaming`` (``paraformer-zh-streaming``): Chinese, decoded online: ``chunk_size[1]`` x 60 ms
  of audio at a time, each ``generate`` call carrying the same ``cache`` and the last one ``is_final=True``
  (``asr.funasr.streaming``: auto/true; false decodes each clip in one such call). ``segments(clip)``
  yields one segment per clip, the chunk texts joined and punctuated, so that game-name correction sees
  whole names; ``stream_session()`` gives the text chunk by chunk while audio is still arriving.
  FunASR's fsmn-vad is not used with it (VAD would cut every 600 ms chunk on its own; the app's VAD cuts
  phrases), and the punctuation model runs on the finished text only, not on every chunk.

Optional VAD (fsmn-vad) and punctuation (ct-punc) models are loaded when configured. Nothing is ever
downloaded here: a hub id that is not on this machine is an error naming the config key and
``python -m app download asr``.
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml

from modules.asr.base import RecognitionError, TranscriptSegment
from modules.asr.chinese import to_simplified
from modules.asr.hotwords import spoken_form
from modules.asr.recognize import join_segments
from modules.audio_types import AudioClip
from modules.model_files import ModelNotFoundError, locate_model

if TYPE_CHECKING:
    from modules.asr.settings import FunasrSettings

log = logging.getLogger(__name__)

INSTALL_COMMAND = "pip install funasr==1.4.16"
DOWNLOAD_COMMAND = "python -m app download asr"
FUNASR_RATE = 16000
HOTWORD_MODELS = frozenset({"SeacoParaformer", "ContextualParaformer"})
SENSEVOICE_MODELS = frozenset({"SenseVoiceSmall"})
STREAMING_MODELS = frozenset({"ParaformerStreaming"})
FRAME_SAMPLES = 960  # one 60 ms model frame at 16 kHz (LFR 6 x 10 ms); chunk_size counts these
MAX_HOTWORDS = 200  # SeACo attends over every hotword; the most important names are enough
_LANGUAGE_TAG = re.compile(r"<\|(zh|en|yue|ja|ko|nospeech)\|>")
_ANY_TAG = re.compile(r"<\|[^|]*\|>")


def model_kind(model_dir: Path) -> str:
    """The model class a FunASR model directory declares in its config.yaml (e.g. ``Paraformer``)."""
    config = model_dir / "config.yaml"
    if not config.is_file():
        if (model_dir / "configuration.json").is_file():
            return "unknown"  # a ModelScope layout that points elsewhere for its config; let FunASR read it
        raise RecognitionError(
            f"{model_dir} is not a FunASR model directory (no config.yaml). "
            f"Point asr.funasr.model at one, or run `{DOWNLOAD_COMMAND}`"
        )
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise RecognitionError(f"{config} cannot be read: {exc}") from None
    return str(data.get("model", "unknown")) if isinstance(data, dict) else "unknown"


def resolve_device(device: str) -> str:
    """auto -> cuda:0 when torch sees a GPU, else cpu."""
    if device != "auto":
        return device
    try:
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch comes with funasr
        return "cpu"


def locate_funasr_model(spec: str, key: str, repo_root: Path) -> Path:
    """The local directory of a configured FunASR model; ModelNotFoundError naming the key otherwise."""
    where = locate_model(spec, repo_root)
    if where.path is None or not where.path.is_dir():
        how = f"run `{DOWNLOAD_COMMAND}`" if where.is_hub_id else "check the path"
        raise ModelNotFoundError(
            f"{key}: model {spec!r} is not on this machine ({how}; it is looked for in models/, the "
            f"ModelScope cache and the Hugging Face cache). Or set {key} to a local model directory"
        )
    return where.path


def write_hotword_file(names: Sequence[str], directory: Path, limit: int = MAX_HOTWORDS) -> Path | None:
    """A hotword file FunASR reads: one name per line, its characters separated by spaces."""
    forms = list(dict.fromkeys(f for f in (spoken_form(n) for n in names) if f))[:limit]
    if not forms:
        return None
    path = directory / "hotwords.txt"
    path.write_text("\n".join(" ".join(form) for form in forms) + "\n", encoding="utf-8")
    return path


def streaming_mode(kind: str, streaming: bool | str, model_dir: Path) -> tuple[bool, bool]:
    """(decode with a streaming cache, chunk by chunk) for a model kind and ``asr.funasr.streaming``."""
    if streaming not in ("auto", True, False):
        raise ValueError(f"asr.funasr.streaming must be auto, true or false (got {streaming!r})")
    if streaming is True and kind not in STREAMING_MODELS | {"unknown"}:
        raise RecognitionError(
            f"asr.funasr.streaming is true but {model_dir} holds a {kind}, an offline model: point "
            "asr.funasr.model at a streaming Paraformer (`python -m app download asr-streaming`) or set it to auto"
        )
    is_streaming = kind in STREAMING_MODELS or streaming is True
    return is_streaming, is_streaming and streaming is not False


def check_chunk_size(chunk_size: Sequence[int]) -> list[int]:
    """``asr.funasr.chunk_size`` as FunASR takes it: three frame counts, the chunk itself at least one."""
    sizes = list(chunk_size)
    if len(sizes) != 3 or not all(isinstance(n, int) and n >= 0 for n in sizes) or sizes[1] < 1:
        raise ValueError(
            f"asr.funasr.chunk_size must be [left context, chunk, look-ahead] in 60 ms frames, none negative "
            f"and the chunk at least 1, e.g. [0, 10, 5] (got {chunk_size!r})"
        )
    return sizes


class FunasrRecognizer:
    """Speech -> text with FunASR's AutoModel on local model directories; load once, call from any thread."""

    name = "funasr"

    def __init__(
        self,
        model_dir: Path,
        names: Sequence[str] = (),
        *,
        vad_dir: Path | None = None,
        punc_dir: Path | None = None,
        device: str = "auto",
        language: str = "auto",
        hotwords: bool = True,
        streaming: Literal["auto"] | bool = "auto",
        chunk_size: Sequence[int] = (0, 10, 5),
        encoder_chunk_look_back: int = 4,
        decoder_chunk_look_back: int = 1,
    ) -> None:
        """Load the model (and the optional VAD and punctuation models) from local directories."""
        if language not in ("auto", "zh", "en"):
            raise ValueError(f"asr.language must be auto, zh or en (got {language!r})")
        if encoder_chunk_look_back < 0 or decoder_chunk_look_back < 0:
            raise ValueError("asr.funasr.encoder_chunk_look_back and decoder_chunk_look_back must not be negative")
        self.model_dir = model_dir
        self.kind = model_kind(model_dir)
        self.device = resolve_device(device)
        self.language = language
        # streaming: a streaming Paraformer (always decoded with a cache and is_final); online: chunk by chunk.
        self.streaming, self.online = streaming_mode(self.kind, streaming, model_dir)
        self.stream_options: dict[str, Any] = {
            "chunk_size": check_chunk_size(chunk_size),
            "encoder_chunk_look_back": encoder_chunk_look_back,
            "decoder_chunk_look_back": decoder_chunk_look_back,
        }
        self.chunk_samples = self.stream_options["chunk_size"][1] * FRAME_SAMPLES  # 9600 = 600 ms
        try:
            import torch
            from funasr import AutoModel
        except ImportError as exc:
            raise ImportError(f"asr.backend funasr needs funasr: run `{INSTALL_COMMAND}`") from exc
        base: dict[str, Any] = {
            "disable_update": True,  # no version check over the network
            "disable_pbar": True,
            "log_level": "ERROR",
            "device": self.device,
            # FunASR sets torch's thread count for the whole process (default 4); keep what the app has.
            "ncpu": torch.get_num_threads(),
        }
        options: dict[str, Any] = {"model": str(model_dir), **base}
        self._punc: Any = None  # a streaming model's punctuation model, run on the finished text
        if self.streaming:
            # AutoModel would run fsmn-vad and ct-punc on every 600 ms chunk (and hand them the ASR cache).
            if vad_dir is not None:
                log.info("funasr: %s is decoded online; the fsmn-vad model is not used with it", self.kind)
        else:
            if vad_dir is not None:
                options["vad_model"] = str(vad_dir)
            if punc_dir is not None:
                options["punc_model"] = str(punc_dir)
        try:
            self._model = AutoModel(**options)
        except (RuntimeError, ValueError, OSError, KeyError, AssertionError, TypeError) as exc:
            raise RecognitionError(f"asr.funasr.model: cannot load {model_dir} on {self.device}: {exc}") from exc
        if self.streaming and punc_dir is not None:
            try:
                self._punc = AutoModel(model=str(punc_dir), **base)
            except (RuntimeError, ValueError, OSError, KeyError, AssertionError, TypeError) as exc:
                raise RecognitionError(f"asr.funasr.punc_model: cannot load {punc_dir}: {exc}") from exc
        self._tmp = tempfile.TemporaryDirectory(prefix="wulewule-hotwords-")
        self.supports_hotwords = self.kind in HOTWORD_MODELS
        self.hotword_file = (
            write_hotword_file(names, Path(self._tmp.name)) if hotwords and self.supports_hotwords else None
        )
        if hotwords and names and not self.supports_hotwords:
            log.info("funasr: %s takes no hotwords; game names are corrected after recognition instead", self.kind)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: FunasrSettings, repo_root: Path, names: Sequence[str], language: str
    ) -> FunasrRecognizer:
        """Locate every configured model (no downloads) and build from the ``asr.funasr`` config section."""
        model_dir = locate_funasr_model(settings.model, "asr.funasr.model", repo_root)
        vad_dir = (
            locate_funasr_model(settings.vad_model, "asr.funasr.vad_model", repo_root) if settings.vad_model else None
        )
        punc_dir = (
            locate_funasr_model(settings.punc_model, "asr.funasr.punc_model", repo_root)
            if settings.punc_model
            else None
        )
        return cls(
            model_dir,
            names,
            vad_dir=vad_dir,
            punc_dir=punc_dir,
            device=settings.device,
            language=language,
            hotwords=settings.hotwords,
            streaming=settings.streaming,
            chunk_size=settings.chunk_size,
            encoder_chunk_look_back=settings.encoder_chunk_look_back,
            decoder_chunk_look_back=settings.decoder_chunk_look_back,
        )

    def generate_options(self) -> dict[str, Any]:
        """The keyword arguments ``AutoModel.generate`` gets for this model kind (besides cache and is_final)."""
        options: dict[str, Any] = {}
        if self.kind in SENSEVOICE_MODELS:
            options.update(language=self.language, use_itn=True)
        if self.hotword_file is not None:
            options["hotword"] = str(self.hotword_file)
        if self.streaming:
            options.update(self.stream_options)
        return options

    def segments(self, audio: AudioClip) -> Iterator[TranscriptSegment]:
        """The recognised text of a 16 kHz clip as one segment (none when nothing was recognised).

        A streaming model decodes the clip ``chunk_samples`` at a time with one fresh cache (the last chunk
        ``is_final``), or in one call when ``asr.funasr.streaming`` is false; either way one segment comes
        back, punctuated as a whole. A clip shorter than one 60 ms model frame gives no segment.
        """
        if audio.sample_rate != FUNASR_RATE:
            raise ValueError(f"funasr needs {FUNASR_RATE} Hz audio (use modules.asr.audio.load_audio)")
        if len(audio.samples) < FRAME_SAMPLES:
            return  # too short to hold a word (and to make even one frame for the model)
        if self.streaming:
            stream = self.stream_session()
            step = self.chunk_samples if self.online else len(audio.samples)
            starts = range(0, len(audio.samples), step)
            for start in starts[:-1]:
                stream.feed(audio.samples[start : start + step])
            text, language = stream.finish(audio.samples[starts[-1] :]), stream.language
        else:
            with self._lock:  # one model, one caller at a time (Gradio calls from worker threads)
                try:
                    results = self._model.generate(input=audio.samples, **self.generate_options())
                except (RuntimeError, ValueError, IndexError, KeyError) as exc:
                    raise RecognitionError(f"funasr failed on a {audio.seconds:.1f} s clip: {exc}") from exc
            text, language = self._clean(_joined_text(results))
        if text:
            yield TranscriptSegment(text, 0.0, audio.seconds, language)

    def stream_session(self) -> FunasrStream:
        """A new utterance to decode while its audio arrives (streaming models only): ``feed``, then ``finish``."""
        if not self.streaming:
            raise RecognitionError(
                f"{self.model_dir} holds a {self.kind}, which decodes whole clips only: streaming needs a "
                "streaming Paraformer (`python -m app download asr-streaming`)"
            )
        return FunasrStream(self)

    def decode_chunk(self, samples: np.ndarray, cache: dict[str, Any], is_final: bool) -> str:
        """One online ``generate`` call: the raw text of these samples, given (and updating) ``cache``."""
        with self._lock:
            try:
                results = self._model.generate(input=samples, cache=cache, is_final=is_final, **self.generate_options())
            except (RuntimeError, ValueError, IndexError, KeyError, AssertionError) as exc:
                raise RecognitionError(f"funasr failed on a {len(samples) / FUNASR_RATE:.2f} s chunk: {exc}") from exc
        return _joined_text(results)

    def punctuate(self, text: str) -> str:
        """A streaming model's finished text with the punctuation model's marks (unchanged without one)."""
        if self._punc is None or not text.strip():
            return text
        with self._lock:
            try:
                results = self._punc.generate(input=text)
            except (RuntimeError, ValueError, IndexError, KeyError, AssertionError) as exc:
                raise RecognitionError(f"funasr punctuation failed: {exc}") from exc
        return _joined_text(results) or text

    def _clean(self, raw: str) -> tuple[str, str | None]:
        language: str | None = "zh" if self.kind not in SENSEVOICE_MODELS else None
        tag = _LANGUAGE_TAG.search(raw)
        if tag:
            language = None if tag.group(1) == "nospeech" else tag.group(1)
            from funasr.utils.postprocess_utils import rich_transcription_postprocess

            raw = rich_transcription_postprocess(raw)
        text = _ANY_TAG.sub("", raw).strip()
        # SenseVoice marks emotions and sound events with emoji: not part of the question.
        text = "".join(c for c in text if unicodedata.category(c) != "So")
        # Paraformer spaces out English words and sometimes Chinese characters; Chinese needs none.
        text = re.sub(r"(?<=[\u4e00-\u9fff])\s+(?=[\u4e00-\u9fff])", "", text).strip()
        return to_simplified(text), language

    def close(self) -> None:
        """Remove the temporary hotword file."""
        self._tmp.cleanup()


class FunasrStream:
    """One utterance decoded online while its audio arrives: ``feed`` 16 kHz samples, then ``finish`` once.

    Audio is buffered here and handed to the model a whole chunk (``chunk_size[1]`` x 60 ms) at a time with
    this stream's own cache, so each ``feed`` returns the text of the chunks it completed (often ""). One
    stream per utterance and per thread; streams of one recogniser may interleave (each has its own cache).
    """

    def __init__(self, recognizer: FunasrRecognizer) -> None:
        self._recognizer = recognizer
        self._cache: dict[str, Any] = {}
        self._pending = np.zeros(0, dtype=np.float32)
        self._pieces: list[str] = []  # raw text of each decoded chunk
        self.samples_fed = 0
        self.chunks_decoded = 0  # generate calls so far, the final one included
        self.finished = False
        self.language: str | None = None  # known once finished

    @property
    def text(self) -> str:
        """The text so far (unpunctuated until ``finish``)."""
        return self._recognizer._clean(join_segments(self._pieces))[0]

    def feed(self, samples: np.ndarray) -> str:
        """Add 16 kHz mono samples; the text of the chunks they completed ("" while a chunk is filling)."""
        block = self._take(samples)
        self._pending = np.concatenate((self._pending, block))
        whole = len(self._pending) // self._recognizer.chunk_samples * self._recognizer.chunk_samples
        if whole == 0:
            return ""
        chunk, self._pending = self._pending[:whole], self._pending[whole:]
        return self._decode(chunk, is_final=False)

    def finish(self, samples: np.ndarray | None = None) -> str:
        """Decode what is left (with ``samples``, if given) as the final chunk; the whole utterance's text.

        The text is all chunks joined, punctuated (when a punctuation model is configured) and cleaned, the
        same as ``segments`` gives; "" when less than one 60 ms frame of audio was fed in all.
        """
        if samples is not None:
            self._pending = np.concatenate((self._pending, self._take(samples)))
        else:
            self._check_open()
        self.finished = True
        if self.samples_fed < FRAME_SAMPLES:
            return ""
        self._decode(self._pending, is_final=True)  # FunASR resets the cache after the final chunk
        self._pending = np.zeros(0, dtype=np.float32)
        text, self.language = self._recognizer._clean(self._recognizer.punctuate(join_segments(self._pieces)))
        return text

    def _decode(self, chunk: np.ndarray, is_final: bool) -> str:
        raw = self._recognizer.decode_chunk(chunk, self._cache, is_final)
        self.chunks_decoded += 1
        self._pieces.append(raw)
        return self._recognizer._clean(raw)[0]

    def _check_open(self) -> None:
        if self.finished:
            raise RuntimeError("this stream is finished: start another with stream_session()")

    def _take(self, samples: np.ndarray) -> np.ndarray:
        self._check_open()
        block = np.asarray(samples)
        if block.ndim != 1:
            raise ValueError(f"feed 16 kHz mono samples (1-D), got shape {block.shape}")
        if np.issubdtype(block.dtype, np.integer):
            block = block / float(np.iinfo(block.dtype).max + 1)  # PCM integers -> [-1, 1]
        block = block.astype(np.float32, copy=False)
        self.samples_fed += len(block)
        return block


def _joined_text(results: Any) -> str:
    """The text of FunASR's result list (one dict per input)."""
    return " ".join(str(r.get("text", "")) for r in results if isinstance(r, dict)).strip()
