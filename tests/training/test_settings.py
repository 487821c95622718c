"""configs/training.yaml as typed settings: defaults, overrides, and errors that name the key."""

from __future__ import annotations

import pytest

from modules.config_layers import ConfigError
from training.settings import load_training_settings


def test_defaults_describe_the_two_models():
    settings = load_training_settings()
    assert settings.assistant.name == "悟了悟了"
    assert settings.models["1_8b"].base == "internlm/internlm2_5-1_8b-chat"
    assert settings.models["7b"].base == "internlm/internlm2_5-7b-chat"
    assert settings.preset.name == "wulewule_v1_1_8b"
    assert settings.sft.quantize_4bit and settings.deepspeed == "zero2"
    assert settings.awq.w_bits == 4 and settings.awq.w_group_size == 128
    assert settings.envs.xtuner == ".venv-train/bin/xtuner" and settings.envs.lmdeploy == ".venv-serve/bin/lmdeploy"
    assert settings.data_dir.is_absolute() and settings.work_dir.name == "work_dirs"


def test_overrides_from_a_file_and_flags(tmp_path):
    extra = tmp_path / "mine.yaml"
    extra.write_text("models:\n  tiny:\n    base: /models/tiny\n    name: tiny\nsft:\n  lr: 0.001\n", encoding="utf-8")
    settings = load_training_settings(extra, ["model=tiny", "sft.epochs=5", "deepspeed=zero3"])
    assert settings.preset.base == "/models/tiny" and "1_8b" in settings.models  # merged, not replaced
    assert settings.sft.lr == 0.001 and settings.sft.epochs == 5 and settings.deepspeed == "zero3"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["model=13b"], "model '13b' is not one of models: 1_8b, 7b"),
        (["sft.lr=0"], "config key 'sft.lr'"),
        (["deepspeed=zero9"], "config key 'deepspeed'"),
        (["sft.learning_rate=1"], "unknown config key 'sft.learning_rate'"),
        (["data.pretrain.overlap_chars=2000"], "must be smaller than chunk_chars"),
        (["models.7b.name=a b"], "config key 'models.7b.name'"),
    ],
)
def test_bad_values_name_the_key(sets, message):
    with pytest.raises(ConfigError, match="invalid training configuration") as err:
        load_training_settings(None, sets)
    assert message in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_training_settings(tmp_path / "nope.yaml")
