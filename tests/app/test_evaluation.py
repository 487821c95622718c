"""The evaluation harness: scoring, the refusal rates, one row per set, and the CLI over several files."""

import json
from dataclasses import dataclass, field

import pytest

from app.cli import main
from app.evaluation import evaluate, format_table, is_refusal, load_eval_file, percentile
from llm.extractive import NOTHING_RELEVANT_EN, NOTHING_RELEVANT_ZH
from modules.config_layers import ConfigError


@dataclass
class Src:
    text: str
    title: str = "t"


@dataclass
class Ans:
    answer: str
    sources: list = field(default_factory=list)
    latency_ms: float = 1.0


def test_scores_correct_answered_declined_and_english():
    answers = {
        "红孩儿的父亲是谁": Ans("牛魔王[1]。", [Src("红孩儿的父亲是牛魔王")]),
        "Who is Red Boy's father?": Ans(NOTHING_RELEVANT_EN, [Src("红孩儿的父亲是牛魔王")]),
        "今天吃什么": Ans(NOTHING_RELEVANT_ZH),
        "明天下雨吗": Ans("黑熊精在黑风山[1]。", [Src("黑熊精在黑风山")]),
    }
    items = [
        {"q": "红孩儿的父亲是谁", "keys": ["牛魔王"]},
        {"q": "Who is Red Boy's father?", "keys": ["牛魔王", "Bull King"]},
        {"q": "今天吃什么", "keys": ["没有找到"], "category": "none"},
        {"q": "明天下雨吗", "keys": ["没有找到"], "category": "none"},
    ]
    summary = evaluate(answers.__getitem__, items, "t").summary()
    assert summary["n"] == 4 and summary["accuracy"] == 0.5
    assert summary["retrieval_hit"] == 1.0  # both answerable questions had the key in a source
    assert summary["answered"] == 0.5  # the English one was refused
    assert summary["declined"] == 0.5
    assert summary["english_n"] == 1 and summary["english_accuracy"] == 0.0
    table = format_table([summary], 5)
    assert table.splitlines()[0].split()[:3] == ["set", "n", "accuracy"]
    assert "50.0%" in table


def test_refusals_are_recognised():
    assert is_refusal(NOTHING_RELEVANT_ZH) and is_refusal(NOTHING_RELEVANT_EN)
    assert not is_refusal("黑熊精在黑风山[1]。")


def test_percentile():
    assert percentile([], 50) == 0.0
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)


def test_a_bad_line_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "a", "keys": ["b"]}\nnot json\n', "utf-8")
    with pytest.raises(ConfigError, match=r"bad\.jsonl:2"):
        load_eval_file(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_eval_file(tmp_path / "missing.jsonl")


def test_cli_prints_one_row_per_file(capsys, kb_dir, tmp_path):
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"q": "红孩儿的父亲是谁？", "keys": ["牛魔王"]}, ensure_ascii=False) + "\n", "utf-8")
    two = tmp_path / "two.jsonl"
    two.write_text(json.dumps({"q": "今天吃什么", "keys": ["没有找到"], "category": "none"}) + "\n", "utf-8")
    args = ["--set", f"knowledge.paths=[{kb_dir}]", "--set", f"app.data_dir={tmp_path / 'd'}"]
    args += ["--set", "rag.embedding.backend=none"]
    assert main([*args, "eval", str(one), str(two)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("one.jsonl", "two.jsonl"))}
    assert "100.0%" in rows["one.jsonl"] and "100.0%" in rows["two.jsonl"]
    assert main([*args, "eval", str(one), str(two), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [s["set"] for s in report["sets"]] == ["one.jsonl", "two.jsonl"]
    assert report["sets"][1]["declined"] == 1.0
