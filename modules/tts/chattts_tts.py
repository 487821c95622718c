"""ChatTTS: the conversational voice, with a fixed speaker so every sentence sounds like the same monkey.

The model loads from a local folder holding ChatTTS's ``asset/`` tree (``python -m app download tts``
puts it in ``models/ChatTTS``) with ``Chat.load(source="custom", custom_path=…)``: nothing is
downloaded. ChatTTS checks every asset file's sha256 against its own ``res/sha256_map.json``; the
released weights pass. ``verify_checksums=False`` takes out that comparison, and only it: the
files must still all be there, and everything else (building the models, loading the state
dicts, inference) is ChatTTS's own code. The tests use it for random weights built in the test;
for real weights leave it on, it catches a truncated or different download.

Every sentence is read with the same speaker embedding (``tts.chattts.speaker``, a voice file, see
``modules/tts/speaker.py``), the same sampling parameters and seed, and the prosody tags from the
config: ``[oral_N][laugh_N][break_N]`` for the text-refinement pass and ``[speed_N]`` for the audio
pass. Without a usable voice file (absent, or sized for a different model) the voice is the one
``tts.chattts.seed`` names (``draw_speaker``), with a warning: still one fixed voice for every sentence.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from modules.audio_types import AudioClip
from modules.model_files import ModelNotFoundError
from modules.tts.base import SpeechSynthesisError
from modules.tts.settings import ChatTTSSettings
from modules.tts.speaker import SpeakerEmbedding, SpeakerFileError, draw_speaker, load_speaker

log = logging.getLogger(__name__)

SAMPLE_RATE = 24000
DOWNLOAD_HINT = "python -m app download tts"
# What Chat.load(source="custom") reads, relative to the model folder (ChatTTS/config/config.py Path).
ASSET_FILES = (
    "asset/Decoder.safetensors",
    "asset/DVAE.safetensors",
    "asset/Embed.safetensors",
    "asset/Vocos.safetensors",
    "asset/gpt/config.json",
    "asset/gpt/model.safetensors",
    "asset/tokenizer/special_tokens_map.json",
    "asset/tokenizer/tokenizer_config.json",
    "asset/tokenizer/tokenizer.json",
)
_PATCH_LOCK = threading.Lock()  # the checksum bypass swaps a module attribute: one load at a time


def model_root(path: Path) -> Path:
    """The folder that holds asset/: the configured folder, or its parent when it is asset/ itself."""
    if not (path / "asset").is_dir() and path.name == "asset":
        return path.parent
    return path


def missing_assets(root: Path) -> list[str]:
    """The asset files Chat.load needs that are not under root."""
    return [rel for rel in ASSET_FILES if not (root / rel).is_file()]


def check_model_dir(path: Path | None, spec: str) -> Path:
    """The model folder ready for Chat.load, or ModelNotFoundError naming tts.chattts.model and the fix."""
    if path is None or not path.exists():
        raise ModelNotFoundError(
            f"config key tts.chattts.model: {spec!r} is not on this machine. Run `{DOWNLOAD_HINT}` "
            "or point tts.chattts.model at a folder holding ChatTTS's asset/ files"
        )
    root = model_root(path)
    missing = missing_assets(root)
    if missing:
        raise ModelNotFoundError(
            f"config key tts.chattts.model: {root} lacks {', '.join(missing)}. Run `{DOWNLOAD_HINT}` "
            "(it fetches the whole asset/ folder) or fix the path"
        )
    return root


@contextlib.contextmanager
def checksums_skipped() -> Iterator[None]:
    """ChatTTS's asset check with only the sha256 comparison taken out: each file must still exist."""
    from ChatTTS.utils import dl

    def exists_only(dir_name: Path, model_name: str, hash: str, remove_incorrect: bool = False) -> bool:
        # Same contract as dl.check_model, minus the digest; remove_incorrect renames mismatched
        # files there, which must never happen to files that were not checked.
        return (Path(dir_name) / model_name).is_file()

    with _PATCH_LOCK:
        original = dl.check_model
        dl.check_model = exists_only
        try:
            yield
        finally:
            dl.check_model = original


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" when a GPU is visible, else "cpu"; anything else as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_speaker(path: Path | None, dim: int, stats: tuple[np.ndarray, np.ndarray], seed: int) -> SpeakerEmbedding:
    """The voice file at path when it fits a model whose speakers are dim long; else the voice seed names."""
    fallback = f"the voice tts.chattts.seed={seed} names"
    if path is None:
        log.warning("no ChatTTS voice file configured (tts.chattts.speaker): using %s", fallback)
    elif not Path(path).is_file():
        log.warning("ChatTTS voice file %s (tts.chattts.speaker) not found: using %s", path, fallback)
    else:
        try:
            speaker = load_speaker(Path(path))
        except SpeakerFileError as exc:
            log.warning("%s: using %s", exc, fallback)
        else:
            if speaker.dim == dim:
                if not speaker.auditioned:
                    log.info(
                        "ChatTTS voice %s has not been auditioned with real weights (assets/voices/README.md)", path
                    )
                return speaker
            log.warning(
                "ChatTTS voice file %s is %d-dimensional but the model's speakers are %d: using %s",
                path,
                speaker.dim,
                dim,
                fallback,
            )
    return draw_speaker(seed, stats)


class ChatTTSSynthesizer:
    """ChatTTS behind the SpeechSynthesizer seam; the model loads on first use (or on ``load()``)."""

    name = "chattts"
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        settings: ChatTTSSettings,
        model_dir: Path,
        speaker_path: Path | None = None,
        *,
        verify_checksums: bool = True,
        refine_text: bool = True,
        max_refine_tokens: int = 384,
        max_audio_tokens: int = 2048,
    ) -> None:
        """model_dir holds asset/; speaker_path is the voice file (None: the seeded voice).

        ``verify_checksums=False`` skips ChatTTS's sha256 comparison (and nothing else), for weights that
        are not the released ones. ``max_refine_tokens``/``max_audio_tokens`` bound each pass (ChatTTS's
        own defaults): a sentence never generates forever.
        """
        if max_refine_tokens < 1 or max_audio_tokens < 1:
            raise ValueError("max_refine_tokens and max_audio_tokens must be positive")
        self.settings = settings
        self.model_dir = check_model_dir(Path(model_dir), str(model_dir))
        self.speaker_path = speaker_path
        self.verify_checksums = verify_checksums
        self.refine_text = refine_text
        self.max_refine_tokens = max_refine_tokens
        self.max_audio_tokens = max_audio_tokens
        self.device = resolve_device(settings.device)
        self._chat: Any = None
        self._speaker: SpeakerEmbedding | None = None
        self._load_lock = threading.Lock()
        self._infer_lock = threading.Lock()  # one Chat runs one inference at a time (shared context)

    # -- loading --------------------------------------------------------------------------------
    def load(self) -> None:
        """Load the model and the voice now (idempotent); raises with the fix named."""
        with self._load_lock:
            if self._chat is not None:
                return
            try:
                import ChatTTS
                import torch
            except ImportError as exc:
                raise ImportError(f"ChatTTS is not installed: pip install ChatTTS==0.2.5 vocos==0.1.0 ({exc})") from exc
            chat = ChatTTS.Chat(logging.getLogger("ChatTTS"))
            guard = contextlib.nullcontext() if self.verify_checksums else checksums_skipped()
            with guard:
                ok = chat.load(
                    source="custom", custom_path=str(self.model_dir), device=torch.device(self.device), compile=False
                )
            if not ok:
                raise SpeechSynthesisError(
                    f"ChatTTS could not load {self.model_dir}: its files do not match ChatTTS's sha256 list "
                    f"(a partial or different download; see the log). Run `{DOWNLOAD_HINT}` again"
                )
            stats = (chat.speaker.std.float().cpu().numpy(), chat.speaker.mean.float().cpu().numpy())
            self._speaker = pick_speaker(self.speaker_path, int(chat.speaker.dim), stats, self.settings.seed)
            self._chat = chat

    @property
    def speaker(self) -> SpeakerEmbedding:
        """The voice every sentence is read with (loads the model)."""
        self.load()
        assert self._speaker is not None
        return self._speaker

    @property
    def chat(self) -> Any:
        """The loaded ChatTTS.Chat (loads it)."""
        self.load()
        return self._chat

    # -- synthesis ------------------------------------------------------------------------------
    def _params(self, speaker: SpeakerEmbedding) -> tuple[Any, Any]:
        s, chat = self.settings, self._chat
        refine = chat.RefineTextParams(
            prompt=f"[oral_{s.oral}][laugh_{s.laugh}][break_{s.pause}]",
            top_P=s.top_p,
            top_K=s.top_k,
            manual_seed=s.seed,
            max_new_token=self.max_refine_tokens,
            show_tqdm=False,
        )
        code = chat.InferCodeParams(
            prompt=f"[speed_{s.speed}]",
            spk_emb=speaker.tensor(),
            temperature=s.temperature,
            top_P=s.top_p,
            top_K=s.top_k,
            manual_seed=s.seed,
            max_new_token=self.max_audio_tokens,
            show_tqdm=False,
        )
        return refine, code

    def render(self, text: str, speaker: SpeakerEmbedding | None = None) -> Iterator[AudioClip]:
        """A sentence as audio chunks, read by speaker (default: the configured voice)."""
        if not text.strip():
            return
        self.load()
        voice = speaker if speaker is not None else self.speaker
        if voice.dim != int(self._chat.speaker.dim):
            raise ValueError(f"speaker is {voice.dim}-dimensional, the model's speakers are {self._chat.speaker.dim}")
        refine, code = self._params(voice)
        with self._infer_lock:
            chunks = self._chat.infer(
                text,
                stream=True,
                skip_refine_text=not self.refine_text,
                split_text=False,  # sentences arrive already split; ChatTTS's own split re-reads the first one
                params_refine_text=refine,
                params_infer_code=code,
            )
            try:
                for wavs in chunks:
                    samples = np.asarray(wavs, dtype=np.float32).reshape(-1)
                    if samples.size:
                        yield AudioClip(samples, SAMPLE_RATE)
            finally:
                # Closing ends ChatTTS's generation loop at its next step.
                close = getattr(chunks, "close", None)
                if callable(close):
                    close()

    def stream_tts(self, text: str) -> Iterator[AudioClip]:
        """A sentence as audio chunks as ChatTTS streams them, in the configured voice."""
        yield from self.render(text)
