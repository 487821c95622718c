import json
import logging
from pathlib import Path

import pytest

from modules.rag.loader import KnowledgeFileError, load_documents, load_file, split_front_matter


def test_markdown_front_matter(kb_dir: Path):
    docs = {d.title: d for d in load_documents([kb_dir])}
    bear = docs["黑熊精"]
    assert bear.category == "boss"
    assert bear.chapter == 1
    assert "Black Bear Guai" in bear.aliases
    assert bear.related == ("第一回 火照黑云",)
    assert bear.summary_en.startswith("The Black Bear Guai")
    assert bear.body.startswith("黑熊精是第一回")
    assert bear.doc_id == "bosses/hei-xiong-jing.md"
    assert docs["第一回 火照黑云"].extra["bosses"] == ["黑熊精"]


def test_plain_text_and_jsonl(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("土地庙可以休息和升级。", encoding="utf-8")
    (tmp_path / "faq.jsonl").write_text(
        json.dumps({"title": "葫芦", "text": "葫芦用来回血。"}, ensure_ascii=False)
        + "\n\n"
        + json.dumps({"text": "酒可以泡药材。"}, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    docs = load_documents([tmp_path])
    titles = sorted(d.title for d in docs)
    assert titles == ["faq #3", "notes", "葫芦"]
    assert {d.doc_id for d in docs} == {"faq.jsonl#1", "faq.jsonl#3", "notes.txt"}


def test_readme_and_hidden_files_are_not_entries(tmp_path: Path):
    (tmp_path / "README.md").write_text("# about the KB", encoding="utf-8")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.md").write_text("secret", encoding="utf-8")
    (tmp_path / "a.md").write_text("正文。", encoding="utf-8")
    assert [d.title for d in load_documents([tmp_path])] == ["a"]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("bad-utf8.md", b"---\ntitle: x\n---\n\xff\xfe broken", "not valid UTF-8"),
        ("bad-yaml.md", "---\ntitle: [unclosed\n---\n正文。".encode(), "not valid YAML"),
        ("unclosed.md", "---\ntitle: x\n正文。".encode(), "not closed"),
        ("list-fm.md", "---\n- a\n---\n正文。".encode(), "must be a mapping"),
        ("bad-chapter.md", "---\ntitle: x\nchapter: one\n---\n正文。".encode(), "'chapter' must be an integer"),
        ("empty-body.md", b"---\ntitle: x\n---\n", "no text"),
        ("bad.jsonl", b'{"text": "ok"}\nnot json\n', "line 2 is not JSON"),
        ("notext.jsonl", b'{"title": "t"}\n', "no 'text'"),
        ("empty.txt", b"  \n", "empty file"),
    ],
)
def test_broken_files_are_skipped_with_a_warning_naming_them(tmp_path, caplog, name, content, reason):
    (tmp_path / name).write_bytes(content)
    (tmp_path / "good.md").write_text("---\ntitle: 好\n---\n好的条目。", encoding="utf-8")
    with pytest.raises(KnowledgeFileError, match=reason):
        load_file(tmp_path / name, tmp_path)
    with caplog.at_level(logging.WARNING):
        docs = load_documents([tmp_path])
    assert [d.title for d in docs] == ["好"]
    assert name in caplog.text and reason.split()[0] in caplog.text


def test_front_matter_is_optional():
    meta, body = split_front_matter("# 标题\n正文。")
    assert meta == {} and body.startswith("# 标题")


def test_title_falls_back_to_heading_then_file_name(tmp_path: Path):
    (tmp_path / "x.md").write_text("# 虎先锋\n虎先锋是第二回的头目。", encoding="utf-8")
    (tmp_path / "y.md").write_text("没有标题的笔记。", encoding="utf-8")
    assert sorted(d.title for d in load_documents([tmp_path])) == ["y", "虎先锋"]


def test_missing_root_is_ignored(tmp_path: Path):
    assert load_documents([tmp_path / "nope"]) == []
