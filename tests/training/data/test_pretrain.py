"""Incremental-pretraining data from a folder of texts: chunks, overlap, encodings, de-duplication, stats."""

from __future__ import annotations

import itertools
import json

import pytest

from modules.rag.text import split_sentences
from training.cli import main
from training.data.pretrain import PretrainDataError, build_pretrain_data, chunk_text, read_text, stats_path
from training.settings import PretrainDataSettings

NOVEL = "".join(
    f"第{i}段：唐僧师徒行至一座高山。山中有一妖怪名唤黑熊精，盘踞在黑风洞里。他手段高强。悟空与他大战了{i}个回合。"
    for i in range(1, 13)
)


def test_chunks_respect_the_size_and_end_at_sentence_ends():
    chunks = chunk_text(NOVEL, chunk_chars=120, overlap_chars=0)
    assert len(chunks) > 3
    assert all(len(c) <= 120 for c in chunks)
    assert all(c[-1] in "。！？" for c in chunks)
    assert "".join(chunks) == NOVEL  # no overlap: the chunks are the text, in order


def test_overlap_repeats_the_last_sentences():
    chunks = chunk_text(NOVEL, chunk_chars=120, overlap_chars=40)
    for previous, current in itertools.pairwise(chunks):
        # The longest run of whole last sentences that fits in 40 characters starts the next chunk.
        sentences = split_sentences(previous)
        tail = next("".join(sentences[k:]) for k in range(len(sentences)) if len("".join(sentences[k:])) <= 40)
        assert tail and current.startswith(tail)
    assert all(len(c) <= 120 for c in chunks)


def test_a_sentence_longer_than_a_chunk_is_cut_at_commas():
    sentence = "，".join(["黑熊精偷走了袈裟"] * 20) + "。"
    chunks = chunk_text(sentence, chunk_chars=50)
    assert all(len(c) <= 50 for c in chunks)
    assert all(c.endswith(("，", "。")) for c in chunks)
    assert "".join(chunks) == sentence


def test_english_sentences_keep_their_spaces():
    chunks = chunk_text("The bear is big. It lives on a mountain. It stole a robe.", chunk_chars=40)
    assert chunks == ["The bear is big. It lives on a mountain.", "It stole a robe."]


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (100, 100), (100, -1)])
def test_bad_sizes(size, overlap):
    with pytest.raises(ValueError):
        chunk_text(NOVEL, size, overlap)


def test_reads_gbk_and_strips_markdown(tmp_path):
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes("黑熊精盘踞在黑风山。".encode("gbk"))
    assert read_text(gbk) == "黑熊精盘踞在黑风山。"
    md = tmp_path / "page.md"
    md.write_text("---\ntitle: 黑熊精\n---\n# 黑熊精\n**黑熊精**是[第一回](x.md)的头目。\n- 住在黑风山\n", "utf-8")
    assert read_text(md) == "黑熊精\n黑熊精是第一回的头目。\n住在黑风山\n"


def _corpus(root):
    root.mkdir()
    (root / "xiyouji.txt").write_text(NOVEL, encoding="utf-8")
    (root / "copy.txt").write_text(NOVEL, encoding="utf-8")  # the same text from a second site
    near = NOVEL.replace("第3段", "第三段")  # an edited copy
    (root / "sub").mkdir()
    (root / "sub" / "near.md").write_text("---\ntitle: 转载\n---\n" + near, encoding="utf-8")
    (root / "wukong.txt").write_bytes(
        "孙悟空在花果山称王，自号齐天大圣，后来大闹天宫，被如来压在五行山下五百年。".encode("gb18030")
    )
    (root / "broken.txt").write_bytes(b"\xff\xfe\xff\xff")
    (root / ".hidden.txt").write_text("不该读到", encoding="utf-8")
    (root / "image.png").write_bytes(b"\x89PNG")
    return root


def test_builds_deduplicated_xtuner_data_with_stats(tmp_path):
    out = tmp_path / "data" / "pretrain.jsonl"
    settings = PretrainDataSettings(chunk_chars=200, overlap_chars=30, min_chars=20, near_duplicate=0.8)
    stats = build_pretrain_data([_corpus(tmp_path / "texts")], out, settings)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all(r == {"conversation": [{"input": "", "output": r["conversation"][0]["output"]}]} for r in rows)
    texts = [r["conversation"][0]["output"] for r in rows]
    assert len(texts) == len(set(texts)) == stats.written
    assert any("花果山" in t for t in texts)  # the GB18030 file
    assert not any("不该读到" in t for t in texts)
    assert stats.files == 4
    assert len(stats.skipped) == 1 and "broken.txt" in stats.skipped[0]
    assert stats.exact_duplicates >= 3  # copy.txt repeats every chunk of xiyouji.txt
    assert stats.near_duplicates >= 1  # near.md repeats most of them with a word changed
    assert stats.written == stats.chunks - stats.exact_duplicates - stats.near_duplicates - stats.too_short
    assert stats.min_chars >= 20 and stats.max_chars <= 200
    assert json.loads(stats_path(out).read_text(encoding="utf-8"))["written"] == stats.written
    assert "exact duplicates" in stats.table()


def test_no_texts_is_an_error_naming_the_setting(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PretrainDataError, match=r"data\.pretrain\.sources"):
        build_pretrain_data([tmp_path / "empty"], tmp_path / "out.jsonl", PretrainDataSettings())


def test_only_scraps_is_an_error_naming_the_setting(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.txt").write_text("太短。", encoding="utf-8")
    with pytest.raises(PretrainDataError, match=r"data\.pretrain\.min_chars"):
        build_pretrain_data([tmp_path / "t"], tmp_path / "out.jsonl", PretrainDataSettings())


def test_cli(tmp_path, capsys):
    texts = _corpus(tmp_path / "texts")
    data = tmp_path / "data"
    assert main(["--set", f"paths.data_dir={data}", "pretrain-data", str(texts)]) == 0
    assert (data / "pretrain.jsonl").is_file()
    assert "written" in capsys.readouterr().out
    assert main(["--set", f"paths.data_dir={data}", "pretrain-data", str(tmp_path / "missing")]) == 1
    assert "no .txt or .md files" in capsys.readouterr().err


def test_cli_rejects_an_overlap_as_big_as_the_chunk(tmp_path, capsys):
    sets = ["--set", "data.pretrain.chunk_chars=100", "--set", "data.pretrain.overlap_chars=100"]
    assert main([*sets, "pretrain-data", str(tmp_path)]) == 2
    assert "overlap_chars (100) must be smaller than chunk_chars (100)" in capsys.readouterr().err
