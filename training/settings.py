"""Typed training configuration: ``configs/training.yaml``, then ``--config PATH``, then ``--set`` flags.

The same layering and error wording as the app's ``app/config.py`` (whose helpers it reuses): unknown keys and
bad values fail at start with the key named.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from app.config import REPO_ROOT
from modules.config_layers import ConfigError, Section, load_layers

DEFAULT_TRAINING_CONFIG = REPO_ROOT / "configs" / "training.yaml"


class AssistantIdentity(Section):
    name: str = "悟了悟了"
    name_en: str = "Wulewule"
    maker: str = "xzyun2011"
    maker_en: str = "xzyun2011"
    game: str = "《黑神话：悟空》"
    game_en: str = "Black Myth: Wukong"


class ModelPreset(Section):
    base: str  # hub id or local path
    name: str = Field(pattern=r"^[\w.-]+$")  # a directory name under work_dir
    prompt_template: str = Field("internlm2_chat", pattern=r"^\w+$")


class PathSettings(Section):
    data_dir: Path = Path("data")
    work_dir: Path = Path("work_dirs")


class PretrainDataSettings(Section):
    sources: list[Path] = Field(default_factory=lambda: [Path("data/texts")])
    chunk_chars: int = Field(1024, ge=50, le=100_000)
    overlap_chars: int = Field(128, ge=0)
    min_chars: int = Field(50, ge=1)
    near_duplicate: float = Field(0.85, gt=0, le=1)

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> PretrainDataSettings:
        if self.overlap_chars >= self.chunk_chars:
            raise ValueError(
                f"overlap_chars ({self.overlap_chars}) must be smaller than chunk_chars ({self.chunk_chars})"
            )
        return self


class SelfCognitionSettings(Section):
    paraphrases: int = Field(0, ge=0, le=20)


class QaDataSettings(Section):
    questions_per_topic: int = Field(5, ge=1, le=50)
    with_passages: bool = True
    min_coverage: float = Field(0.8, gt=0, le=1)
    near_duplicate: float = Field(0.85, gt=0, le=1)
    val_ratio: float = Field(0.05, ge=0, lt=1)
    max_topics: int = Field(0, ge=0)


class GeneratorSettings(Section):
    base_url: str = ""
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(0.7, ge=0, le=2)
    read_timeout: float = Field(120, gt=0)


class DataSettings(Section):
    pretrain: PretrainDataSettings = Field(default_factory=PretrainDataSettings)
    self_cognition: SelfCognitionSettings = Field(default_factory=SelfCognitionSettings)
    qa: QaDataSettings = Field(default_factory=QaDataSettings)
    generator: GeneratorSettings = Field(default_factory=GeneratorSettings)


class StageHyperparameters(Section):
    """One xtuner training stage (LoRA or QLoRA)."""

    quantize_4bit: bool = True
    lora_r: int = Field(64, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.1, ge=0, lt=1)
    lr: float = Field(2e-4, gt=0)
    epochs: int = Field(1, ge=1)
    max_steps: int = Field(0, ge=0)
    max_length: int = Field(2048, ge=16)
    pack_to_max_length: bool = True
    batch_size: int = Field(1, ge=1)
    accumulation: int = Field(16, ge=1)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_norm: float = Field(1.0, gt=0)
    save_steps: int = Field(500, ge=1)
    save_total_limit: int = Field(2, ge=-1)
    evaluation_freq: int = Field(500, ge=1)
    evaluation_inputs: list[str] = Field(default_factory=list)
    num_workers: int = Field(0, ge=0)


class PretrainSettings(StageHyperparameters):
    enabled: bool = True


class AwqSettings(Section):
    w_bits: int = Field(4, ge=2, le=8)
    w_group_size: int = Field(128, ge=1)
    calib_dataset: str = "wikitext2"
    calib_samples: int = Field(128, ge=0)
    calib_seqlen: int = Field(2048, ge=16)
    batch_size: int = Field(1, ge=1)
    search_scale: bool = False


class EnvSettings(Section):
    xtuner: str = ".venv-train/bin/xtuner"
    lmdeploy: str = ".venv-serve/bin/lmdeploy"


class TrainingSettings(Section):
    assistant: AssistantIdentity = Field(default_factory=AssistantIdentity)
    system_prompt: str = ""
    model: str = "1_8b"
    models: dict[str, ModelPreset] = Field(default_factory=dict)
    paths: PathSettings = Field(default_factory=PathSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    pretrain: PretrainSettings = Field(default_factory=PretrainSettings)
    sft: StageHyperparameters = Field(default_factory=lambda: StageHyperparameters(epochs=3))
    deepspeed: Literal["none", "zero1", "zero2", "zero3", "zero2_offload", "zero3_offload"] = "zero2"
    gpus: int = Field(1, ge=1)
    cpu: bool = False
    seed: int = 2024
    awq: AwqSettings = Field(default_factory=AwqSettings)
    envs: EnvSettings = Field(default_factory=EnvSettings)

    @model_validator(mode="after")
    def _model_is_listed(self) -> TrainingSettings:
        if self.model not in self.models:
            listed = ", ".join(sorted(self.models)) or "(none)"
            raise ValueError(f"model {self.model!r} is not one of models: {listed}")
        return self

    def resolve(self, path: Path | str) -> Path:
        """A configured path made absolute against the repository root."""
        path = Path(path)
        return path if path.is_absolute() else REPO_ROOT / path

    @property
    def preset(self) -> ModelPreset:
        """The model the pipeline trains (``model``)."""
        return self.models[self.model]

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.paths.data_dir)

    @property
    def work_dir(self) -> Path:
        return self.resolve(self.paths.work_dir)


def load_training_settings(config_path: Path | str | None = None, sets: Iterable[str] = ()) -> TrainingSettings:
    """configs/training.yaml < config_path < ``--set`` flags; raises ConfigError naming the offending key."""
    try:
        return load_layers(TrainingSettings, DEFAULT_TRAINING_CONFIG, config_path, sets)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("invalid configuration", "invalid training configuration")) from None
