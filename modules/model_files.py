"""Where a configured model lives: a local path, the app's models dir, or a hub cache.

A model is named in the config either by a local path or by a hub id (``org/name``). Paths must
exist. Hub ids are looked up, without any network access, in ``models/`` (where ``python -m app
download`` puts them), the Hugging Face cache and the ModelScope cache; when none has them the
caller decides whether that is fatal or a feature that is simply off.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelNotFoundError(FileNotFoundError):
    """A configured model that is not on this machine; the message names the key and the fix."""


@dataclass(frozen=True)
class ModelLocation:
    spec: str  # what the config said
    path: Path | None  # the local directory, or None when it is not on this machine
    is_hub_id: bool


def is_hub_id(spec: str) -> bool:
    return bool(_HUB_ID.match(spec)) and not spec.startswith((".", "/", "~"))


def hub_cache_dirs(repo_root: Path) -> list[Path]:
    """Directories searched for a downloaded hub id, in order."""
    dirs = [repo_root / "models"]
    modelscope = os.environ.get("MODELSCOPE_CACHE")
    dirs.append(Path(modelscope) / "models" if modelscope else Path.home() / ".cache/modelscope/hub/models")
    return dirs


def locate_model(spec: str, repo_root: Path) -> ModelLocation:
    """Find a model without touching the network."""
    spec = spec.strip()
    if not is_hub_id(spec) or (repo_root / spec).exists():
        path = Path(spec).expanduser()
        path = path if path.is_absolute() else repo_root / path
        return ModelLocation(spec, path if path.exists() else None, is_hub_id=False)
    org, name = spec.split("/", 1)
    for base in hub_cache_dirs(repo_root):
        for candidate in (base / org / name, base / name):
            if candidate.is_dir() and any(candidate.iterdir()):
                return ModelLocation(spec, candidate, is_hub_id=True)
    return ModelLocation(spec, _huggingface_cache(spec), is_hub_id=True)


def _huggingface_cache(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached (or hub library absent): the model is simply not here
        return None
