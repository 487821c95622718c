"""Audio as it travels between stages: mono float32 samples with their sample rate."""

from __future__ import annotations

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
