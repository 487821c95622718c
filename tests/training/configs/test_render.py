"""The rendered xtuner configs: valid Python with every key xtuner reads and our values as literals.

mmengine (which really parses them) lives in the training environment; tests/training/test_xtuner_e2e.py loads
a rendered config with ``mmengine.Config.fromfile`` there and trains with it. Here the app environment checks
the text with ``ast``.
"""

from __future__ import annotations

import ast
import contextlib
from pathlib import Path
from string import Template

import pytest

from training.cli import main
from training.configs.render import TEMPLATE, config_values, render, write_config
from training.settings import load_training_settings

XTUNER_KEYS = {
    "tokenizer",
    "model",
    "train_dataset",
    "train_dataloader",
    "optim_wrapper",
    "param_scheduler",
    "train_cfg",
    "custom_hooks",
    "default_hooks",
    "env_cfg",
    "visualizer",
    "log_level",
    "load_from",
    "resume",
    "randomness",
    "log_processor",
}
SYSTEM = '你是“悟了悟了”。\n用 [1] 标注出处，别说 """三引号""" 和 \\ 反斜杠。'


def parse(text: str) -> tuple[set[str], dict[str, object]]:
    """Top-level names a config assigns, and the values of those assigned a literal."""
    tree = ast.parse(text)
    names: set[str] = set()
    literals: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
                    with contextlib.suppress(ValueError):
                        literals.setdefault(target.id, ast.literal_eval(node.value))
    return names, literals


@pytest.fixture
def settings(tmp_path):
    return load_training_settings(None, [f"paths.data_dir={tmp_path / 'data'}", f"paths.work_dir={tmp_path / 'w'}"])


def test_template_placeholders_and_values_match(settings):
    placeholders = set(Template(TEMPLATE.read_text(encoding="utf-8")).get_identifiers())
    assert placeholders == set(config_values(settings, "sft", "/m"))


@pytest.mark.parametrize("model", ["1_8b", "7b"])
@pytest.mark.parametrize("stage", ["pretrain", "sft"])
def test_gpu_configs(settings, tmp_path, model, stage):
    base = f"/models/internlm2_5-{model}-chat"
    text = render(config_values(settings, stage, base, system=SYSTEM, model_key=model))
    names, values = parse(text)
    assert names >= XTUNER_KEYS
    hp = settings.pretrain if stage == "pretrain" else settings.sft
    assert values["pretrained_model_name_or_path"] == base
    assert values["data_files"] == (
        [str(tmp_path / "data" / "pretrain.jsonl")]
        if stage == "pretrain"
        else [str(tmp_path / "data" / "self_cognition.jsonl"), str(tmp_path / "data" / "qa_train.jsonl")]
    )
    assert values["use_chat_template"] is (stage == "sft")
    assert values["SYSTEM"] == (SYSTEM if stage == "sft" else "")  # quotes, newlines, backslashes survive
    assert (values["lr"], values["lora_r"], values["lora_alpha"]) == (hp.lr, hp.lora_r, hp.lora_alpha)
    assert values["max_epochs"] == hp.epochs and values["accumulative_counts"] == hp.accumulation
    assert values["quantize_4bit"] is True and values["use_amp"] is True  # QLoRA with AMP on GPUs
    assert values["torch_dtype"] == "float16" and values["dist_backend"] == "nccl"
    assert values["evaluation_inputs"] == hp.evaluation_inputs
    assert "prompt_template = PROMPT_TEMPLATE.internlm2_chat" in text
    assert "$" not in text


def test_cpu_variant(settings):
    settings.cpu = True
    settings.sft.max_steps = 3
    _, values = parse(render(config_values(settings, "sft", "/tiny")))
    assert values["quantize_4bit"] is False and values["use_amp"] is False
    assert values["torch_dtype"] == "float32" and values["dist_backend"] == "gloo" and values["max_iters"] == 3


def execute(text: str) -> dict[str, object]:
    """Run a config's body (after its imports) with a named stand-in for each name it imports."""
    tree = ast.parse(text)
    imported = [a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom | ast.Import) for a in n.names]
    namespace: dict[str, object] = {name: type(name, (), {"from_pretrained": name}) for name in imported}
    namespace["PROMPT_TEMPLATE"] = type("PROMPT_TEMPLATE", (), {"internlm2_chat": "internlm2-template"})
    namespace["torch"] = type("torch", (), {"float32": "f32", "float16": "f16"})
    body = [n for n in tree.body if not isinstance(n, ast.ImportFrom | ast.Import)]
    exec(compile(ast.Module(body, []), "config", "exec"), namespace)
    return namespace


def test_the_configs_branches_follow_the_switches(settings):
    settings.cpu, settings.sft.max_steps = True, 3
    cpu = execute(render(config_values(settings, "sft", "/tiny")))
    assert cpu["optim_wrapper"]["type"].__name__ == "OptimWrapper" and "loss_scale" not in cpu["optim_wrapper"]
    assert cpu["train_cfg"]["max_iters"] == 3 and "max_epochs" not in cpu["train_cfg"]
    assert cpu["model"]["llm"]["quantization_config"] is None and cpu["model"]["llm"]["torch_dtype"] == "f32"
    assert cpu["train_dataset"]["template_map_fn"]["template"] == "internlm2-template"

    settings.cpu, settings.sft.max_steps = False, 0
    gpu = execute(render(config_values(settings, "sft", "/m")))
    assert gpu["optim_wrapper"]["type"].__name__ == "AmpOptimWrapper" and gpu["optim_wrapper"]["dtype"] == "float16"
    assert gpu["train_cfg"]["max_epochs"] == settings.sft.epochs and len(gpu["param_scheduler"]) == 2
    assert gpu["model"]["llm"]["quantization_config"]["load_in_4bit"] is True

    pretrain = execute(render(config_values(settings, "pretrain", "/m")))
    assert pretrain["train_dataset"]["template_map_fn"] is None  # raw text, no chat template
    assert pretrain["custom_hooks"][1]["prompt_template"] is None


def test_bad_stage(settings):
    with pytest.raises(ValueError, match="stage must be one of"):
        config_values(settings, "dpo", "/m")  # type: ignore[arg-type]


def test_write_config(settings, tmp_path):
    out = write_config(settings, "pretrain", "/m", tmp_path / "a" / "b" / "pretrain.py")
    assert out.is_file() and "use_chat_template = False" in out.read_text(encoding="utf-8")


def test_cli_renders_every_model_and_stage(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "no-cache"))
    out = tmp_path / "configs"
    assert (
        main(["--set", "models.7b.base=internlm/not-downloaded", "config", "--model", "all", "--out-dir", str(out)])
        == 0
    )
    written = sorted(p.name for p in out.iterdir())
    assert written == [
        "wulewule_v1_1_8b_pretrain.py",
        "wulewule_v1_1_8b_sft.py",
        "wulewule_v1_7b_pretrain.py",
        "wulewule_v1_7b_sft.py",
    ]
    printed = capsys.readouterr().out
    assert "note: config key models.7b.base: 'internlm/not-downloaded' is not on this machine" in printed
    _, values = parse((out / "wulewule_v1_7b_pretrain.py").read_text(encoding="utf-8"))
    assert values["pretrained_model_name_or_path"] == "internlm/not-downloaded"  # the hub id, for xtuner
    _, sft = parse((out / "wulewule_v1_7b_sft.py").read_text(encoding="utf-8"))
    assert Path(sft["pretrained_model_name_or_path"]).name == "pretrain-merged"  # SFT continues from pretraining
    assert sft["SYSTEM"].startswith("你是“悟了悟了”")  # the app's system prompt
    assert main(["config", "--model", "13b"]) == 2
    assert "--model '13b' is not one of models" in capsys.readouterr().err
