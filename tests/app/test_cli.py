"""The CLI's JSON contracts, run in-process through main()."""

import json
from pathlib import Path

import pytest

from app.cli import main
from app.evaluation import percentile


def base_args(kb: Path, data: Path) -> list[str]:
    return [
        "--set",
        f"knowledge.paths=[{kb}]",
        "--set",
        f"app.data_dir={data}",
        "--set",
        "rag.embedding.model=",
        "--set",
        "rag.reranker.model=",
    ]


def run_json(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_ask_json_contract(capsys, kb_dir, tmp_path):
    out = run_json(capsys, [*base_args(kb_dir, tmp_path), "ask", "红孩儿的父亲是谁？", "--json"])
    assert isinstance(out["answer"], str) and "牛魔王" in out["answer"]
    assert out["backend"] == "extractive"
    assert out["sources"] and {"title", "text"} <= set(out["sources"][0])
    assert out["sources"][0]["title"] == "红孩儿"


def test_ask_text_lists_sources(capsys, kb_dir, tmp_path):
    assert main([*base_args(kb_dir, tmp_path), "ask", "黄眉是谁"]) == 0
    out = capsys.readouterr().out
    assert "弥勒" in out and "[1] 黄眉" in out


def test_eval_json_contract(capsys, kb_dir, tmp_path):
    eval_file = tmp_path / "e.jsonl"
    eval_file.write_text(
        "\n".join(
            json.dumps(x, ensure_ascii=False)
            for x in [
                {"q": "红孩儿的父亲是谁？", "keys": ["牛魔王"]},
                {"q": "黄眉原本是谁的童子", "keys": ["弥勒"]},
                {"q": "今天吃什么", "keys": ["火锅"]},
            ]
        ),
        encoding="utf-8",
    )
    out = run_json(capsys, [*base_args(kb_dir, tmp_path), "eval", str(eval_file), "--json"])
    assert out["n"] == 3
    assert out["accuracy"] == pytest.approx(2 / 3, abs=1e-3)
    assert out["retrieval_hit"] == pytest.approx(2 / 3, abs=1e-3)
    assert out["p95_ms"] >= out["p50_ms"] > 0
    assert [r["correct"] for r in out["results"]] == [True, True, False]


def test_eval_text_report(capsys, kb_dir, tmp_path):
    eval_file = tmp_path / "e.jsonl"
    eval_file.write_text('{"q": "黄眉是谁", "keys": ["不存在的词"]}\n', encoding="utf-8")
    assert main([*base_args(kb_dir, tmp_path), "eval", str(eval_file)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "0.0%" in out and "wrong answers" in out


def test_eval_rejects_a_bad_file(capsys, kb_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x"}\n', encoding="utf-8")
    assert main([*base_args(kb_dir, tmp_path), "eval", str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
    assert main([*base_args(kb_dir, tmp_path), "eval", str(tmp_path / "missing.jsonl")]) == 2


def test_config_errors_exit_2_with_the_key(capsys):
    assert main(["--set", "rag.nope=1", "ask", "x"]) == 2
    assert "rag.nope" in capsys.readouterr().err


def test_missing_model_path_exits_2_with_a_hint(capsys, kb_dir, tmp_path):
    argv = [*base_args(kb_dir, tmp_path), "--set", "rag.embedding.model=/no/such/model", "ask", "x"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "rag.embedding.model" in err and "doctor" in err


def test_doctor_lists_every_component(capsys, kb_dir, tmp_path):
    argv = ["--set", f"knowledge.paths=[{kb_dir}]", "--set", f"app.data_dir={tmp_path}", "doctor"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "BM25" in out
    assert "rag.embedding.backend" in out and "rag.reranker.model" in out
    assert "[missing]" in out and "fix:" in out
    assert "answerer" in out


def test_doctor_reports_a_missing_chat_model_with_its_fix(capsys, kb_dir, tmp_path):
    argv = [*base_args(kb_dir, tmp_path), "--set", "llm.backend=llamacpp", "doctor"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[missing] answerer (llm.backend=llamacpp)" in out and "python -m app download cpu" in out


def test_kb_stats(capsys, kb_dir, tmp_path):
    assert main([*base_args(kb_dir, tmp_path), "kb", "stats"]) == 0
    out = capsys.readouterr().out
    assert "boss" in out and "total" in out
    assert out.strip().splitlines()[-1].split()[1] == "4"


def test_ingest_then_ask(capsys, kb_dir, tmp_path):
    note = tmp_path / "攻略.md"
    note.write_text("---\ntitle: 我的攻略\n---\n打虎先锋时要贴身绕背。", encoding="utf-8")
    assert main([*base_args(kb_dir, tmp_path), "ingest", str(note)]) == 0
    assert "added" in capsys.readouterr().out
    out = run_json(capsys, [*base_args(kb_dir, tmp_path), "ask", "虎先锋要贴身绕背吗", "--json"])
    assert out["sources"][0]["title"] == "我的攻略"


def test_percentile():
    assert percentile([], 50) == 0.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 95) == 5


def test_a_broken_model_file_is_a_clean_error(capsys, kb_dir, tmp_path):
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"definitely not GGUF")
    argv = [*base_args(kb_dir, tmp_path), "--set", "llm.backend=llamacpp", "--set", f"llm.llamacpp.model={bad}"]
    assert main([*argv, "ask", "黄眉是谁"]) == 2
    err = capsys.readouterr().err
    assert "wulewule: error:" in err and "not-a-model.gguf" in err and "Traceback" not in err


def test_global_options_work_before_or_after_the_command(capsys, kb_dir, tmp_path):
    before = ["--set", f"knowledge.paths=[{kb_dir}]"]
    after = ["--set", f"app.data_dir={tmp_path}", "--set", "rag.top_k=1"]
    out = run_json(capsys, [*before, "ask", "红孩儿的父亲是谁？", "--json", *after])
    assert "牛魔王" in out["answer"]
    assert len(out["sources"]) == 1  # rag.top_k=1, given after the command, applied with the one before it
    assert main(["doctor", "--set", "rag.top_k=0"]) == 2  # a bad value after the command is still checked
    assert "rag.top_k" in capsys.readouterr().err
