"""Render xtuner configs from ``xtuner_config.py.tmpl`` and configs/training.yaml.

The template is a complete xtuner config whose settings block holds ``${name}`` placeholders; every value is
written as a Python literal (``repr``), so a path or a system prompt with quotes or newlines cannot break the
file. One template serves both stages and both model sizes: incremental pretraining trains on raw text (no chat
template), SFT on conversations with the model's prompt template. The CPU variant (``cpu: true``, for smoke runs)
swaps the GPU-only parts: float32 instead of float16, no 4-bit quantisation, OptimWrapper instead of
AmpOptimWrapper, gloo instead of nccl.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from training.layout import TrainStage, data_files
from training.settings import TrainingSettings

TEMPLATE = Path(__file__).with_name("xtuner_config.py.tmpl")
STAGES: tuple[TrainStage, ...] = ("pretrain", "sft")


def config_values(
    settings: TrainingSettings,
    stage: TrainStage,
    base_model: Path | str,
    *,
    system: str = "",
    model_key: str | None = None,
) -> dict[str, object]:
    """The template's values for one stage of one model."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, not {stage!r}")
    hp = settings.pretrain if stage == "pretrain" else settings.sft
    preset = settings.models[model_key or settings.model]
    cpu = settings.cpu
    return {
        "pretrained_model_name_or_path": str(base_model),
        "torch_dtype": "float32" if cpu else "float16",
        "quantize_4bit": hp.quantize_4bit and not cpu,
        "lora_r": hp.lora_r,
        "lora_alpha": hp.lora_alpha,
        "lora_dropout": hp.lora_dropout,
        "data_files": [str(p) for p in data_files(settings, stage)],
        "use_chat_template": stage == "sft",
        "max_length": hp.max_length,
        "pack_to_max_length": hp.pack_to_max_length,
        "batch_size": hp.batch_size,
        "accumulative_counts": hp.accumulation,
        "dataloader_num_workers": hp.num_workers,
        "max_epochs": hp.epochs,
        "max_iters": hp.max_steps,
        "lr": hp.lr,
        "weight_decay": hp.weight_decay,
        "max_norm": hp.max_norm,
        "warmup_ratio": hp.warmup_ratio,
        "use_amp": not cpu,
        "save_steps": hp.save_steps,
        "save_total_limit": hp.save_total_limit,
        "evaluation_freq": hp.evaluation_freq,
        "system": system if stage == "sft" else "",
        "evaluation_inputs": list(hp.evaluation_inputs),
        "dist_backend": "gloo" if cpu else "nccl",
        "seed": settings.seed,
        # Not literals: an identifier and comments.
        "prompt_template": preset.prompt_template,
        "stage": stage,
        "header": f"xtuner config: {stage} of {preset.name} ({'CPU smoke run' if cpu else 'GPU'})",
    }


_RAW = ("prompt_template", "stage", "header")


def render(values: dict[str, object], template: Path = TEMPLATE) -> str:
    """The template with every placeholder filled; a missing value is a KeyError naming it."""
    text = Template(template.read_text(encoding="utf-8"))
    filled = {k: (str(v) if k in _RAW else repr(v)) for k, v in values.items()}
    for key in _RAW:
        if "\n" in filled.get(key, ""):
            raise ValueError(f"{key} must be a single line")
    return text.substitute(filled)


def write_config(
    settings: TrainingSettings,
    stage: TrainStage,
    base_model: Path | str,
    out: Path,
    *,
    system: str = "",
    model_key: str | None = None,
) -> Path:
    """Render one stage's config to ``out`` (directories created); returns ``out``.

    An unchanged config is not rewritten: the pipeline tells a finished stage by its inputs' timestamps.
    """
    text = render(config_values(settings, stage, base_model, system=system, model_key=model_key))
    if not (out.is_file() and out.read_text(encoding="utf-8") == text):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return out
