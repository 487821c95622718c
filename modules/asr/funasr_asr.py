"""FunASR speech recognition: Paraformer-zh (default) or SenseVoiceSmall, from local model directories.

Which model a directory holds is read from its ``config.yaml`` (``model:``):

- ``Paraformer`` / ``BiCifParaformer``: Chinese; takes no hotwords (the ``hotword`` argument is ignored).
- ``SeacoParaformer`` / ``ContextualParaformer``: Chinese with hotwords; the knowledge base's names are
  passed as a hotword file (one name per line, characters space-separated, which tokenizes the same
  with or without the model's ``seg_dict``).
- ``SenseVoiceSmall``: multilingual; gets ``language`` and ``use_itn`` and writes ``<|zh|>``-style tags
  that are read for the language and then stripped with ``rich_transcription_postprocess``.

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
from typing import TYPE_CHECKING, Any

import yaml

from modules.asr.base import RecognitionError, TranscriptSegment
from modules.asr.chinese import to_simplified
from modules.asr.hotwords import spoken_form
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
    ) -> None:
        """Load the model (and the optional VAD and punctuation models) from local directories."""
        if language not in ("auto", "zh", "en"):
            raise ValueError(f"asr.language must be auto, zh or en (got {language!r})")
        self.model_dir = model_dir
        self.kind = model_kind(model_dir)
        self.device = resolve_device(device)
        self.language = language
        try:
            import torch
            from funasr import AutoModel
        except ImportError as exc:
            raise ImportError(f"asr.backend funasr needs funasr: run `{INSTALL_COMMAND}`") from exc
        options: dict[str, Any] = {
            "model": str(model_dir),
            "disable_update": True,  # no version check over the network
            "disable_pbar": True,
            "log_level": "ERROR",
            "device": self.device,
            # FunASR sets torch's thread count for the whole process (default 4); keep what the app has.
            "ncpu": torch.get_num_threads(),
        }
        if vad_dir is not None:
            options["vad_model"] = str(vad_dir)
        if punc_dir is not None:
            options["punc_model"] = str(punc_dir)
        try:
            self._model = AutoModel(**options)
        except (RuntimeError, ValueError, OSError, KeyError, AssertionError, TypeError) as exc:
            raise RecognitionError(f"asr.funasr.model: cannot load {model_dir} on {self.device}: {exc}") from exc
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
        )

    def generate_options(self) -> dict[str, Any]:
        """The keyword arguments ``AutoModel.generate`` gets for this model kind."""
        options: dict[str, Any] = {}
        if self.kind in SENSEVOICE_MODELS:
            options.update(language=self.language, use_itn=True)
        if self.hotword_file is not None:
            options["hotword"] = str(self.hotword_file)
        return options

    def segments(self, audio: AudioClip) -> Iterator[TranscriptSegment]:
        """The recognised text of a 16 kHz clip as one segment (none when nothing was recognised)."""
        if audio.sample_rate != FUNASR_RATE:
            raise ValueError(f"funasr needs {FUNASR_RATE} Hz audio (use modules.asr.audio.load_audio)")
        with self._lock:  # one model, one caller at a time (Gradio calls from worker threads)
            try:
                results = self._model.generate(input=audio.samples, **self.generate_options())
            except (RuntimeError, ValueError, IndexError, KeyError) as exc:
                raise RecognitionError(f"funasr failed on a {audio.seconds:.1f} s clip: {exc}") from exc
        raw = " ".join(str(r.get("text", "")) for r in results if isinstance(r, dict)).strip()
        text, language = self._clean(raw)
        if text:
            yield TranscriptSegment(text, 0.0, audio.seconds, language)

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
