"""The real xtuner path on CPU: our data -> our rendered configs -> xtuner train -> convert -> merge -> generate.

Runs only where the training environment exists (``WULEWULE_TRAIN_PYTHON=.venv-train/bin/python``; the CI
stage ``.ci/train`` creates it and sets it). The tiny model and its tokenizer are built *by the training
environment* (a tokenizer saved by transformers 5 does not load in xtuner's 4.48). The pipeline runs the CPU
variant of the configs (float32, no 4-bit, OptimWrapper, gloo) with the CPU shim on PYTHONPATH, exactly as
``python -m training --set cpu=true run …`` would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from app.knowledge_chat import KnowledgeChat
from llm.base import ChatTurn
from tests.conftest import REPO, make_settings
from training.data.pretrain import build_pretrain_data
from training.data.qa import build_qa
from training.data.records import write_conversations
from training.data.self_cognition import build_self_cognition
from training.layout import layout_for
from training.pipeline import MARKER, Pipeline
from training.settings import AssistantIdentity, PretrainDataSettings, load_training_settings

TRAIN_PYTHON = os.environ.get("WULEWULE_TRAIN_PYTHON", "")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not TRAIN_PYTHON,
        reason="needs the training environment: set WULEWULE_TRAIN_PYTHON=.venv-train/bin/python "
        "(created by .ci/train, see requirements-train.txt)",
    ),
]
SYSTEM = "你是悟了悟了，《黑神话：悟空》的 AI 助手。"
STAGES = ["pretrain", "pretrain-convert", "pretrain-merge", "sft", "sft-convert", "sft-merge"]

# One process in the training environment (each start imports torch, mmengine and bitsandbytes: seconds):
# mmengine reads the rendered configs, then transformers 4.48 loads the merged model and generates.
CHECK_IN_TRAIN_ENV = """
import json, sys, torch
from mmengine.config import Config
from transformers import AutoModelForCausalLM, AutoTokenizer
configs = {}
for path in sys.argv[1:-1]:
    cfg = Config.fromfile(path)
    configs[path] = {
        "lora_r": cfg.model.lora.r,
        "quantization_config": cfg.model.llm.quantization_config,
        "optim_wrapper": cfg.optim_wrapper.type.__name__,
        "max_iters": cfg.train_cfg.max_iters,
        "template_map_fn": cfg.train_dataset.template_map_fn is not None,
        "data_files": cfg.train_dataset.dataset.data_files,
    }
model = AutoModelForCausalLM.from_pretrained(sys.argv[-1], torch_dtype=torch.float32).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[-1])
ids = tokenizer.apply_chat_template([{"role": "user", "content": "你是谁？"}], add_generation_prompt=True,
                                    return_tensors="pt")
out = model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
print(json.dumps({"configs": configs, "new_tokens": out.shape[1] - ids.shape[1]}))
"""


def _train_env(*args: str, timeout: int = 300) -> str:
    result = subprocess.run([TRAIN_PYTHON, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _make_data(kb_dir: Path, tmp_path: Path) -> Path:
    """The three data stages on a tiny corpus and the tiny knowledge base."""
    data = tmp_path / "data"
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "xiyouji.txt").write_text(
        "却说那黑风山黑风洞里住着一个黑熊精，他见了袈裟，起了贪心。" * 6 + "悟空请来观音菩萨，收服了黑熊精。" * 4,
        encoding="utf-8",
    )
    build_pretrain_data([texts], data / "pretrain.jsonl", PretrainDataSettings(chunk_chars=120, overlap_chars=20))
    write_conversations(data / "self_cognition.jsonl", build_self_cognition(AssistantIdentity(), SYSTEM))
    # Short passages and a short system prompt keep every example inside max_length on a byte-level tokenizer.
    app = make_settings(kb_dir, tmp_path / "app", "rag.top_k=2", "rag.chunk_chars=100")
    build_qa(KnowledgeChat(app), data, system=SYSTEM, generator=None, val_ratio=0)
    return data


def test_train_convert_merge_and_generate(kb_dir, tmp_path):
    base = tmp_path / "tiny-base"
    _train_env(str(REPO / "tests/training/tiny_lm.py"), str(base))
    data = _make_data(kb_dir, tmp_path)
    stage_sets = [
        f"{stage}.{key}={value}"
        for stage in ("pretrain", "sft")
        for key, value in (
            ("max_steps", 3), ("max_length", 1024), ("batch_size", 1), ("accumulation", 1), ("lora_r", 8),
            ("save_steps", 3), ("evaluation_freq", 3), ("evaluation_inputs", "[你是谁？]"),
        )
    ]  # fmt: skip
    settings = load_training_settings(
        None,
        [
            f"models.tiny.base={base}",
            "models.tiny.name=tiny",
            "model=tiny",
            "cpu=true",
            "deepspeed=none",
            f"paths.data_dir={data}",
            f"paths.work_dir={tmp_path / 'work'}",
            f"envs.xtuner={Path(TRAIN_PYTHON).parent / 'xtuner'}",
            f"system_prompt={SYSTEM}",
            *stage_sets,
        ],
    )
    lines: list[str] = []
    pipeline = Pipeline(settings, SYSTEM, out=lines.append)
    assert pipeline.run(STAGES) == STAGES, "\n".join(lines)
    layout = layout_for(settings)

    # Each stage left what the next one needs, and xtuner's sample answers were printed during training.
    assert (layout.train_dir("sft") / "iter_3.pth").exists()
    assert (layout.adapter_dir("sft") / "adapter_config.json").is_file()
    merged = layout.merged_dir("sft")
    assert (merged / "config.json").is_file() and any(merged.glob("*.safetensors"))
    sft_log = (layout.root / "logs" / "sft.log").read_text(encoding="utf-8", errors="replace")
    assert "<|im_start|>user\n你是谁？<|im_end|>" in sft_log
    assert re.search(r"Iter\(train\) \[3/3\].*loss: \d", sft_log)  # it trained, and the loss is a number

    # The rendered configs are xtuner configs (mmengine reads them, with our CPU choices in them), and the
    # merged model loads and generates in the training environment …
    configs = [str(layout.config("pretrain")), str(layout.config("sft"))]
    checked = json.loads(_train_env("-c", CHECK_IN_TRAIN_ENV, *configs, str(merged)).strip().splitlines()[-1])
    for path, chat in zip(configs, (False, True), strict=True):
        cfg = checked["configs"][path]
        assert cfg["lora_r"] == 8 and cfg["quantization_config"] is None and cfg["optim_wrapper"] == "OptimWrapper"
        assert cfg["max_iters"] == 3 and cfg["template_map_fn"] is chat
        assert cfg["data_files"][-1] == str(data / ("qa_train.jsonl" if chat else "pretrain.jsonl"))
    assert checked["new_tokens"] == 8
    # … and the app serves it as it is (llm.backend=transformers, transformers 5).
    from llm.transformers_chat import TransformersChatModel

    reply = TransformersChatModel(merged, device="cpu", dtype="float32").stream_chat(
        [ChatTurn("system", SYSTEM), ChatTurn("user", "你是谁？")], max_tokens=8, temperature=0
    )
    assert isinstance("".join(reply), str)

    # Done stages are skipped on the next run.
    lines.clear()
    assert Pipeline(settings, SYSTEM, out=lines.append).run(STAGES) == []
    assert all("done, skipping" in line for line in lines) and (merged / MARKER).is_file()
