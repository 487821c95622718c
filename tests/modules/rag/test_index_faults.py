"""The index cache cannot be written (unwritable data dir, full disk): the app still answers, from memory."""

import errno
from pathlib import Path

import pytest

from app.knowledge_chat import KnowledgeChat
from modules.rag.bm25 import BM25Index
from tests.conftest import make_settings


def test_an_unwritable_data_dir_runs_from_memory_and_says_so(kb_dir: Path, tmp_path: Path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should be")  # root ignores chmod; this fails for everyone
    assistant = KnowledgeChat(make_settings(kb_dir, blocker / "data"))
    answer = assistant.ask("黄眉原本是谁的童子？")
    assert "弥勒" in answer.answer
    assert assistant.retriever.index.cache_error
    assert "无法写入" in assistant.status_line()


def test_a_full_disk_while_writing_the_index_leaves_no_half_written_cache(
    kb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def disk_full(self: BM25Index, directory: Path) -> None:
        (directory / "partial").write_text("x")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(BM25Index, "save", disk_full)
    data = tmp_path / "data"
    assistant = KnowledgeChat(make_settings(kb_dir, data))
    assert "弥勒" in assistant.ask("黄眉原本是谁的童子？").answer
    assert "No space left" in assistant.retriever.index.cache_error
    assert not [p for p in (data / "index").iterdir()]  # the temp dir was removed, nothing half-written is left

    # Once there is room again, the next start writes the cache and loads it after that.
    monkeypatch.undo()
    assert KnowledgeChat(make_settings(kb_dir, data)).retriever.index.built
    again = KnowledgeChat(make_settings(kb_dir, data)).retriever.index
    assert not again.built and not again.cache_error
