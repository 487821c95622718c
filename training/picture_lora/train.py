"""Train a Stable Diffusion 1.5 LoRA on a folder of pictures, for ``image.lora.path``.

    python -m training.picture_lora.train --base-model models/stable-diffusion-v1-5 --images my_wukong/ \\
        --output loras/destined_one.safetensors --trigger dstnd_one --steps 1500

UNet attention layers (to_q, to_k, to_v, to_out.0) get a peft LoRA; the VAE and the text encoder stay
frozen, so their outputs are computed once per picture and caption and reused. Captions come from
``metadata.jsonl`` ({"file_name", "text"}), ``captions.txt`` (``name<TAB>caption``), a ``.txt`` beside
each picture, or the file name; the trigger word is put first. The result is diffusers' LoRA format
with the trigger word, base model and settings in its safetensors metadata, which
``modules.image.diffusers_gen`` reads.

Runs in the app environment (diffusers + peft + torch). A GPU is expected for real training; the CPU
works and is what the tests use.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install diffusers==0.42.1 peft==0.21.2 transformers==5.24.0 torch==2.9.1 safetensors Pillow"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
TRIGGER_KEY = "wulewule_trigger_words"  # read by modules/image/diffusers_gen.py
MIN_SIDE = 64


class LoraTrainError(ValueError):
    """Bad training input (no pictures, a broken caption file, a wrong base model); the message says which."""


@dataclass(frozen=True)
class LoraTrainConfig:
    """Everything one training run needs; the CLI flags map one to one."""

    base_model: Path
    images: Path
    output: Path
    trigger: str = "dstnd_one"  # a rare token: common words would drag their meaning into the LoRA
    rank: int = 8
    alpha: float | None = None  # None = rank (scale 1)
    learning_rate: float = 1e-4
    steps: int = 1000
    resolution: int = 512
    batch_size: int = 1
    grad_accum: int = 1
    seed: int = 42
    device: str = "auto"
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    center_crop: bool = True
    random_flip: bool = False
    lr_scheduler: str = "constant"
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = False
    save_every: int = 0  # also save <output>-step<N>.safetensors every N steps; 0 = only at the end
    overwrite: bool = False

    def check(self) -> None:
        """Raise LoraTrainError for values that cannot train."""
        problems = []
        if self.rank < 1:
            problems.append(f"--rank must be >= 1 (got {self.rank})")
        if self.alpha is not None and self.alpha <= 0:
            problems.append(f"--alpha must be > 0 (got {self.alpha})")
        if not 0 < self.learning_rate < 1:
            problems.append(f"--lr must be between 0 and 1 (got {self.learning_rate})")
        if self.steps < 1:
            problems.append(f"--steps must be >= 1 (got {self.steps})")
        if self.resolution < MIN_SIDE or self.resolution % 8:
            problems.append(f"--resolution must be a multiple of 8 and >= {MIN_SIDE} (got {self.resolution})")
        if self.batch_size < 1 or self.grad_accum < 1:
            problems.append("--batch-size and --grad-accum must be >= 1")
        if not self.trigger.strip() or "," in self.trigger:
            problems.append(f"--trigger must be a word or phrase without commas (got {self.trigger!r})")
        if self.output.suffix.lower() != ".safetensors":
            problems.append(f"--output must end in .safetensors (got {self.output.name})")
        if self.output.exists() and not self.overwrite:
            problems.append(f"{self.output} exists; pass --overwrite to replace it")
        if problems:
            raise LoraTrainError("; ".join(problems))


@dataclass(frozen=True)
class TrainingExample:
    """One picture and the caption it is trained with (trigger word first)."""

    image: Path
    caption: str


@dataclass(frozen=True)
class TrainProgress:
    step: int
    total: int
    loss: float
    learning_rate: float
    seconds_per_step: float


@dataclass(frozen=True)
class LoraTrainResult:
    output: Path
    steps: int
    final_loss: float
    seconds: float
    images: int
    trigger_words: str
    checkpoints: tuple[Path, ...] = field(default_factory=tuple)


# -- data ---------------------------------------------------------------------------------------


def _caption_from_name(path: Path) -> str:
    stem = re.sub(r"[_\-]+", " ", path.stem)
    stem = re.sub(r"\s*(\(\d+\)|\d+)$", "", stem).strip()  # "wukong_snow (2)" -> "wukong snow"
    return stem


def _read_caption_files(folder: Path) -> dict[str, str]:
    captions: dict[str, str] = {}
    meta = folder / "metadata.jsonl"
    if meta.is_file():
        for n, line in enumerate(meta.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                name = str(record["file_name"])
                text = str(record.get("text", record.get("caption", "")))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise LoraTrainError(
                    f'{meta} line {n}: expected {{"file_name": "...", "text": "..."}} ({type(exc).__name__}: {exc})'
                ) from None
            captions[Path(name).name] = text.strip()
    listing = folder / "captions.txt"
    if listing.is_file():
        for n, line in enumerate(listing.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = re.split(r"\t|\s*\|\s*|(?<=\.(?:png|jpg|peg|ebp|bmp)):\s*", line, maxsplit=1, flags=re.IGNORECASE)
            if len(parts) != 2:
                raise LoraTrainError(f"{listing} line {n}: expected 'file name<TAB>caption', got {line.strip()!r}")
            captions[Path(parts[0].strip()).name] = parts[1].strip()
    return captions


def load_examples(folder: Path, trigger: str) -> list[TrainingExample]:
    """The pictures in ``folder`` with their captions, trigger word first; raises LoraTrainError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LoraTrainError(f"--images: {folder} is not a folder of pictures")
    pictures = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not pictures:
        raise LoraTrainError(f"--images: no pictures ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    captions = _read_caption_files(folder)
    names = {p.name for p in pictures}
    unknown = sorted(set(captions) - names)
    if unknown:
        raise LoraTrainError(f"captions name pictures that are not in {folder}: {', '.join(unknown[:5])}")
    examples = []
    for picture in pictures:
        sidecar = picture.with_suffix(".txt")
        if picture.name in captions:
            caption = captions[picture.name]
        elif sidecar.is_file():
            caption = sidecar.read_text(encoding="utf-8-sig").strip()
        else:
            caption = _caption_from_name(picture)
        if trigger.lower() not in caption.lower():
            caption = f"{trigger}, {caption}" if caption else trigger
        examples.append(TrainingExample(picture, caption))
    return examples


def load_picture(path: Path, resolution: int, center_crop: bool, flip: bool, rng: random.Random) -> Any:
    """A picture as a (3, resolution, resolution) tensor in [-1, 1]: shorter side resized, then cropped."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            img = ImageOps.exif_transpose(opened).convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise LoraTrainError(f"cannot read picture {path}: {exc}") from None
    if min(img.size) < MIN_SIDE:
        raise LoraTrainError(f"picture {path} is {img.width}x{img.height}; pictures need at least {MIN_SIDE} px a side")
    scale = resolution / min(img.size)
    img = img.resize((max(resolution, round(img.width * scale)), max(resolution, round(img.height * scale))))
    if center_crop:
        left, top = (img.width - resolution) // 2, (img.height - resolution) // 2
    else:
        left, top = rng.randint(0, img.width - resolution), rng.randint(0, img.height - resolution)
    img = img.crop((left, top, left + resolution, top + resolution))
    if flip:
        img = ImageOps.mirror(img)
    array = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


# -- training -----------------------------------------------------------------------------------


def _import_libraries() -> tuple[Any, Any, Any, Any]:
    try:
        import diffusers
        import peft
        import torch
        import transformers
    except ImportError as exc:
        raise ImportError(
            f"LoRA training needs diffusers, peft, transformers and torch: {INSTALL_HINT} ({exc})"
        ) from exc
    return torch, diffusers, transformers, peft


def _base_model_dir(spec: Path) -> Path:
    from modules.model_files import locate_model

    root = Path(__file__).resolve().parents[2]
    where = locate_model(str(spec), root)
    if where.path is None or not (where.path / "model_index.json").is_file():
        raise LoraTrainError(
            f"--base-model: {spec} is not a local diffusers Stable Diffusion 1.5 directory (model_index.json, unet/, "
            "vae/, text_encoder/, tokenizer/, scheduler/). `python -m app download image` fetches one"
        )
    index = json.loads((where.path / "model_index.json").read_text(encoding="utf-8"))
    if "XL" in str(index.get("_class_name", "")):
        raise LoraTrainError("--base-model is an SDXL model; this trainer makes SD 1.5 LoRAs only")
    return where.path


def _pick_device(torch: Any, device: str) -> str:
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def train_lora(config: LoraTrainConfig, on_progress: Callable[[TrainProgress], None] | None = None) -> LoraTrainResult:
    """Train and save the LoRA; raises LoraTrainError for bad input."""
    config.check()
    examples = load_examples(config.images, config.trigger.strip())
    base = _base_model_dir(config.base_model)
    torch, diffusers, transformers, peft = _import_libraries()
    from diffusers.optimization import get_scheduler

    started = time.perf_counter()
    device = _pick_device(torch, config.device)
    if device == "cpu":
        log.warning("training on the CPU: fine for a smoke test, hours for a real LoRA (use a GPU)")
    if config.mixed_precision != "no" and device == "cpu":
        raise LoraTrainError("--mixed-precision needs a GPU; use --mixed-precision no on the CPU")
    weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[config.mixed_precision]
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)

    try:
        tokenizer = transformers.CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
        text_encoder = transformers.CLIPTextModel.from_pretrained(base, subfolder="text_encoder", dtype=weight_dtype)
        vae = diffusers.AutoencoderKL.from_pretrained(base, subfolder="vae", dtype=weight_dtype)
        unet = diffusers.UNet2DConditionModel.from_pretrained(base, subfolder="unet", dtype=weight_dtype)
        noise_scheduler = diffusers.DDPMScheduler.from_pretrained(base, subfolder="scheduler")
    except Exception as exc:
        raise LoraTrainError(f"--base-model: could not load {base}: {exc}") from exc
    for model in (text_encoder, vae, unet):
        model.requires_grad_(False)
    text_encoder.to(device).eval()
    vae.to(device).eval()
    unet.to(device)
    alpha = config.alpha if config.alpha is not None else config.rank
    unet.add_adapter(
        peft.LoraConfig(
            r=config.rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=list(TARGET_MODULES)
        )
    )
    # The LoRA weights train in float32 even when the frozen model runs in half precision.
    lora_params = [p for p in unet.parameters() if p.requires_grad]
    for param in lora_params:
        param.data = param.data.float()
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()

    # Frozen encoders: each caption's embedding and each picture's latent distribution once.
    with torch.no_grad():
        embeddings: dict[str, Any] = {}
        for caption in {e.caption for e in examples}:
            ids = tokenizer(
                caption,
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(device)
            embeddings[caption] = text_encoder(ids)[0][0]
    latent_cache: dict[tuple[int, bool], Any] = {}

    def latent_distribution(index: int, flip: bool) -> Any:
        key = (index, flip) if config.center_crop else None
        if key is not None and key in latent_cache:
            return latent_cache[key]
        pixels = load_picture(examples[index].image, config.resolution, config.center_crop, flip, rng)
        with torch.no_grad():
            params = vae.encode(pixels[None].to(device, dtype=weight_dtype)).latent_dist.parameters[0]
        if key is not None:
            latent_cache[key] = params
        return params

    optimizer = torch.optim.AdamW(lora_params, lr=config.learning_rate, weight_decay=1e-2)
    lr_scheduler = get_scheduler(
        config.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=config.warmup_steps,
        num_training_steps=config.steps,
    )
    scaler = torch.amp.GradScaler("cuda") if config.mixed_precision == "fp16" else None
    scaling = vae.config.scaling_factor
    order: list[int] = []
    checkpoints: list[Path] = []
    loss_value = math.nan
    step_started = time.perf_counter()
    for step in range(1, config.steps + 1):
        loss_value = 0.0
        for _ in range(config.grad_accum):
            batch = []
            for _ in range(config.batch_size):
                if not order:  # a fresh shuffled pass over the pictures
                    order = list(range(len(examples)))
                    rng.shuffle(order)
                batch.append(order.pop())
            flips = [config.random_flip and rng.random() < 0.5 for _ in batch]
            params = torch.stack([latent_distribution(i, f) for i, f in zip(batch, flips, strict=True)])
            mean, logvar = params.float().chunk(2, dim=1)
            latents = (mean + torch.exp(0.5 * logvar.clamp(-30, 20)) * torch.randn_like(mean)) * scaling
            noise = torch.randn_like(latents)
            timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(batch),), device=device)
            noisy = noise_scheduler.add_noise(latents, noise, timesteps)
            if noise_scheduler.config.prediction_type == "v_prediction":
                target = noise_scheduler.get_velocity(latents, noise, timesteps)
            else:
                target = noise
            states = torch.stack([embeddings[examples[i].caption] for i in batch])
            with torch.autocast(device.split(":")[0], dtype=weight_dtype, enabled=config.mixed_precision != "no"):
                pred = unet(noisy.to(weight_dtype), timesteps, states).sample
            loss = torch.nn.functional.mse_loss(pred.float(), target.float()) / config.grad_accum
            if scaler is not None:
                scaler.scale(loss).backward()
            else:
                loss.backward()
            loss_value += loss.item()
        if not math.isfinite(loss_value):
            raise LoraTrainError(f"the loss became {loss_value} at step {step}: lower --lr or use --mixed-precision no")
        if scaler is not None:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(lora_params, config.max_grad_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if on_progress is not None:
            elapsed = (time.perf_counter() - step_started) / step
            on_progress(TrainProgress(step, config.steps, loss_value, lr_scheduler.get_last_lr()[0], elapsed))
        if config.save_every and step % config.save_every == 0 and step < config.steps:
            path = config.output.with_name(f"{config.output.stem}-step{step}.safetensors")
            _save(unet, path, config, base, step, len(examples))
            checkpoints.append(path)

    _save(unet, config.output, config, base, config.steps, len(examples))
    return LoraTrainResult(
        output=config.output,
        steps=config.steps,
        final_loss=loss_value,
        seconds=time.perf_counter() - started,
        images=len(examples),
        trigger_words=config.trigger.strip(),
        checkpoints=tuple(checkpoints),
    )


def _save(unet: Any, path: Path, config: LoraTrainConfig, base: Path, step: int, images: int) -> None:
    """diffusers' LoRA file (StableDiffusionPipeline.save_lora_weights) plus our metadata, written atomically."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    layers = {k: v.detach().float().cpu().contiguous() for k, v in layers.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        StableDiffusionPipeline.save_lora_weights(
            tmp,
            unet_lora_layers=layers,
            weight_name=path.name,
            unet_lora_adapter_metadata=unet.peft_config["default"].to_dict(),
        )
        written = Path(tmp) / path.name
        with safe_open(str(written), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        settings = {k: str(v) for k, v in asdict(config).items() if k not in ("images", "output", "base_model")}
        metadata |= {
            TRIGGER_KEY: config.trigger.strip(),
            "modelspec.trigger_phrase": config.trigger.strip(),
            "wulewule_base_model": base.name,
            "wulewule_steps": str(step),
            "wulewule_images": str(images),
            "wulewule_settings": json.dumps(settings, sort_keys=True),
        }
        save_file(load_file(written), written, metadata=metadata)
        shutil.move(str(written), path)
    log.info("saved LoRA %s (step %d)", path, step)


# -- command line -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> LoraTrainConfig:
    """The command line as a LoraTrainConfig."""
    defaults = LoraTrainConfig(Path(), Path(), Path("x.safetensors"))
    p = argparse.ArgumentParser(
        prog="python -m training.picture_lora.train",
        description="Train a Stable Diffusion 1.5 LoRA (e.g. the Destined One) on a folder of pictures.",
    )
    p.add_argument("--base-model", type=Path, required=True, help="diffusers SD 1.5 directory (or downloaded hub id)")
    p.add_argument("--images", type=Path, required=True, help="folder of pictures (+ metadata.jsonl / captions.txt)")
    p.add_argument("--output", type=Path, required=True, help="the LoRA file to write (.safetensors)")
    p.add_argument("--trigger", default=defaults.trigger, help="trigger word put first in every caption")
    p.add_argument("--rank", type=int, default=defaults.rank)
    p.add_argument("--alpha", type=float, default=None, help="LoRA alpha (default: the rank)")
    p.add_argument("--lr", type=float, default=defaults.learning_rate, dest="learning_rate")
    p.add_argument("--steps", type=int, default=defaults.steps)
    p.add_argument("--resolution", type=int, default=defaults.resolution)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--grad-accum", type=int, default=defaults.grad_accum)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", default=defaults.device, help="auto | cpu | cuda | cuda:1 | mps")
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default=defaults.mixed_precision)
    p.add_argument("--random-crop", action="store_false", dest="center_crop", help="random instead of center crops")
    p.add_argument("--random-flip", action="store_true")
    p.add_argument("--lr-scheduler", default=defaults.lr_scheduler, help="constant | cosine | linear | …")
    p.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    p.add_argument("--max-grad-norm", type=float, default=defaults.max_grad_norm)
    p.add_argument("--gradient-checkpointing", action="store_true", help="less GPU memory, slower steps")
    p.add_argument("--save-every", type=int, default=defaults.save_every)
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    args = p.parse_args(argv)
    return LoraTrainConfig(**vars(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 for bad input)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = parse_args(argv)
    every = max(1, config.steps // 50)

    def report(p: TrainProgress) -> None:
        if p.step == 1 or p.step % every == 0 or p.step == p.total:
            print(
                f"step {p.step}/{p.total}  loss {p.loss:.4f}  lr {p.learning_rate:.2e}  {p.seconds_per_step:.2f} s/step"
            )

    try:
        result = train_lora(config, on_progress=report)
    except (LoraTrainError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {result.output} ({result.images} pictures, {result.steps} steps, {result.seconds:.0f} s). "
        f"Use it with: --set image.lora.path={result.output}  (trigger word: {result.trigger_words})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
