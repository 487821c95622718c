"""The transformers + peft fine-tuner: a tiny random causal LM trained for a few steps on the generated data,
merged, reloaded and asked a question through the app's own transformers backend."""

from __future__ import annotations

import json

import pytest

from llm.base import ChatTurn
from tests.training.tiny_lm import build_tiny_lm
from training.data.records import DataFormatError, pretrain_record, sft_record, write_conversations
from training.data.self_cognition import build_self_cognition
from training.lora_sft import IGNORE_INDEX, LoraSftConfig, encode, main, merge_lora, train_lora
from training.settings import AssistantIdentity


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="module")
def tokenizer(tiny_lm):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_lm)


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    """Self-cognition pairs plus a few knowledge answers, as the data commands write them."""
    path = tmp_path_factory.mktemp("sft") / "sft.jsonl"
    records = build_self_cognition(AssistantIdentity(), system="你是悟了悟了。")
    records += [
        sft_record("黑熊精在哪里？", "黑熊精盘踞在黑风山[1]。", "你是悟了悟了。"),
        sft_record("红孩儿的父亲是谁？", "红孩儿的父亲是牛魔王[1]。", "你是悟了悟了。"),
    ]
    write_conversations(path, records)
    return path


def test_only_the_reply_is_learned(tokenizer):
    encoded = encode(tokenizer, sft_record("你是谁？", "我是悟了悟了。", "系统"), max_length=512)
    learned = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE_INDEX]
    assert tokenizer.decode(learned) == "我是悟了悟了。<|im_end|>\n"  # the reply and its end marker
    prompt = tokenizer.decode(encoded.input_ids[: len(encoded.input_ids) - len(learned)])
    assert prompt == "<|im_start|>system\n系统<|im_end|>\n<|im_start|>user\n你是谁？<|im_end|>\n<|im_start|>assistant\n"


def test_raw_text_is_learned_whole(tokenizer):
    encoded = encode(tokenizer, pretrain_record("黑熊精盘踞在黑风山。"), max_length=512)
    assert encoded.labels == encoded.input_ids
    assert tokenizer.decode(encoded.input_ids) == "<s>黑熊精盘踞在黑风山。</s>"


def test_truncation_keeps_the_reply(tokenizer):
    record = sft_record("问" * 200, "答案。", "系统")
    encoded = encode(tokenizer, record, max_length=64)
    assert len(encoded.input_ids) == 64 and tokenizer.decode(encoded.input_ids).endswith("答案。<|im_end|>\n")
    assert encode(tokenizer, sft_record("问", "答" * 100), max_length=8) is not None
    assert encode(tokenizer, sft_record("问", ""), max_length=512) is not None  # the end marker is still learned


def test_a_tokenizer_without_a_chat_template_is_refused(tokenizer):
    plain = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    plain.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        encode(plain, sft_record("q", "a"), 512)


def test_fine_tune_merge_and_answer(tiny_lm, sft_data, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm.transformers_chat import TransformersChatModel

    steps: list[tuple[int, float]] = []
    config = LoraSftConfig(steps=12, lr=5e-3, batch_size=4, max_length=256, lora_r=8, seed=0)
    result = train_lora(tiny_lm, [sft_data], tmp_path / "adapter", config, on_step=lambda s, x: steps.append((s, x)))
    assert result.examples == 17 and len(result.losses) == 12 == len(steps)
    assert sum(result.losses[-3:]) / 3 < sum(result.losses[:3]) / 3  # it learns
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()

    merged_dir = merge_lora(tiny_lm, tmp_path / "adapter", tmp_path / "merged")
    assert not (merged_dir / "adapter_config.json").exists()
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "你是谁？"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_lm, dtype=torch.float32).eval()
    with_adapter = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_lm, dtype=torch.float32), tmp_path / "adapter"
    ).eval()
    with torch.no_grad():
        merged_logits = merged(ids).logits
        assert torch.allclose(merged_logits, with_adapter(ids).logits, atol=1e-4)  # merging changes nothing
        assert not torch.allclose(merged_logits, base(ids).logits, atol=1e-4)  # the fine-tune changed the model
        generated = merged.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    assert generated.shape[1] == ids.shape[1] + 8

    # The app serves the merged directory as it is (llm.backend=transformers).
    chat = TransformersChatModel(merged_dir, device="cpu", dtype="float32")
    reply = "".join(chat.stream_chat([ChatTurn("user", "你是谁？")], max_tokens=8, temperature=0))
    assert isinstance(reply, str)


def test_bad_inputs(tiny_lm, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no conversation"}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:1"):
        train_lora(tiny_lm, [bad], tmp_path / "out", LoraSftConfig(steps=1))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_lora(tmp_path / "missing", [bad], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no LoRA adapter"):
        merge_lora(tiny_lm, tmp_path, tmp_path / "merged")
    for field, value in (("steps", 0), ("lr", 0.0), ("lora_dropout", 1.0), ("max_length", 0)):
        with pytest.raises(ValueError, match=field):
            LoraSftConfig(**{field: value})


def test_cli(tiny_lm, sft_data, tmp_path, capsys):
    argv = [str(tiny_lm), str(sft_data), "--out", str(tmp_path / "a"), "--steps", "2", "--max-length", "128"]
    assert main([*argv, "--merge", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "step     2" in out and f"merged model: {tmp_path / 'm'}" in out
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model_type"] == "llama"
    assert main([str(tmp_path / "nope"), str(sft_data), "--out", str(tmp_path / "b")]) == 1
    assert "lora_sft: error: base model directory" in capsys.readouterr().err
