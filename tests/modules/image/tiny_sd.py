"""Tiny random Stable Diffusion pipelines, saved like real model directories.

Weights are random, so the pictures are noise; but every component is the real class saved with
``save_pretrained``, so the code under test takes the same ``from_pretrained`` path a downloaded model
would. A 64x64 picture in 2 steps takes well under a second on a CPU.

Used as session fixtures (``tiny_sd_dir``, ``tiny_sdxl_dir``, ``tiny_sd_safety_dir``,
``tiny_sd_flagging_dir``, ``tiny_lora_file``) by the image tests; another test package gets them with
``from tests.modules.image.tiny_sd import tiny_sd_dir  # noqa: F401`` (or calls ``build_tiny_sd``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

# CLIP's byte-level BPE needs every byte as a symbol (and as an end-of-word symbol) so that any text,
# Chinese included, tokenizes; a few merges make common English words shorter, as a real vocab would.
_MERGES = ["t h", "th e</w>", "o n", "e r", "i n", "a n", "r e", "o r", "a r", "e n"]


def _bytes_to_unicode() -> list[str]:
    """GPT-2's byte -> printable character table (what CLIP's vocab is written in)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs, strict=True))]


def write_tiny_clip_tokenizer(out: Path) -> Path:
    """A CLIPTokenizer with a byte vocabulary (vocab.json + merges.txt), saved to ``out``."""
    from transformers import CLIPTokenizer

    out.mkdir(parents=True, exist_ok=True)
    symbols = _bytes_to_unicode()
    vocab_list = [*symbols, *(s + "</w>" for s in symbols)]
    for merge in _MERGES:
        vocab_list.append(merge.replace(" ", ""))
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(vocab_list))}
    with tempfile.TemporaryDirectory() as raw:
        (Path(raw) / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        (Path(raw) / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n", encoding="utf-8")
        tokenizer = CLIPTokenizer.from_pretrained(raw, model_max_length=77)
    tokenizer.save_pretrained(out)
    return out


def _text_config(tokenizer: object, projection_dim: int = 32) -> object:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=1100,
        projection_dim=projection_dim,
    )


def _vae() -> object:
    from diffusers import AutoencoderKL

    # sample_size above the test sizes keeps VAE tiling (a memory saver) out of the picture.
    return AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=2,
        sample_size=256,
    )


def _scheduler() -> object:
    from diffusers import DDIMScheduler

    # SD 1.5's own scheduler settings, so switching schedulers from its config behaves as on the real model.
    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def _safety_checker(flag_everything: bool = False) -> tuple[object, object]:
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 1},
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_attention_heads": 4,
            "num_hidden_layers": 1,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=32,
    )
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    checker = StableDiffusionSafetyChecker(config)
    if flag_everything:
        # A concept's score is cosine similarity minus its weight; a weight of -1 makes every picture score > 0.
        checker.concept_embeds_weights.data.fill_(-1.0)
    return checker, processor


def build_tiny_sd(out: Path, safety_checker: bool = False, seed: int = 0, flag_everything: bool = False) -> Path:
    """A tiny random SD 1.5-layout pipeline saved to ``out`` (diffusers layout, safetensors).

    ``safety_checker`` ships a (random) safety checker; ``flag_everything`` makes it flag every picture.
    """
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=2,
    )
    checker, processor = _safety_checker(flag_everything) if safety_checker else (None, None)
    tokenizer = _load_tokenizer(out)
    pipe = StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_text_config(tokenizer)),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_scheduler(),
        safety_checker=checker,
        feature_extractor=processor,
        requires_safety_checker=safety_checker,
    )
    pipe.save_pretrained(out)
    return out


def build_tiny_sdxl(out: Path, seed: int = 0) -> Path:
    """A tiny random SDXL-layout pipeline (two text encoders, text_time conditioning) saved to ``out``."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32,  # six size/crop ids + the pooled text embedding
        cross_attention_dim=64,  # both text encoders' hidden states side by side
        norm_num_groups=2,
    )
    tokenizer = _load_tokenizer(out)
    pipe = StableDiffusionXLPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_text_config(tokenizer)),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(tokenizer)),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"),
    )
    pipe.save_pretrained(out)
    return out


def _load_tokenizer(out: Path) -> object:
    from transformers import CLIPTokenizer

    # Built in a scratch folder; save_pretrained then writes it into the pipeline's tokenizer/ folder.
    with tempfile.TemporaryDirectory() as scratch:
        return CLIPTokenizer.from_pretrained(write_tiny_clip_tokenizer(Path(scratch) / "tokenizer"))


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SD 1.5 pipeline directory without a safety checker."""
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd") / "model")


@pytest.fixture(scope="session")
def tiny_sd_safety_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SD 1.5 pipeline directory that ships a safety checker."""
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd-safety") / "model", safety_checker=True)


@pytest.fixture(scope="session")
def tiny_sd_flagging_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SD 1.5 pipeline whose safety checker flags every picture."""
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd-flag") / "model", safety_checker=True, flag_everything=True)


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SDXL pipeline directory."""
    return build_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl") / "model")


def write_random_lora(model_dir: Path, out_file: Path, rank: int = 4, seed: int = 1, **metadata: str) -> Path:
    """A random UNet attention LoRA for the pipeline in ``model_dir``, saved in diffusers' LoRA format.

    Both LoRA matrices are random (a fresh LoRA's B is zero and would change nothing), so loading it
    visibly changes the picture. ``metadata`` goes into the safetensors header.
    """
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet")
    unet.add_adapter(
        LoraConfig(
            r=rank, lora_alpha=rank, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"]
        )
    )
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(out_file.parent, unet_lora_layers=layers, weight_name=out_file.name)
    if metadata:
        save_file(load_file(out_file), out_file, metadata={"format": "pt", **metadata})
    return out_file


@pytest.fixture(scope="session")
def tiny_lora_file(tiny_sd_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random LoRA for ``tiny_sd_dir`` whose metadata names the trigger word ``dstnd_one``."""
    out = tmp_path_factory.mktemp("tiny-lora") / "destined_one.safetensors"
    return write_random_lora(tiny_sd_dir, out, wulewule_trigger_words="dstnd_one")
