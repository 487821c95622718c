"""Where every artifact of a training run lives, and which model each stage starts from.

<work_dir>/<name>/configs/{pretrain,sft}.py   rendered xtuner configs
<work_dir>/<name>/{pretrain,sft}/             xtuner work dirs (iter_N.pth, last_checkpoint, logs)
<work_dir>/<name>/{pretrain,sft}-hf/          the LoRA adapter in Hugging Face format (convert pth_to_hf)
<work_dir>/<name>/{pretrain,sft}-merged/      base + adapter merged (convert merge); sft-merged is the model
<work_dir>/<name>/<name>-w4a16-4bit/          the AWQ-quantised model LMDeploy serves
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.config import REPO_ROOT
from modules.model_files import ModelNotFoundError, locate_model
from training.settings import TrainingSettings

TrainStage = Literal["pretrain", "sft"]

# ModelScope ids of the base models, for the download hint (the configs use the Hugging Face ids).
MODELSCOPE_IDS = {
    "internlm/internlm2_5-1_8b-chat": "Shanghai_AI_Laboratory/internlm2_5-1_8b-chat",
    "internlm/internlm2_5-7b-chat": "Shanghai_AI_Laboratory/internlm2_5-7b-chat",
}


@dataclass(frozen=True)
class Layout:
    """The directories of one model's run."""

    root: Path
    name: str

    def config(self, stage: TrainStage) -> Path:
        return self.root / "configs" / f"{stage}.py"

    def train_dir(self, stage: TrainStage) -> Path:
        return self.root / stage

    def adapter_dir(self, stage: TrainStage) -> Path:
        return self.root / f"{stage}-hf"

    def merged_dir(self, stage: TrainStage) -> Path:
        return self.root / f"{stage}-merged"

    @property
    def awq_dir(self) -> Path:
        return self.root / f"{self.name}-w4a16-4bit"


def layout_for(settings: TrainingSettings, model_key: str | None = None) -> Layout:
    """The layout of ``model_key`` (default: the configured ``model``)."""
    preset = settings.models[model_key or settings.model]
    return Layout(settings.work_dir / preset.name, preset.name)


def download_hint(spec: str) -> str:
    """How to get a base model onto this machine, where ``locate_model`` will find it (models/<org>/<name>)."""
    if "/" not in spec or spec.startswith((".", "/", "~")):
        return "point it at a local model directory"
    target = f"models/{spec}"
    return (
        f"download it with `.venv/bin/modelscope download {MODELSCOPE_IDS.get(spec, spec)} --local-dir {target}` "
        f"(or `.venv/bin/hf download {spec} --local-dir {target}`), or point it at a local model directory"
    )


def base_model_path(settings: TrainingSettings, model_key: str | None = None) -> Path:
    """The local directory of the base model; a model not on this machine is an error naming the key and fix."""
    key = model_key or settings.model
    spec = settings.models[key].base
    loc = locate_model(spec, REPO_ROOT)
    if loc.path is None:
        raise ModelNotFoundError(
            f"config key models.{key}.base: {spec!r} is not on this machine; {download_hint(spec)}"
        )
    return loc.path


def stage_base(settings: TrainingSettings, stage: TrainStage, model_key: str | None = None) -> Path:
    """The model a stage trains: pretraining the base; SFT the pretrained merge (or the base, pretraining off)."""
    if stage == "sft" and settings.pretrain.enabled:
        return layout_for(settings, model_key).merged_dir("pretrain")
    return base_model_path(settings, model_key)


# The data files each training stage reads, under data_dir (written by the data commands).
PRETRAIN_DATA = "pretrain.jsonl"
SELF_COGNITION_DATA = "self_cognition.jsonl"
QA_TRAIN_DATA = "qa_train.jsonl"
QA_VAL_DATA = "qa_val.jsonl"
DATA_COMMANDS = {PRETRAIN_DATA: "pretrain-data", SELF_COGNITION_DATA: "self-cognition", QA_TRAIN_DATA: "qa"}
STAGE_DATA: dict[str, tuple[str, ...]] = {"pretrain": (PRETRAIN_DATA,), "sft": (SELF_COGNITION_DATA, QA_TRAIN_DATA)}


def data_files(settings: TrainingSettings, stage: TrainStage) -> list[Path]:
    """The JSONL files a stage trains on."""
    return [settings.data_dir / name for name in STAGE_DATA[stage]]
