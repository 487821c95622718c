"""Stable Diffusion (1.5 or XL) with diffusers: a LoRA for the Destined One, an LCM-LoRA fast path.

The pipeline is loaded once, on the first picture, under a lock. A render runs in a worker thread
whose per-step callback reports progress through a queue; the generator the caller holds reads that
queue. Closing the generator (or setting the ``cancel`` event) makes the next step's callback raise,
so the render stops between two denoising steps without decoding a half-finished picture.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modules.image.base import GeneratedImage, ImageGenerationError, ImageProgress, ImageRequest
from modules.image.settings import ImageSettings
from modules.model_files import ModelNotFoundError, locate_model

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install diffusers==0.42.1 peft==0.21.2 transformers==5.24.0 torch==2.9.1 safetensors"
DOWNLOAD_HINT = "python -m app download image"
PIPELINES = {"sd15": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline"}
# A1111's sampler names, so a picture's "parameters" chunk reads the same as one drawn there.
SCHEDULERS: dict[str, tuple[str, dict[str, Any], str]] = {
    "dpm++": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, "DPM++ 2M Karras"),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}, "Euler a"),
    "ddim": ("DDIMScheduler", {}, "DDIM"),
    "lcm": ("LCMScheduler", {}, "LCM"),
}
STYLE_ADAPTER = "style"  # the player's LoRA (the Destined One)
FAST_ADAPTER = "fast"  # the LCM-LoRA
SMALL_GPU_BYTES = 8 * 2**30  # under this, cpu_offload=auto offloads and attention is sliced
JOIN_TIMEOUT_S = 60.0  # closing waits this long for the current step; a slower one ends on its own
TRIGGER_KEY = "wulewule_trigger_words"  # written by training/picture_lora/train.py


def _import_libraries() -> tuple[Any, Any]:
    try:
        import diffusers
        import torch
    except ImportError as exc:
        raise ImportError(f"drawing needs diffusers and torch: {INSTALL_HINT} ({exc})") from exc
    return torch, diffusers


@dataclass(frozen=True)
class RuntimePlan:
    """How this machine runs the pipeline, decided once from the settings and the hardware."""

    device: str  # "cpu" | "cuda" | "cuda:1" | "mps"
    dtype: str  # "float32" | "float16" | "bfloat16"
    fast: bool  # LCM-LoRA + LCMScheduler, few steps
    cpu_offload: bool
    attention_slicing: bool
    vae_tiling: bool


class _Cancelled(Exception):
    """Raised from the step callback to leave the denoising loop."""


class _Finished:
    """Queue sentinel: the worker is done."""


def resolve_model_dir(settings: ImageSettings, repo_root: Path) -> Path:
    """The local diffusers directory for ``image.model``; raises ModelNotFoundError naming the fix."""
    spec = settings.model.strip()
    if not spec:
        raise ModelNotFoundError(f"image.model is empty: set it to a diffusers model directory, or run {DOWNLOAD_HINT}")
    where = locate_model(spec, repo_root)
    if where.path is None:
        kind = "hub id" if where.is_hub_id else "path"
        raise ModelNotFoundError(
            f"image.model: the image model {spec!r} ({kind}) is not on this machine. Run `{DOWNLOAD_HINT}` "
            "or point image.model at a local diffusers directory (model_index.json, unet/, vae/, text_encoder/)"
        )
    if where.path.is_file():
        raise ModelNotFoundError(
            f"image.model: {where.path} is a single checkpoint file; it needs a diffusers directory "
            f"(model_index.json, unet/, vae/ …). Run `{DOWNLOAD_HINT}` or convert it with diffusers' "
            "convert_original_stable_diffusion_to_diffusers.py"
        )
    if not (where.path / "model_index.json").is_file():
        raise ModelNotFoundError(
            f"image.model: {where.path} has no model_index.json, so it is not a diffusers pipeline directory. "
            f"Run `{DOWNLOAD_HINT}`"
        )
    return where.path


def resolve_lora_file(spec: str, key: str, repo_root: Path) -> Path:
    """A LoRA .safetensors named by a path, a directory holding one, or a downloaded hub id."""
    where = locate_model(spec.strip(), repo_root)
    path = where.path
    if path is not None and path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        path = files[0] if len(files) == 1 else next((f for f in files if "lora" in f.name.lower()), None)
    if path is None or not path.is_file():
        raise ModelNotFoundError(
            f"{key}: no LoRA .safetensors file at {spec!r}. Point {key} at the file (or a folder holding one); "
            f"`{DOWNLOAD_HINT}` fetches the LCM-LoRA, and `python -m training.picture_lora.train` makes a "
            "Destined-One LoRA"
        )
    if path.suffix.lower() != ".safetensors":
        raise ModelNotFoundError(f"{key}: {path} is not a .safetensors file; only safetensors LoRAs are loaded")
    return path


def lora_metadata(path: Path) -> dict[str, str]:
    """The string metadata in a .safetensors header ({} when there is none)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:  # not a safetensors file at all: the load will say so in its own words
        raise ImageGenerationError(f"{path} is not a readable .safetensors file: {exc}") from exc


def trigger_words_from_metadata(meta: dict[str, str]) -> str:
    """Trigger words a LoRA carries: ours, the model-spec trigger phrase, or kohya's most frequent tags."""
    for key in (TRIGGER_KEY, "modelspec.trigger_phrase"):
        if meta.get(key, "").strip():
            return meta[key].strip()
    try:
        frequency = json.loads(meta.get("ss_tag_frequency") or "{}")
    except json.JSONDecodeError:
        return ""
    folders = frequency.values() if isinstance(frequency, dict) else ()
    dirs = [tags for tags in folders if isinstance(tags, dict) and tags]
    if not dirs:
        return ""
    # kohya counts each caption tag per image folder. The trigger is in every caption, so it has the top count of
    # each folder; a tag on top in every folder is it. Failing that, the most frequent tag overall.
    tops = [{tag.strip() for tag, n in tags.items() if n == max(tags.values())} for tags in dirs]
    common = set.intersection(*tops) - {""}
    if not common:
        totals: dict[str, int] = {}
        for tags in dirs:
            for tag, n in tags.items():
                totals[tag.strip()] = totals.get(tag.strip(), 0) + int(n)
        common = {tag for tag, n in totals.items() if n == max(totals.values()) and tag}
    return ", ".join(sorted(common)[:3])


def _truthy(value: str | bool) -> bool | None:
    """True/False for "true"/"false", None for "auto"."""
    if isinstance(value, bool):
        return value
    return None if value == "auto" else value == "true"


class DiffusersGenerator:
    """An ImageGenerator over a local Stable Diffusion pipeline (loaded on first use)."""

    name = "diffusers"

    def __init__(self, settings: ImageSettings, repo_root: Path) -> None:
        self.settings = settings
        self.repo_root = Path(repo_root)
        self.model_dir = resolve_model_dir(settings, self.repo_root)
        index = self._check_family()
        self._ships_safety_checker = (
            bool((index.get("safety_checker") or [None])[0]) and (self.model_dir / "safety_checker").is_dir()
        )
        self._lora_path = (
            resolve_lora_file(settings.lora.path, "image.lora.path", self.repo_root) if settings.lora.path else None
        )
        self._lora_scale = settings.lora.scale
        self._fast_lora = (
            resolve_lora_file(settings.fast_lora, "image.fast_lora", self.repo_root) if settings.fast_lora else None
        )
        if _truthy(settings.fast) is True and self._fast_lora is None:
            raise ImageGenerationError(
                "image.fast=true needs image.fast_lora: an LCM-LoRA .safetensors for this base model "
                f"(`{DOWNLOAD_HINT}` fetches one), or set image.fast=false"
            )
        self._pipe: Any = None
        self._plan: RuntimePlan | None = None
        self._scheduler_label = ""
        self._load_lock = threading.Lock()
        # One render at a time: the pipeline's scheduler keeps per-render state, and two renders on one GPU
        # share its compute anyway, so the second player waits less by queueing.
        self._render_lock = threading.Lock()

    # -- what the caller asks before drawing ------------------------------------------------------

    @property
    def plan(self) -> RuntimePlan:
        """The device, dtype and memory savers this machine uses (decided on first access)."""
        if self._plan is None:
            self._plan = self._make_plan()
        return self._plan

    @property
    def fast(self) -> bool:
        return self.plan.fast

    @property
    def steps(self) -> int:
        """Denoising steps a default request uses (fast_steps on the fast path)."""
        return self.settings.fast_steps if self.fast else self.settings.steps

    @property
    def guidance(self) -> float:
        return self.settings.fast_guidance if self.fast else self.settings.guidance

    @property
    def lora(self) -> str | None:
        """The style LoRA as "<file>:<scale>", or None."""
        return f"{self._lora_path.name}:{self._lora_scale:g}" if self._lora_path else None

    @property
    def trigger_words(self) -> str:
        """Words that wake the style LoRA: image.lora.trigger_words, else the LoRA file's metadata."""
        if self._lora_path is None:
            return ""
        if self.settings.lora.trigger_words.strip():
            return self.settings.lora.trigger_words.strip()
        return trigger_words_from_metadata(lora_metadata(self._lora_path))

    def request_for(self, prompt: str, negative_prompt: str | None = None, seed: int | None = None) -> ImageRequest:
        """A request with this generator's steps, guidance and size from the settings."""
        return ImageRequest(
            prompt=prompt,
            negative_prompt=self.settings.negative_prompt if negative_prompt is None else negative_prompt,
            seed=seed,
            steps=self.steps,
            guidance=self.guidance,
            width=self.settings.width,
            height=self.settings.height,
        )

    # -- loading --------------------------------------------------------------------------------

    def _check_family(self) -> dict[str, Any]:
        """model_index.json, after checking it holds the pipeline image.family names."""
        try:
            index = json.loads((self.model_dir / "model_index.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ImageGenerationError(
                f"image.model: cannot read {self.model_dir / 'model_index.json'}: {exc}"
            ) from None
        found = str(index.get("_class_name", ""))
        wanted = PIPELINES[self.settings.family]
        is_xl = "XL" in found
        if found and is_xl != (self.settings.family == "sdxl"):
            other = "sdxl" if is_xl else "sd15"
            raise ImageGenerationError(
                f"image.family is {self.settings.family!r} ({wanted}) but {self.model_dir} holds a {found}; "
                f"set image.family={other}"
            )
        return index

    def _make_plan(self) -> RuntimePlan:
        torch, _ = _import_libraries()
        device = self.settings.device
        if device == "auto":
            if torch.cuda.is_available():
                device = "cuda"
            elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
                device = "mps"
            else:
                device = "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ImageGenerationError(f"image.device is {device!r} but torch sees no CUDA GPU; set image.device=cpu")
        dtype = self.settings.dtype
        if dtype == "auto":
            dtype = "float32" if device == "cpu" else "float16"
        gpu_bytes = 0
        if device.startswith("cuda"):
            gpu_bytes = torch.cuda.get_device_properties(torch.device(device)).total_memory
        small_gpu = device.startswith("cuda") and gpu_bytes < SMALL_GPU_BYTES
        offload = _truthy(self.settings.cpu_offload)
        if offload is None:
            offload = small_gpu
        elif offload and not device.startswith("cuda"):
            log.warning("image.cpu_offload=true only applies to CUDA GPUs; ignored on %s", device)
            offload = False
        fast = _truthy(self.settings.fast)
        if fast is None:
            fast = device == "cpu" and self._fast_lora is not None
        return RuntimePlan(
            device=device,
            dtype=dtype,
            fast=fast,
            cpu_offload=offload,
            # Sliced attention saves memory where it is short (small GPUs, Apple's shared memory). On a CPU,
            # PyTorch 2's scaled-dot-product attention is already memory-efficient and slicing only slows it.
            attention_slicing=small_gpu or device == "mps",
            # Tiled VAE decoding bounds the decoder's peak memory for big pictures; it changes nothing at or
            # below the VAE's own sample size.
            vae_tiling=small_gpu or device in ("cpu", "mps"),
        )

    def load(self) -> None:
        """Load the pipeline (and LoRAs) now, once; later calls return at once."""
        with self._load_lock:
            if self._pipe is None:
                self._pipe = self._load_pipeline()

    def _load_pipeline(self) -> Any:
        torch, diffusers = _import_libraries()
        plan = self.plan
        kwargs: dict[str, Any] = {"dtype": getattr(torch, plan.dtype), "local_files_only": True}
        keep_checker = self._ships_safety_checker and self.settings.safety_checker and self.settings.family == "sd15"
        if self.settings.family == "sd15" and not keep_checker:
            kwargs |= {"safety_checker": None, "requires_safety_checker": False}
        started = time.perf_counter()
        try:
            pipe = getattr(diffusers, PIPELINES[self.settings.family]).from_pretrained(self.model_dir, **kwargs)
        except Exception as exc:
            raise ImageGenerationError(
                f"could not load the image model in {self.model_dir}: {_sentence(exc)} Check that image.model is a "
                f"complete diffusers {self.settings.family} directory (`{DOWNLOAD_HINT}` fetches one)"
            ) from exc
        pipe.set_progress_bar_config(disable=True)
        self._base_scheduler_config = dict(pipe.scheduler.config)
        self._set_scheduler(pipe)
        if plan.fast and self._fast_lora is not None:
            self._load_adapter(pipe, self._fast_lora, FAST_ADAPTER, "image.fast_lora")
        if self._lora_path is not None:
            self._load_adapter(pipe, self._lora_path, STYLE_ADAPTER, "image.lora.path")
        self._apply_adapters(pipe)
        if plan.cpu_offload:
            # Moves each model to the GPU only while it runs: SD 1.5 fits in about 3 GB of GPU memory.
            pipe.enable_model_cpu_offload(device=plan.device)
        else:
            pipe.to(plan.device)
        if plan.attention_slicing:
            pipe.enable_attention_slicing()
        if plan.vae_tiling:
            pipe.vae.enable_tiling()
        log.info(
            "image: loaded %s (%s) on %s as %s in %.1f s; %s; fast=%s lora=%s safety_checker=%s",
            self.model_dir,
            self.settings.family,
            plan.device,
            plan.dtype,
            time.perf_counter() - started,
            self._scheduler_label,
            plan.fast,
            self.lora,
            keep_checker,
        )
        return pipe

    def _set_scheduler(self, pipe: Any) -> None:
        _, diffusers = _import_libraries()
        choice = "lcm" if self.plan.fast else self.settings.scheduler
        if choice == "default":
            self._scheduler_label = type(pipe.scheduler).__name__
            return
        cls_name, extra, label = SCHEDULERS[choice]
        pipe.scheduler = getattr(diffusers, cls_name).from_config(self._base_scheduler_config, **extra)
        self._scheduler_label = label

    def _load_adapter(self, pipe: Any, path: Path, adapter: str, key: str) -> None:
        fits = f"A LoRA only fits the base model family it was trained on (this one is {self.settings.family})"
        try:
            pipe.load_lora_weights(str(path), adapter_name=adapter)
        except Exception as exc:
            raise ImageGenerationError(f"{key}: could not load the LoRA {path.name}: {_sentence(exc)} {fits}") from exc
        loaded = {name for names in pipe.get_list_adapters().values() for name in names}
        if adapter not in loaded:
            # diffusers skips keys it does not recognise with a warning; a LoRA of nothing is a mistake to report.
            raise ImageGenerationError(f"{key}: {path.name} holds no LoRA weights this model can use. {fits}")

    def _apply_adapters(self, pipe: Any) -> None:
        names, weights = [], []
        if self.plan.fast and self._fast_lora is not None:
            names.append(FAST_ADAPTER)
            weights.append(1.0)
        if self._lora_path is not None:
            names.append(STYLE_ADAPTER)
            weights.append(self._lora_scale)
        if names:
            pipe.set_adapters(names, adapter_weights=weights)

    def load_lora(self, path: Path | str, scale: float | None = None) -> None:
        """Use another style LoRA (replacing the current one); waits for a render in progress."""
        new = resolve_lora_file(str(path), "image.lora.path", self.repo_root)
        scale = self._lora_scale if scale is None else scale
        if not 0 <= scale <= 2:
            raise ValueError(f"a LoRA scale must be between 0 and 2, got {scale}")
        with self._render_lock:
            if self._pipe is not None:
                self._drop_style(self._pipe)
                self._lora_path = None  # a failed load below leaves the base model, and says so
                self._load_adapter(self._pipe, new, STYLE_ADAPTER, "image.lora.path")
            self._lora_path, self._lora_scale = new, scale
            if self._pipe is not None:
                self._apply_adapters(self._pipe)

    def unload_lora(self) -> None:
        """Draw without the style LoRA from now on (the fast LCM-LoRA stays)."""
        with self._render_lock:
            if self._pipe is not None and self._lora_path is not None:
                self._drop_style(self._pipe)
            self._lora_path = None
            if self._pipe is not None:
                self._apply_adapters(self._pipe)

    def _drop_style(self, pipe: Any) -> None:
        if STYLE_ADAPTER not in pipe.get_list_adapters().get("unet", []):
            return
        if self.plan.fast and self._fast_lora is not None:
            pipe.delete_adapters(STYLE_ADAPTER)
        else:
            # Removes the LoRA layers themselves, so the model is exactly the base model again.
            pipe.unload_lora_weights()

    # -- drawing --------------------------------------------------------------------------------

    def generate(
        self, request: ImageRequest, cancel: threading.Event | None = None
    ) -> Generator[ImageProgress | GeneratedImage, None, None]:
        """Progress per step, then the picture. Closing the generator or setting ``cancel`` stops between steps."""
        seed = request.seed if request.seed is not None else secrets.randbelow(2**32)
        stop = threading.Event()
        events: queue.Queue[Any] = queue.Queue()
        worker = threading.Thread(
            target=self._render, args=(request, seed, stop, cancel, events), name="image-render", daemon=True
        )
        worker.start()
        try:
            while True:
                item = events.get()
                if isinstance(item, _Finished):
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            worker.join(JOIN_TIMEOUT_S)
            if worker.is_alive():
                log.warning("image: the cancelled render is still in its current step; it ends on its own")

    def _render(
        self,
        request: ImageRequest,
        seed: int,
        stop: threading.Event,
        cancel: threading.Event | None,
        events: queue.Queue[Any],
    ) -> None:
        def stopped() -> bool:
            return stop.is_set() or (cancel is not None and cancel.is_set())

        try:
            self.load()
            while not self._render_lock.acquire(timeout=0.1):
                if stopped():
                    return
            try:
                if stopped():
                    return
                events.put(ImageProgress(0, request.steps))
                events.put(self._draw(request, seed, stopped, events))
            finally:
                self._render_lock.release()
        except _Cancelled:
            log.info("image: render stopped between steps")
        except ImageGenerationError as exc:
            events.put(exc)
        except Exception as exc:
            events.put(self._describe_failure(exc, request))
        finally:
            events.put(_Finished())

    def _draw(self, request: ImageRequest, seed: int, stopped: Any, events: queue.Queue[Any]) -> GeneratedImage:
        torch, _ = _import_libraries()
        pipe = self._pipe

        def on_step_end(_pipe: Any, step: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            events.put(ImageProgress(step + 1, request.steps))
            if stopped():
                raise _Cancelled
            return kwargs

        # A CPU generator gives the same starting noise for a seed on every device, so a seed written in a
        # picture's metadata redraws it on another machine.
        generator = torch.Generator(device="cpu").manual_seed(seed)
        started = time.perf_counter()
        output = pipe(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance,
            width=request.width,
            height=request.height,
            generator=generator,
            callback_on_step_end=on_step_end,
        )
        flagged = getattr(output, "nsfw_content_detected", None) or [False]
        return GeneratedImage(
            image=output.images[0],
            request=request,
            seed=seed,
            model=self.settings.model,
            lora=self.lora,
            scheduler=self._scheduler_label,
            nsfw=bool(flagged[0]),
            elapsed_s=time.perf_counter() - started,
        )

    def _describe_failure(self, exc: Exception, request: ImageRequest) -> ImageGenerationError:
        if "out of memory" in str(exc).lower():
            message = (
                f"the GPU ran out of memory drawing {request.width}x{request.height}: try a smaller size, "
                "image.cpu_offload=true, or the fast path (image.fast_lora)"
            )
        else:
            message = f"drawing failed: {_sentence(exc)}"
        error = ImageGenerationError(message)
        error.__cause__ = exc
        return error

    def close(self) -> None:
        """Free the pipeline (it loads again on the next picture)."""
        with self._load_lock, self._render_lock:
            self._pipe = None


def _sentence(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if text.endswith((".", "!", "?")) else text + "."
