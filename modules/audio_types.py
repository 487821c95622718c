"""Audio as it travels between stages: mono float32 samples with their sample rate."""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class AudioClip:
    """Mono audio, float32 in [-1, 1]; recognisers take it, speech synthesis yields it in chunks."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.samples.ndim != 1:
            raise ValueError(f"audio must be mono (1-D), got shape {self.samples.shape}")
        if self.samples.dtype != np.float32:
            object.__setattr__(self, "samples", self.samples.astype(np.float32))

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def wav_bytes(clip: AudioClip) -> bytes:
    """The clip as a 16-bit PCM mono WAV file's bytes (NaN as silence, beyond [-1, 1] clipped)."""
    pcm = (np.clip(np.nan_to_num(clip.samples), -1.0, 1.0) * 32767.0).round().astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(clip.sample_rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()
