"""Where a run's artifacts go and which model each stage trains."""

from __future__ import annotations

import pytest

from modules.model_files import ModelNotFoundError
from training.layout import base_model_path, data_files, layout_for, stage_base
from training.settings import load_training_settings


def test_layout_of_the_configured_model(tmp_path):
    settings = load_training_settings(None, [f"paths.work_dir={tmp_path}", "model=7b"])
    layout = layout_for(settings)
    assert layout.root == tmp_path / "wulewule_v1_7b"
    assert layout.config("sft") == tmp_path / "wulewule_v1_7b" / "configs" / "sft.py"
    assert layout.merged_dir("pretrain") == tmp_path / "wulewule_v1_7b" / "pretrain-merged"
    assert layout.awq_dir.name == "wulewule_v1_7b-w4a16-4bit"
    assert layout_for(settings, "1_8b").root.name == "wulewule_v1_1_8b"


def test_data_files(tmp_path):
    settings = load_training_settings(None, [f"paths.data_dir={tmp_path}"])
    assert data_files(settings, "pretrain") == [tmp_path / "pretrain.jsonl"]
    assert data_files(settings, "sft") == [tmp_path / "self_cognition.jsonl", tmp_path / "qa_train.jsonl"]


def test_a_missing_base_model_names_the_key_and_the_download(monkeypatch):
    settings = load_training_settings(None, ["models.1_8b.base=internlm/internlm2_5-1_8b-chat"])
    monkeypatch.setenv("MODELSCOPE_CACHE", "/nonexistent")
    with pytest.raises(ModelNotFoundError) as err:
        base_model_path(settings)
    message = str(err.value)
    assert "config key models.1_8b.base" in message
    target = "models/internlm/internlm2_5-1_8b-chat"
    assert f"modelscope download Shanghai_AI_Laboratory/internlm2_5-1_8b-chat --local-dir {target}" in message
    assert "hf download internlm/internlm2_5-1_8b-chat" in message
    missing_path = load_training_settings(None, ["models.1_8b.base=/no/such/model"])
    with pytest.raises(ModelNotFoundError, match="local model directory"):
        base_model_path(missing_path)


def test_sft_starts_from_the_pretrained_merge_unless_pretraining_is_off(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    sets = [f"models.1_8b.base={base}", f"paths.work_dir={tmp_path / 'w'}"]
    on = load_training_settings(None, sets)
    assert stage_base(on, "pretrain") == base
    assert stage_base(on, "sft") == tmp_path / "w" / "wulewule_v1_1_8b" / "pretrain-merged"
    off = load_training_settings(None, [*sets, "pretrain.enabled=false"])
    assert stage_base(off, "sft") == base
