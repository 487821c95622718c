"""Which drawing backend the settings give, and whether it can draw on this machine."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from modules.image.base import ImageGenerator
from modules.image.settings import ImageSettings
from modules.model_files import ModelNotFoundError
from modules.status import BackendStatus

log = logging.getLogger(__name__)

NO_IMAGE_MODEL = (
    "还没有安装画图模型，俺老孙暂时画不了。运行 `python -m app download image` 下载 Stable Diffusion 1.5"
    "（约 4 GB），或把 image.model 指向本地的 diffusers 模型目录。"
    " (No image model installed: run `python -m app download image`, or point image.model at a local diffusers model.)"
)


def _status(settings: ImageSettings, ok: bool, backend: str, path: Path | None, detail: str) -> BackendStatus:
    return BackendStatus(f"drawing (image.backend={settings.backend})", ok, detail, "", backend or None, path)


def backend_status(settings: ImageSettings, repo_root: Path) -> BackendStatus:
    """Whether a picture can be drawn, without loading anything heavy."""
    if settings.backend == "openai":
        from modules.image.openai_image import openai_status

        return openai_status(settings, f"drawing (image.backend={settings.backend})")
    from modules.image.diffusers_gen import INSTALL_HINT, resolve_lora_file, resolve_model_dir

    missing = [name for name in ("diffusers", "torch", "peft") if importlib.util.find_spec(name) is None]
    if missing:
        return _status(settings, False, "", None, f"missing {', '.join(missing)}: {INSTALL_HINT}")
    try:
        path = resolve_model_dir(settings, repo_root)
    except ModelNotFoundError as exc:
        return _status(settings, False, "", None, str(exc))
    extras = []
    for key, label, spec in (
        ("image.lora.path", "LoRA", settings.lora.path),
        ("image.fast_lora", "LCM-LoRA", settings.fast_lora),
    ):
        if spec:
            try:
                extras.append(f"{label} {resolve_lora_file(spec, key, repo_root).name}")
            except ModelNotFoundError as exc:
                return _status(settings, False, "diffusers", path, str(exc))
    detail = f"diffusers {settings.family} from {path}" + (f" + {', '.join(extras)}" if extras else "")
    return _status(settings, True, "diffusers", path, detail)


def create_generator(settings: ImageSettings, repo_root: Path) -> ImageGenerator | None:
    """The configured drawing backend, not yet loaded; None when backend=auto and no model is installed.

    backend=diffusers with a missing model or library raises (ModelNotFoundError / ImportError) with the
    fix in the message; a LoRA that is configured but missing raises in both modes, since the player
    asked for it by name. backend=openai is a remote server (ValueError naming image.openai.base_url when
    that is empty).
    """
    if settings.backend == "openai":
        from modules.image.openai_image import OpenAIImageGenerator

        return OpenAIImageGenerator.from_settings(settings)
    if settings.backend == "auto":
        status = backend_status(settings, repo_root)
        if not status.ok and status.model_path is None:
            log.info("drawing is off: %s", status.detail)
            return None
    elif importlib.util.find_spec("diffusers") is None:
        from modules.image.diffusers_gen import INSTALL_HINT

        raise ImportError(f"image.backend=diffusers needs diffusers: {INSTALL_HINT}")
    from modules.image.diffusers_gen import DiffusersGenerator

    return DiffusersGenerator(settings, repo_root)
