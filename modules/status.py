"""One shape for "is this part working?", shared by every backend, ``python -m app doctor`` and the app."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BackendStatus:
    """A backend or model as ``doctor`` reports it, found without loading anything heavy.

    ``name`` says what it is and which config key chooses it; ``detail`` is one line for a person (what is
    used, or what is missing); ``fix`` is the command or setting that turns it on, when it is off.
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""
    backend: str | None = None  # the backend that is (or would be) used; None when nothing can run
    model_path: Path | None = None  # where its model was found
