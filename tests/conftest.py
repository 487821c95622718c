"""Shared fixtures: a small knowledge base, settings pointing at temp dirs, tiny random models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from app.config import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
SPEECH = REPO.parent / "shared" / "testdata" / "speech"  # the spoken-question fixtures beside the repo


def dev_whisper() -> str:
    """The dev Whisper-base dir from ../shared/dev-models/fetch; skips the test (with the fix) when unset."""
    path = os.environ.get("WULEWULE_DEV_WHISPER", "")
    if not path or not Path(path).is_dir():
        pytest.skip('WULEWULE_DEV_WHISPER is unset: run `eval "$(../shared/dev-models/fetch)"`, then pytest')
    return path


ENTRIES = {
    "bosses/hei-xiong-jing.md": """---
title: 黑熊精
aliases: [黑风大王, Black Bear Guai]
category: boss
chapter: 1
related: [第一回 火照黑云]
summary_en: The Black Bear Guai is the final boss of Chapter 1, fought at the summit of Black Wind Mountain.
---
黑熊精是第一回的最终头目，盘踞在黑风山。黑熊精原本是观音禅院附近的妖怪。

## 位置
黑熊精在黑风山山顶的黑风洞前与天命人交手。

## 原著
黑熊精在《西游记》第十六回到第十七回偷走了唐僧的袈裟，后来被观音菩萨收为守山大神。

## 打法
黑熊精的扑击范围很大，向侧后方闪避比后撤更安全。
""",
    "chapters/di-yi-hui.md": """---
title: 第一回 火照黑云
aliases: [第一回, 第一章, 火照黑云, Chapter 1, "Black Cloud, Red Fire"]
category: chapter
chapter: 1
bosses: [黑熊精]
related: [黑熊精]
---
第一回“火照黑云”发生在黑风山，是天命人旅程的第一章。天命人在第一回结尾击败黑熊精，取得根器“眼看喜”。
""",
    "bosses/hong-hai-er.md": """---
title: 红孩儿
aliases: [圣婴大王, Red Boy]
category: boss
chapter: 5
related: []
---
红孩儿是第五回的最终头目，住在火焰山。红孩儿的父亲是牛魔王，母亲是铁扇公主。

## 原著
红孩儿在《西游记》第四十回到第四十二回用三昧真火烧伤了孙悟空。
""",
    "bosses/huang-mei.md": """---
title: 黄眉
aliases: [黄眉大王, Yellowbrow]
category: boss
chapter: 3
related: []
---
黄眉是第三回的最终头目，占据小西天，假扮佛祖。黄眉原本是弥勒佛座下敲磬的黄眉童子。
""",
}


def write_kb(root: Path, entries: dict[str, str] = ENTRIES) -> Path:
    for rel, text in entries.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    return write_kb(tmp_path / "kb")


def make_settings(kb: Path, data: Path, *sets: str) -> Settings:
    """Settings on a test KB and data dir, with no models configured (BM25 only, unless a test sets
    rag.embedding.backend: answers must not change when a background build finishes mid-test)."""
    base = [f"knowledge.paths=[{kb}]", f"app.data_dir={data}", "rag.embedding.model=", "rag.reranker.model="]
    return load_settings(None, [*base, "rag.embedding.backend=none", *sets], environ={})


@pytest.fixture
def settings(kb_dir: Path, tmp_path: Path) -> Settings:
    return make_settings(kb_dir, tmp_path / "data")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT with a character vocabulary, saved like a real model directory."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny-bert")
    chars = sorted({c for text in ENTRIES.values() for c in text if not c.isspace()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *"abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab = list(dict.fromkeys(vocab))
    (root / "vocab.txt").write_text("\n".join(vocab), encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(root / "vocab.txt"), tokenize_chinese_chars=True)
    tokenizer.save_pretrained(root)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def tiny_cross_encoder_dir(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT with a one-logit classification head: a random cross-encoder."""
    import shutil

    from transformers import BertConfig, BertForSequenceClassification

    root = tmp_path_factory.mktemp("tiny-cross-encoder")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_bert_dir / name).exists():
            shutil.copy(tiny_bert_dir / name, root / name)
    config = BertConfig.from_pretrained(tiny_bert_dir)
    config.num_labels = 1
    BertForSequenceClassification(config).save_pretrained(root)
    return root
