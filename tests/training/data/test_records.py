"""xtuner's conversation format: written atomically, read back with errors naming the line."""

from __future__ import annotations

import json

import pytest

from training.data.records import (
    Conversation,
    DataFormatError,
    Turn,
    pretrain_record,
    read_conversations,
    sft_record,
    write_conversations,
)


def test_round_trip(tmp_path):
    out = tmp_path / "d" / "data.jsonl"
    records = [pretrain_record("黑熊精是第一回的最终头目。"), sft_record("你是谁？", "我是悟了悟了。", "系统提示")]
    assert write_conversations(out, records) == 2
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines[0] == {"conversation": [{"input": "", "output": "黑熊精是第一回的最终头目。"}]}
    assert lines[1] == {"conversation": [{"system": "系统提示", "input": "你是谁？", "output": "我是悟了悟了。"}]}
    assert "\\u" not in out.read_text(encoding="utf-8")  # Chinese written as is
    assert read_conversations(out) == records


def test_an_interrupted_write_leaves_nothing_behind(tmp_path):
    out = tmp_path / "data.jsonl"
    out.write_text("old\n", encoding="utf-8")

    def broken():
        yield Conversation((Turn("q", "a"),)).to_dict()
        raise RuntimeError("disk full")

    from training.data.records import write_jsonl

    with pytest.raises(RuntimeError):
        write_jsonl(out, broken())
    assert out.read_text(encoding="utf-8") == "old\n"  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]  # no temporary file left


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ('{"text": "x"}', "expected"),
        ('{"conversation": []}', "expected"),
        ('{"conversation": [{"input": "q"}]}', "'output'"),
        ('{"conversation": [{"input": 3, "output": "a"}]}', "must be strings"),
    ],
)
def test_malformed_lines_are_named(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"conversation": [{"input": "", "output": "ok"}]}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=rf"bad.jsonl:2: .*{message}"):
        read_conversations(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match="not found"):
        read_conversations(tmp_path / "nope.jsonl")
