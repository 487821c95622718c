"""The pipeline against stand-in xtuner / lmdeploy executables: commands, skipping, resuming, failures.

The stand-ins are small scripts that write what the real tools write (checkpoints, adapters, merged and
quantised model folders) and record how they were called; like the real ``xtuner``, the stand-in exits 0 even
when the training it ran crashed. tests/training/test_xtuner_e2e.py runs the real xtuner.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from training.cli import main
from training.pipeline import CPU_PATCH_DIR, MARKER, STAGES, Pipeline, StageError, expand_stages
from training.settings import load_training_settings

FAKE_XTUNER = """\
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
if args[0] == "train":
    stage = Path(args[1]).stem
elif args[1] == "pth_to_hf":
    stage = Path(args[2]).stem + "-convert"
else:
    stage = Path(args[3]).name.removesuffix("-hf") + "-merge"
with open(os.environ["FAKE_CALLS"], "a") as log:
    env = {k: os.environ.get(k, "") for k in ("PYTHONPATH", "NPROC_PER_NODE")}
    env["PATH0"] = os.environ["PATH"].split(os.pathsep)[0]
    log.write(json.dumps({"stage": stage, "args": args, "env": env}) + "\\n")
print(f"fake xtuner: {stage}", flush=True)
if os.environ.get("FAKE_EXIT") == stage:
    print("usage: xtuner ... error: bad arguments", flush=True)
    sys.exit(3)
if os.environ.get("FAKE_NOTHING") == stage:
    sys.exit(0)
if args[0] == "train":
    work = Path(args[args.index("--work-dir") + 1])
    work.mkdir(parents=True, exist_ok=True)
    (work / "iter_2.pth").write_text("weights")
    (work / "last_checkpoint").write_text(str(work / "iter_2.pth"))
elif args[1] == "pth_to_hf":
    out = Path(args[4])
    out.mkdir(parents=True, exist_ok=True)
    (out / "adapter_config.json").write_text("{}")
    (out / "adapter_model.safetensors").write_text("lora")
else:
    out = Path(args[4])
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text("{}")
    (out / "model.safetensors").write_text("merged")
if os.environ.get("FAKE_FAIL") == stage:
    # xtuner's launcher swallows its worker's exit status: a crash still exits 0.
    print("Traceback (most recent call last):", flush=True)
    print('  File "xtuner/tools/train.py", line 360, in main', flush=True)
    print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", flush=True)
"""

FAKE_LMDEPLOY = """\
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["FAKE_CALLS"], "a") as log:
    log.write(json.dumps({"stage": "awq", "args": args, "env": {}}) + "\\n")
out = Path(args[args.index("--work-dir") + 1])
out.mkdir(parents=True, exist_ok=True)
config = {"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}
(out / "config.json").write_text(json.dumps(config))
(out / "model.safetensors").write_text("w4a16")
"""


def _script(path: Path, body: str) -> Path:
    # -S: the stand-ins need only the standard library, so they skip site (and the CPU shim's torch import).
    path.write_text(f"#!{sys.executable} -S\n" + textwrap.dedent(body), encoding="utf-8")
    path.chmod(0o755)
    return path


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Data files, a base model folder, stand-in tools, and settings pointing at them."""
    bins = tmp_path / "venv-train" / "bin"
    bins.mkdir(parents=True)
    xtuner = _script(bins / "xtuner", FAKE_XTUNER)
    lmdeploy = _script(tmp_path / "lmdeploy", FAKE_LMDEPLOY)
    data = tmp_path / "data"
    data.mkdir()
    for name in ("pretrain.jsonl", "self_cognition.jsonl", "qa_train.jsonl"):
        (data / name).write_text('{"conversation": [{"input": "", "output": "x"}]}\n', encoding="utf-8")
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}", encoding="utf-8")
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    for var in ("FAKE_FAIL", "FAKE_EXIT", "FAKE_NOTHING"):
        monkeypatch.delenv(var, raising=False)
    sets = [
        f"paths.data_dir={data}",
        f"paths.work_dir={tmp_path / 'work'}",
        f"models.1_8b.base={base}",
        f"envs.xtuner={xtuner}",
        f"envs.lmdeploy={lmdeploy}",
    ]

    class Env:
        root = tmp_path

        @staticmethod
        def settings(*extra: str):
            return load_training_settings(None, [*sets, *extra])

        @staticmethod
        def calls() -> list[dict]:
            if not calls.exists():
                return []
            return [json.loads(line) for line in calls.read_text().splitlines()]

        @staticmethod
        def clear() -> None:
            calls.unlink(missing_ok=True)

    return Env


def _run(settings, stages, **kwargs) -> tuple[list[str], list[str]]:
    lines: list[str] = []
    ran = Pipeline(settings, "SYS", out=lines.append).run(stages, **kwargs)
    return ran, lines


def test_all_stages_run_in_order_with_the_exact_commands(env):
    settings = env.settings("gpus=2", "deepspeed=zero2")
    ran, lines = _run(settings, ["all"])
    assert ran == list(STAGES)
    calls = env.calls()
    assert [c["stage"] for c in calls] == list(STAGES)
    work = env.root / "work" / "wulewule_v1_1_8b"
    train = calls[0]
    assert train["args"] == ["train", str(work / "configs/pretrain.py"), "--work-dir", str(work / "pretrain"),
                             "--deepspeed", "deepspeed_zero2"]  # fmt: skip
    assert train["env"]["NPROC_PER_NODE"] == "2" and train["env"]["PYTHONPATH"] == ""  # no CPU shim on GPUs
    assert train["env"]["PATH0"] == str(env.root / "venv-train" / "bin")  # xtuner's own `python` comes first
    convert = ["convert", "pth_to_hf", str(work / "configs/pretrain.py"), str(work / "pretrain/iter_2.pth")]
    assert calls[1]["args"] == [*convert, str(work / "pretrain-hf"), "--safe-serialization"]
    merge = ["convert", "merge", str(env.root / "base"), str(work / "pretrain-hf"), str(work / "pretrain-merged")]
    assert calls[2]["args"][:5] == merge
    # SFT trains on top of the pretrained merge, and its merge uses it as the base.
    sft_config = (work / "configs/sft.py").read_text(encoding="utf-8")
    assert f"pretrained_model_name_or_path = {str(work / 'pretrain-merged')!r}" in sft_config
    assert "SYSTEM = 'SYS'" in sft_config
    assert calls[5]["args"][2] == str(work / "pretrain-merged")
    awq = calls[6]["args"]
    assert awq[:4] == ["lite", "auto_awq", str(work / "sft-merged"), "--work-dir"]
    assert awq[awq.index("--w-bits") + 1] == "4" and awq[awq.index("--w-group-size") + 1] == "128"
    # Every command is printed before it runs, as a shell line that can be copied.
    printed = [line for line in lines if " $ " in line]
    assert len(printed) == 7
    assert printed[0].startswith(f'[pretrain] $ PATH={env.root / "venv-train" / "bin"}:"$PATH" NPROC_PER_NODE=2 ')
    assert printed[0].endswith("--deepspeed deepspeed_zero2")
    assert any("serve: .venv-serve/bin/lmdeploy serve api_server" in line for line in lines)
    for stage_dir in ("pretrain", "pretrain-hf", "pretrain-merged", "sft", "sft-hf", "sft-merged"):
        assert (work / stage_dir / MARKER).is_file()
    assert (work / "logs" / "pretrain.log").read_text(encoding="utf-8").startswith("$ ")


def test_done_stages_are_skipped_until_their_inputs_change(env):
    settings = env.settings()
    _run(settings, ["all"])
    env.clear()
    ran, lines = _run(settings, ["all"])
    assert ran == [] and env.calls() == []
    assert all("done, skipping" in line for line in lines)
    # New QA data: SFT and everything after it are redone, pretraining is not.
    time.sleep(0.01)
    qa = env.root / "data" / "qa_train.jsonl"
    qa.write_text(qa.read_text(encoding="utf-8") * 2, encoding="utf-8")
    ran, _ = _run(settings, ["all"])
    assert ran == ["sft", "sft-convert", "sft-merge", "awq"]
    env.clear()
    ran, _ = _run(settings, ["sft-merge"], force=True)
    assert ran == ["sft-merge"]


def test_a_crash_that_exits_zero_is_a_failure_quoting_the_traceback(env, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "sft")
    settings = env.settings()
    with pytest.raises(StageError) as err:
        _run(settings, ["all"])
    message = str(err.value)
    assert message.startswith("[sft] failed (exit 0):\nTraceback (most recent call last):")
    assert "torch.OutOfMemoryError: CUDA out of memory" in message
    assert "full log: " in message and "logs/sft.log" in message
    work = env.root / "work" / "wulewule_v1_1_8b"
    assert not (work / "sft" / MARKER).exists() and (work / "pretrain-merged" / MARKER).exists()
    # The rerun skips what is done and resumes the interrupted training from its checkpoint.
    monkeypatch.delenv("FAKE_FAIL")
    env.clear()
    ran, _ = _run(settings, ["all"])
    assert ran == ["sft", "sft-convert", "sft-merge", "awq"]
    assert env.calls()[0]["args"][-2:] == ["--resume", str(work / "sft" / "iter_2.pth")]


def test_a_non_zero_exit_quotes_the_output(env, monkeypatch):
    monkeypatch.setenv("FAKE_EXIT", "pretrain-convert")
    with pytest.raises(StageError, match=r"(?s)\[pretrain-convert\] failed \(exit 3\):.*bad arguments"):
        _run(env.settings(), ["all"])


def test_exit_zero_without_output_is_a_failure(env, monkeypatch):
    monkeypatch.setenv("FAKE_NOTHING", "pretrain")
    with pytest.raises(
        StageError, match=r"(?s)\[pretrain\] exited 0 but no last_checkpoint in .*fake xtuner: pretrain"
    ):
        _run(env.settings(), ["pretrain"])


def test_missing_inputs_say_which_command_comes_first(env):
    settings = env.settings()
    (env.root / "data" / "qa_train.jsonl").unlink()
    with pytest.raises(StageError, match=r"qa_train.jsonl is missing; run `python -m training qa` first"):
        _run(settings, ["sft"])
    with pytest.raises(StageError, match=r"run `python -m training run pretrain` first"):
        _run(settings, ["pretrain-convert"])
    with pytest.raises(StageError, match="run `python -m training run sft-merge` first"):
        _run(settings, ["awq"])


def test_a_missing_tool_names_the_setting_and_the_setup(env):
    settings = env.settings(f"envs.xtuner={env.root / 'nope' / 'xtuner'}")
    with pytest.raises(StageError, match=r"config key envs.xtuner: .* not found.*requirements-train.txt"):
        _run(settings, ["pretrain"])
    settings = env.settings("envs.xtuner=no-such-xtuner-anywhere")
    with pytest.raises(StageError, match=r"envs\.xtuner"):
        _run(settings, ["pretrain"])


def test_dry_run_prints_without_running(env):
    ran, lines = _run(env.settings(), ["all"], dry_run=True)
    assert ran == [] and env.calls() == []
    assert lines[0].startswith("[pretrain] $ ") and "xtuner train" in lines[0]
    assert lines[1].startswith("[pretrain-convert] not ready: no finished pretrain training in ")
    assert lines[1].endswith("run `python -m training run pretrain` first")


def test_cpu_runs_use_the_shim_and_stop_before_awq(env):
    settings = env.settings("cpu=true")
    _, lines = _run(settings, ["pretrain", "pretrain-convert", "pretrain-merge"])
    calls = env.calls()
    assert all(c["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(CPU_PATCH_DIR) for c in calls)
    assert "--deepspeed" not in calls[0]["args"] and calls[2]["args"][-2:] == ["--device", "cpu"]
    assert f"PYTHONPATH={CPU_PATCH_DIR}" in lines[0]
    with pytest.raises(StageError, match="needs a CUDA GPU"):
        _run(settings, ["awq"])


def test_without_pretraining_sft_starts_from_the_base_model(env):
    settings = env.settings("pretrain.enabled=false")
    ran, lines = _run(settings, ["all"])
    assert ran == ["sft", "sft-convert", "sft-merge", "awq"]
    assert lines[0] == "[pretrain] off (pretrain.enabled is false): SFT starts from the base model"
    assert env.calls()[2]["args"][2] == str(env.root / "base")


def test_stage_names():
    assert expand_stages(["awq", "pretrain"]) == ["pretrain", "awq"]
    assert expand_stages(["all", "sft"]) == list(STAGES)
    with pytest.raises(ValueError, match="unknown stage 'train'; stages: pretrain, "):
        expand_stages(["train"])


def test_cli(env, capsys):
    values = {
        "paths.data_dir": env.root / "data",
        "paths.work_dir": env.root / "work",
        "models.1_8b.base": env.root / "base",
        "envs.xtuner": env.root / "venv-train/bin/xtuner",
    }
    settings_flags = [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]
    assert main([*settings_flags, "run", "pretrain"]) == 0
    assert "[pretrain] done:" in capsys.readouterr().out
    assert main([*settings_flags, "run", "bogus"]) == 2
    assert "unknown stage 'bogus'" in capsys.readouterr().err
    assert main([*settings_flags, "run", "sft-convert"]) == 1
    assert "no finished sft training" in capsys.readouterr().err
