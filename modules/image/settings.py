"""Drawing settings (``image:`` in ``configs/default.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from modules.config_layers import Section


class LoraSettings(Section):
    path: str = ""  # a .safetensors LoRA file (e.g. the Destined One); empty = none
    scale: float = Field(0.8, ge=0, le=2)
    trigger_words: str = ""  # empty = read from the LoRA's metadata (ss_tag_frequency / trigger_words)


class OpenAIImageSettings(Section):
    """A remote drawer behind OpenAI's ``POST {base_url}/images/generations`` (image.backend=openai)."""

    base_url: str = ""  # the server's /v1 URL, e.g. http://127.0.0.1:8000/v1; empty = not configured
    model: str = ""  # the model name the server expects; empty = not sent (the server's default)
    response_format: Literal["b64_json", "url"] = "b64_json"  # url: the picture is fetched from the URL returned
    send_seed: bool = False  # also send "seed" (not in OpenAI's API; for servers that take it)
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key (unset = no key)
    connect_timeout: float = Field(5, gt=0)  # seconds to connect
    read_timeout: float = Field(300, gt=0)  # seconds to wait for the picture


class ImageSettings(Section):
    # auto: draw when the base model is present, else answer drawing requests with how to download one;
    # openai: a remote OpenAI-compatible /images/generations server (image.openai), never chosen by auto
    backend: Literal["auto", "diffusers", "openai"] = "auto"
    model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # hub id (found in models/) or local dir
    family: Literal["sd15", "sdxl"] = "sd15"
    device: str = "auto"  # auto | cpu | cuda | mps
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    lora: LoraSettings = Field(default_factory=LoraSettings)
    fast_lora: str = ""  # an LCM-LoRA (local path): few steps for CPUs and small GPUs; empty = off
    fast: Literal["auto", "true", "false"] | bool = "auto"  # auto = on for CPU when fast_lora is set
    scheduler: Literal["default", "dpm++", "euler_a", "ddim", "lcm"] = "dpm++"
    steps: int = Field(25, ge=1, le=150)
    fast_steps: int = Field(4, ge=1, le=20)
    guidance: float = Field(7.0, ge=0, le=30)
    fast_guidance: float = Field(1.5, ge=0, le=30)
    width: int = Field(512, ge=64, le=2048, multiple_of=8)
    height: int = Field(512, ge=64, le=2048, multiple_of=8)
    negative_prompt: str = "lowres, bad anatomy, bad hands, text, watermark, blurry, deformed, extra limbs"
    safety_checker: bool = True  # used when the model ships one
    cpu_offload: Literal["auto", "true", "false"] | bool = "auto"  # auto = on for GPUs under 8 GB
    output_dir: Path | None = None  # null = <data_dir>/images
    refine_prompt: bool = True  # let the chat model (when one is configured) polish the SD prompt
    route_with_model: bool = True  # ambiguous requests: ask the chat model whether a picture is wanted
    openai: OpenAIImageSettings = Field(default_factory=OpenAIImageSettings)
