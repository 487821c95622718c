"""ChatTTS speaker embeddings: drawn from a seed, saved to and loaded from a voice file.

A ChatTTS 0.2.x voice is a ``hidden_size``-long (768) float16 vector. ``chat.sample_random_speaker()``
draws it as ``randn(768) * std + mean`` from the speaker statistics ChatTTS keeps in its config
(``Config.spk_stat``: the std and mean of the released model's speaker space) and hands it out as a
compressed string. ``draw_speaker(seed)`` makes the same draw from a fixed seed, so a seed names a
voice on every machine and device, with or without the weights loaded.

A voice file (``assets/voices/*.pt``) is a ``torch.save``-d dict::

    format      "wulewule.chattts-speaker"      version   1
    spk_emb     float16 tensor [dim]            spk_emb_str  the same, as ChatTTS's string form
    dim, seed, auditioned (bool), source, line, model, chattts_version, note

It loads with ``torch.load(weights_only=True)`` and works in plain ChatTTS too:
``InferCodeParams(spk_emb=torch.load(path)["spk_emb_str"])``.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "wulewule.chattts-speaker"
VERSION = 1


class SpeakerFileError(ValueError):
    """A voice file that is missing, unreadable or not a ChatTTS speaker embedding."""


@dataclass(frozen=True, eq=False)
class SpeakerEmbedding:
    """One ChatTTS voice: the vector and where it came from."""

    vector: np.ndarray  # float16, shape (dim,)
    seed: int | None = None
    auditioned: bool = False  # True once a person listened to it with real weights and chose it
    source: str = ""
    line: str = ""  # the line it was auditioned with
    model: str = ""  # the weights it was auditioned against
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        vector = np.asarray(self.vector)
        if vector.ndim != 1 or vector.size == 0:
            raise SpeakerFileError(f"a speaker embedding is a 1-D vector, got shape {vector.shape}")
        if not np.all(np.isfinite(vector.astype(np.float32))):
            raise SpeakerFileError("the speaker embedding holds NaN or infinite values")
        object.__setattr__(self, "vector", vector.astype(np.float16))

    @property
    def dim(self) -> int:
        return int(self.vector.shape[0])

    def tensor(self) -> Any:
        """The vector as the float16 torch tensor ChatTTS's Speaker.apply takes."""
        import torch

        return torch.from_numpy(self.vector.copy())


def _chattts_version() -> str:
    try:
        return importlib.metadata.version("ChatTTS")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def speaker_stats() -> tuple[np.ndarray, np.ndarray]:
    """(std, mean) of ChatTTS's speaker space, from the installed package's config (no weights needed)."""
    try:
        from ChatTTS.config import Config
        from ChatTTS.model.speaker import Speaker
    except ImportError as exc:
        raise ImportError(f"ChatTTS voices need ChatTTS: pip install ChatTTS==0.2.5 ({exc})") from exc
    config = Config()
    speaker = Speaker(config.gpt.hidden_size, config.spk_stat)
    return speaker.std.float().numpy(), speaker.mean.float().numpy()


def draw_speaker(seed: int, stats: tuple[np.ndarray, np.ndarray] | None = None, source: str = "") -> SpeakerEmbedding:
    """The voice a seed names: randn(dim) * std + mean, as sample_random_speaker draws it, but reproducible."""
    import torch

    std, mean = stats if stats is not None else speaker_stats()
    # A private CPU generator: the same seed gives the same voice on any device and in any thread.
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    noise = torch.randn(std.shape[0], generator=generator, dtype=torch.float32).numpy()
    vector = (noise * std.astype(np.float32) + mean.astype(np.float32)).astype(np.float16)
    return SpeakerEmbedding(
        vector, seed=int(seed), source=source or f"draw_speaker(seed={seed}), ChatTTS {_chattts_version()} spk_stat"
    )


def _as_chattts_string(vector: np.ndarray) -> str:
    """ChatTTS's own string form of a speaker (what sample_random_speaker returns)."""
    import torch
    from ChatTTS.model.speaker import Speaker

    return Speaker._encode(torch.from_numpy(vector.astype(np.float16)))


def save_speaker(speaker: SpeakerEmbedding, path: Path) -> Path:
    """Write a voice file (format in the module docstring); parent folders are created."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "spk_emb": torch.from_numpy(speaker.vector.copy()),
        "spk_emb_str": _as_chattts_string(speaker.vector),
        "dim": speaker.dim,
        "seed": speaker.seed,
        "auditioned": speaker.auditioned,
        "source": speaker.source,
        "line": speaker.line,
        "model": speaker.model,
        "chattts_version": _chattts_version(),
        "note": speaker.note,
    }
    torch.save(payload, path)
    return path


def load_speaker(path: Path) -> SpeakerEmbedding:
    """Read a voice file; SpeakerFileError says what is wrong with a bad one."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise SpeakerFileError(f"voice file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise SpeakerFileError(f"voice file {path} is not readable as a torch file: {exc}") from exc
    if isinstance(payload, torch.Tensor):  # a bare tensor, as some ChatTTS tools save it
        payload = {"format": FORMAT, "spk_emb": payload}
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "spk_emb" not in payload:
        raise SpeakerFileError(f"voice file {path} is not a ChatTTS speaker file (format {FORMAT!r})")
    tensor = payload["spk_emb"]
    if not isinstance(tensor, torch.Tensor):
        raise SpeakerFileError(f"voice file {path}: spk_emb is {type(tensor).__name__}, not a tensor")
    seed = payload.get("seed")
    return SpeakerEmbedding(
        tensor.detach().to(torch.float32).numpy(),
        seed=int(seed) if isinstance(seed, int) else None,
        auditioned=bool(payload.get("auditioned", False)),
        source=str(payload.get("source", "")),
        line=str(payload.get("line", "")),
        model=str(payload.get("model", "")),
        note=str(payload.get("note", "")),
        extra={k: v for k, v in payload.items() if k in ("chattts_version", "version")},
    )
