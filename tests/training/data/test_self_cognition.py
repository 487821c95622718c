"""Self-cognition pairs: templates filled from the config, questions optionally reworded by a model."""

from __future__ import annotations

import json

import pytest

from tests.llm.scripted import ScriptedModel
from training.cli import main
from training.data.generator import GeneratorError
from training.data.self_cognition import TEMPLATES, build_self_cognition, template_pairs
from training.settings import AssistantIdentity

IDENTITY = AssistantIdentity(name="小悟", name_en="Xiaowu", maker="花果山工作室", maker_en="Mount Huaguo Studio")


def test_templates_are_filled_with_the_configured_identity():
    pairs = template_pairs(IDENTITY)
    assert len(pairs) == len(TEMPLATES)
    for pair in pairs:
        assert "{" not in pair.question + pair.answer
        assert "小悟" in pair.answer or "Xiaowu" in pair.answer
    makers = [p for p in pairs if "谁开发" in p.question or "created" in p.question]
    assert makers and all("花果山工作室" in p.answer or "Mount Huaguo Studio" in p.answer for p in makers)
    assert not any("悟了悟了" in p.question + p.answer for p in pairs)  # nothing hard-coded


def test_records_carry_the_system_prompt():
    records = build_self_cognition(IDENTITY, system="你是小悟。")
    assert len(records) == len(TEMPLATES)
    turn = records[0].turns[0]
    assert turn.system == "你是小悟。" and turn.input == "你是谁？" and "小悟" in turn.output


def test_paraphrases_reword_questions_but_never_answers():
    model = ScriptedModel(["1. 你到底是谁呀？\n", "2. 你是谁？\n", "- Who exactly are you?\n", "3. 请问阁下尊姓大名？"])
    records = build_self_cognition(IDENTITY, model=model, paraphrases=3)
    answers = {p.question: p.answer for p in template_pairs(IDENTITY)}
    questions = [r.turns[0].input for r in records]
    assert len(questions) == len(set(questions))  # "你是谁？" repeated a template question: dropped
    assert "你到底是谁呀？" in questions and "请问阁下尊姓大名？" in questions
    for record in records:
        assert record.turns[0].output in answers.values()
    # An English reply to a Chinese question is not the same question; it is kept only for English ones.
    first_english = next(r for r in records if r.turns[0].input == "Who exactly are you?")
    assert first_english.turns[0].output == answers["Who are you?"]
    assert len(model.calls) == len(TEMPLATES)


def test_a_failing_model_names_the_setting():
    with pytest.raises(GeneratorError, match=r"data\.generator\.base_url"):
        build_self_cognition(IDENTITY, model=ScriptedModel(["x"], fail_after=0), paraphrases=2)


def test_cli_uses_the_apps_system_prompt_by_default(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["--set", f"paths.data_dir={data}", "self-cognition", "--paraphrases", "2"]) == 0
    out = capsys.readouterr().out
    assert "no generator" in out and f"to {data / 'self_cognition.jsonl'}" in out
    rows = [json.loads(line) for line in (data / "self_cognition.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(TEMPLATES)
    assert rows[0]["conversation"][0]["system"].startswith("你是“悟了悟了”")

    sets = ["--set", f"paths.data_dir={data}", "--set", "system_prompt=你是测试助手。", "--set", "assistant.name=测试"]
    assert main([*sets, "self-cognition"]) == 0
    row = json.loads((data / "self_cognition.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert row["conversation"][0]["system"] == "你是测试助手。" and "测试" in row["conversation"][0]["output"]
