"""The public evaluation sets are well-formed and cover the knowledge base."""

import json
from collections import Counter
from pathlib import Path

import pytest

EVAL = Path(__file__).parent / "eval"
CATEGORIES = {"game", "chapter", "area", "boss", "character", "story", "combat", "novel", "culture", "art", "meme"}


# intent.jsonl is a different shape ({text, intent}); tests/modules/image/test_intent.py checks it.
@pytest.mark.parametrize("name", sorted(p.name for p in EVAL.glob("*.jsonl") if p.name != "intent.jsonl"))
def test_eval_file_is_well_formed(name):
    items = [json.loads(line) for line in (EVAL / name).read_text("utf-8").splitlines() if line.strip()]
    for item in items:
        assert isinstance(item["q"], str) and item["q"].strip()
        assert isinstance(item["keys"], list) and item["keys"]
        assert all(isinstance(k, str) and k.strip() for k in item["keys"])
    questions = [i["q"] for i in items]
    assert len(questions) == len(set(questions)), "duplicate questions"


def test_public_set_size_and_spread():
    items = [json.loads(line) for line in (EVAL / "public.jsonl").read_text("utf-8").splitlines() if line.strip()]
    assert len(items) >= 150
    counts = Counter(i.get("category") for i in items)
    assert set(counts) >= CATEGORIES, f"missing categories: {CATEGORIES - set(counts)}"
    english = sum(i["q"].isascii() for i in items)
    assert english >= 20
    assert counts["none"] >= 5  # questions the knowledge base must decline


def _items(name):
    return [json.loads(line) for line in (EVAL / name).read_text("utf-8").splitlines() if line.strip()]


def test_blind_set_size_and_languages():
    """Written by someone who never saw the knowledge base or the code; keys filled in afterwards from facts."""
    items = _items("blind.jsonl")
    assert len(items) >= 200
    assert sum(i["lang"] == "en" for i in items) >= 50
    kinds = Counter(i["category"] for i in items)
    assert {"wording", "list", "practical", "yesno", "lore"} <= set(kinds)


@pytest.mark.parametrize("name", ["unanswerable.jsonl", "dev_unanswerable.jsonl"])
def test_unanswerable_sets_expect_the_refusal(name):
    items = _items(name)
    assert len(items) >= 60
    assert all(i["category"] == "none" for i in items)
    assert {i["kind"] for i in items} == {"other-game", "made-up", "off-topic", "future"}
    for i in items:
        assert i["keys"] == (["could not find"] if i["lang"] == "en" else ["没有找到"])
