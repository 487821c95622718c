"""The image-generation seam."""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


class ImageGenerationError(RuntimeError):
    """Drawing failed; the message says why and what to do, fit to show the player."""


@dataclass(frozen=True)
class ImageRequest:
    """Everything needed to draw (and redraw) a picture."""

    prompt: str
    negative_prompt: str = ""
    seed: int | None = None
    steps: int = 25
    guidance: float = 7.0
    width: int = 512
    height: int = 512

    def __post_init__(self) -> None:
        if not self.prompt.strip():
            raise ValueError("an image request needs a prompt")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.width % 8 or self.height % 8 or min(self.width, self.height) < 64:
            raise ValueError(f"width and height must be multiples of 8 and >= 64, got {self.width}x{self.height}")


@dataclass(frozen=True)
class ImageProgress:
    """Denoising progress: ``step`` of ``total`` done (0 = the model is loaded and the render starts)."""

    step: int
    total: int


@dataclass(frozen=True)
class GeneratedImage:
    """A finished picture and the settings that reproduce it."""

    image: Any  # PIL.Image.Image
    request: ImageRequest
    seed: int
    model: str
    lora: str | None = None  # "<file name>:<scale>" of the style LoRA that drew it
    scheduler: str = ""  # the sampler, named as A1111 names it ("DPM++ 2M Karras")
    nsfw: bool = False  # the model's safety checker blanked the picture
    elapsed_s: float = 0.0  # render time, model loading excluded


@runtime_checkable
class ImageGenerator(Protocol):
    """Any drawing backend: progress per step, then the picture; closing the iterator or setting ``cancel``
    stops between steps."""

    name: str

    @property
    def trigger_words(self) -> str:
        """Words that wake the backend's style LoRA ("" when it has none); they lead every prompt."""
        ...

    def request_for(self, prompt: str, negative_prompt: str | None = None, seed: int | None = None) -> ImageRequest:
        """A request carrying this backend's configured steps, guidance and size."""
        ...

    def generate(
        self, request: ImageRequest, cancel: threading.Event | None = None
    ) -> Generator[ImageProgress | GeneratedImage, None, None]: ...
