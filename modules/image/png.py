"""Pictures saved as PNG with everything that redraws them in the file's text chunks.

Each setting has its own chunk (``prompt``, ``seed`` …) for programs, and ``parameters`` holds the
same in AUTOMATIC1111's layout, which A1111, ComfyUI and most image browsers read. Text that is not
Latin-1 (Chinese) goes into iTXt chunks, which are UTF-8.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from pathlib import Path
from typing import Any

from modules.image.base import GeneratedImage

SOFTWARE = "wulewule"
INT_KEYS = ("seed", "steps", "width", "height")
FLOAT_KEYS = ("guidance",)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def png_text(result: GeneratedImage) -> dict[str, str]:
    """The text chunks written for a picture."""
    req = result.request
    chunks = {
        "prompt": req.prompt,
        "negative_prompt": req.negative_prompt,
        "seed": str(result.seed),
        "steps": str(req.steps),
        "guidance": f"{req.guidance:g}",
        "width": str(req.width),
        "height": str(req.height),
        "model": result.model,
        "lora": result.lora or "",
        "scheduler": result.scheduler,
        "software": SOFTWARE,
    }
    chunks["parameters"] = a1111_parameters(result)
    return chunks


def a1111_parameters(result: GeneratedImage) -> str:
    """The ``parameters`` text AUTOMATIC1111 writes: prompt, negative prompt, then one line of settings."""
    req = result.request
    fields = [f"Steps: {req.steps}"]
    if result.scheduler:
        fields.append(f"Sampler: {result.scheduler}")
    fields += [f"CFG scale: {req.guidance:g}", f"Seed: {result.seed}", f"Size: {req.width}x{req.height}"]
    fields.append(f"Model: {Path(result.model).name or result.model}")
    prompt = req.prompt
    if result.lora:
        name, _, scale = result.lora.rpartition(":")
        # A1111 names a LoRA inside the prompt; the file name without its extension is what it looks up.
        prompt += f" <lora:{Path(name or result.lora).stem}:{scale or 1}>"
    lines = [prompt]
    if req.negative_prompt:
        lines.append(f"Negative prompt: {req.negative_prompt}")
    lines.append(", ".join(fields))
    return "\n".join(lines)


def new_file_name(result: GeneratedImage) -> str:
    """A name made of the time, the seed and random letters: never from the player's text."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{result.seed}-{secrets.token_hex(3)}.png"


def save_png(
    result: GeneratedImage, out_dir: Path, name: str | None = None, extra: dict[str, str] | None = None
) -> Path:
    """Write the picture with its settings into ``out_dir``; returns the file's path.

    ``name`` (a file name the caller chose, e.g. from a command-line flag) is reduced to a plain
    ``.png`` name inside ``out_dir``; without it a fresh name is generated. ``extra``: more text chunks
    (e.g. ``wulewule_subjects``, the knowledge-base entities the request named).
    """
    from PIL import PngImagePlugin

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if name is not None:
        stem = _SAFE_NAME.sub("_", Path(name).name).strip("._")
        if not stem:
            raise ValueError(f"{name!r} is not a usable file name")
        file_name = stem if stem.lower().endswith(".png") else stem + ".png"
    else:
        file_name = new_file_name(result)
    info = PngImagePlugin.PngInfo()
    for key, value in {**png_text(result), **(extra or {})}.items():
        info.add_text(key, value)  # falls back to UTF-8 iTXt for text Latin-1 cannot hold
    path = out_dir / file_name
    tmp = path.with_name(f".{path.name}.tmp")
    # Written then renamed: a viewer watching the folder never sees half a file.
    result.image.save(tmp, format="PNG", pnginfo=info)
    tmp.replace(path)
    return path


def read_png_metadata(path: Path | str) -> dict[str, Any]:
    """The text chunks of a PNG; seed, steps, width, height as int, guidance as float."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.format != "PNG":
                raise ValueError(f"{path} is a {img.format} picture, not a PNG")
            text = dict(getattr(img, "text", {}) or {})
    except FileNotFoundError:
        raise FileNotFoundError(f"no such picture: {path}") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not a picture") from None
    meta: dict[str, Any] = dict(text)
    for keys, kind in ((INT_KEYS, int), (FLOAT_KEYS, float)):
        for key in keys:
            if key in meta:
                # A value another program wrote that does not parse is kept as the text it wrote.
                with contextlib.suppress(ValueError):
                    meta[key] = kind(meta[key])
    return meta
