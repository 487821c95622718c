from pathlib import Path

from modules.rag.index import IndexSettings, KnowledgeIndex, index_key


def test_first_open_builds_then_loads_from_cache(kb_dir: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    first = KnowledgeIndex.open([kb_dir], cache, IndexSettings())
    assert first.built
    second = KnowledgeIndex.open([kb_dir], cache, IndexSettings())
    assert not second.built
    assert second.directory == first.directory
    assert [c.text for c in second.chunks] == [c.text for c in first.chunks]
    assert {d.title for d in second.documents} == {"黑熊精", "第一回 火照黑云", "红孩儿", "黄眉"}
    assert second.bm25.scores(second.tokenizer.tokens("黑熊精")).max() > 0


def test_editing_the_kb_rebuilds_and_removes_the_old_index(kb_dir: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    old = KnowledgeIndex.open([kb_dir], cache, IndexSettings())
    (kb_dir / "bosses" / "hu-xian-feng.md").write_text("---\ntitle: 虎先锋\n---\n虎先锋是第二回的头目。", "utf-8")
    new = KnowledgeIndex.open([kb_dir], cache, IndexSettings())
    assert new.built and new.directory != old.directory
    assert not old.directory.exists()
    assert "虎先锋" in {d.title for d in new.documents}


def test_changing_a_setting_changes_the_key(kb_dir: Path):
    assert index_key([kb_dir], IndexSettings(chunk_chars=320)) != index_key([kb_dir], IndexSettings(chunk_chars=100))
    assert index_key([kb_dir], IndexSettings()) == index_key([kb_dir], IndexSettings())


def test_content_change_with_same_size_changes_the_key(kb_dir: Path):
    before = index_key([kb_dir], IndexSettings())
    path = kb_dir / "bosses" / "huang-mei.md"
    text = path.read_text("utf-8")
    path.write_text(text.replace("第三回", "第四回"), "utf-8")
    assert index_key([kb_dir], IndexSettings()) != before


def test_corrupt_cache_is_rebuilt(kb_dir: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    first = KnowledgeIndex.open([kb_dir], cache, IndexSettings())
    (first.directory / "chunks.json").write_text("{not json", "utf-8")
    again = KnowledgeIndex.open([kb_dir], cache, IndexSettings())
    assert again.built and len(again.chunks) == len(first.chunks)


def test_no_temporary_directories_are_left(kb_dir: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    KnowledgeIndex.open([kb_dir], cache, IndexSettings())
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []
