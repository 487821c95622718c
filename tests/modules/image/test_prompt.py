import json
import re
from functools import cache
from pathlib import Path

import pytest

from modules.image.intent import rule_decision
from modules.image.prompt import PromptPlan, build_prompt, kb_names
from modules.image.prompt_terms import DESTINED_ONE, QUALITY
from modules.image.settings import ImageSettings
from modules.rag.loader import load_documents
from modules.rag.types import Document
from tests.modules.image.tiny_sd import write_random_lora

LABELLED = Path(__file__).parents[2] / "eval" / "intent.jsonl"
CJK = re.compile(r"[\u4e00-\u9fff]")
SETTINGS = ImageSettings()


@cache
def shipped_names() -> dict[str, str]:
    return dict(kb_names(load_documents([Path(__file__).parents[3] / "assets" / "knowledge"])))


def plan(text: str, **kwargs) -> PromptPlan:
    kwargs.setdefault("trigger_words", "dstnd_one")
    kwargs.setdefault("names", shipped_names())
    return build_prompt(text, kwargs.pop("settings", SETTINGS), **kwargs)


def test_the_destined_one_brings_the_trigger_words_and_game_terms():
    result = plan("帮我画一张天命人拿着金箍棒站在雪山上的水墨画")
    assert result.prompt.startswith(f"dstnd_one, {DESTINED_ONE}")
    assert "holding the golden-banded staff" in result.prompt and "snowy mountains" in result.prompt
    assert result.prompt.index("snowy mountains") < result.prompt.index("ink wash painting")
    assert result.prompt.endswith(QUALITY["sd15"]) and not CJK.search(result.prompt)
    assert any("dstnd_one" in note for note in result.notes)
    assert result.negative_prompt == SETTINGS.negative_prompt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("画个长棍", "a long staff"),
        ("画小西天", "the New West"),
        ("画黄风岭的风景", "Yellow Wind Ridge"),
        ("火焰山，赛博朋克", "the Flaming Mountains"),
        ("黑风山 像素风", "pixel art"),
        ("国风的猴子", "Chinese traditional art style"),
        ("画一张黑熊精", "Black Bear Guai, a huge black bear demon"),
        ("画只猫", "a cat"),
    ],
)
def test_term_table(text, expected):
    assert expected in plan(text).prompt


def test_knowledge_base_names_translate_bosses_and_places(kb_dir):
    names = kb_names(load_documents([kb_dir]))
    assert names["黑风大王"] == "Black Bear Guai, a yaoguai demon"  # an alias, from the test knowledge base
    docs = [Document("b.md", "百目真人", "x", "b.md", category="boss", aliases=("Gore-Eye Daoist",))]
    result = plan("画一张百目真人", names=kb_names(docs))
    assert result.prompt.startswith("Gore-Eye Daoist, a yaoguai demon")
    assert "Gore-Eye Daoist" in plan("画一张百目真人").prompt  # the shipped knowledge base knows him too
    assert "Bull King" in shipped_names()["牛魔王"]


def test_english_requests_pass_through_with_names_spelled_out():
    result = plan("Can you draw me a picture of the Destined One fighting Yellowbrow in the snow, please?")
    assert result.prompt.startswith(f"dstnd_one, {DESTINED_ONE} fighting Yellowbrow, a demon monk")
    assert "in the snow" in result.prompt and "draw" not in result.prompt.lower()
    assert "please" not in result.prompt and "?" not in result.prompt


def test_no_subject_means_the_destined_one():
    result = plan("帮我画画")
    assert DESTINED_ONE in result.prompt and "默认画天命人" in " ".join(result.notes)


def test_without_a_lora_there_are_no_trigger_words():
    assert plan("画天命人", trigger_words="").prompt.startswith(DESTINED_ONE)
    assert not plan("画一只猫").prompt.startswith("dstnd_one")


def test_trigger_words_come_from_the_lora_file(tiny_sd_dir, tmp_path):
    lora = write_random_lora(tiny_sd_dir, tmp_path / "d.safetensors", wulewule_trigger_words="wk_style")
    settings = ImageSettings(lora={"path": str(lora)})
    assert build_prompt("画天命人", settings, names={}).prompt.startswith("wk_style, ")
    configured = ImageSettings(lora={"path": str(lora), "trigger_words": "mine"})
    assert build_prompt("画天命人", configured, names={}).prompt.startswith("mine, ")


def test_negatives_go_to_the_negative_prompt():
    result = plan("画个天命人，不要背景")
    assert result.negative_prompt.startswith("background, ") and "background" not in result.prompt


def test_unknown_words_are_dropped_and_named():
    result = plan("画一个天命人在霍格沃茨")
    assert not CJK.search(result.prompt) and "霍格沃茨" in " ".join(result.notes)


def test_sdxl_gets_its_own_quality_tags():
    assert plan("画天命人", settings=ImageSettings(family="sdxl")).prompt.endswith(QUALITY["sdxl"])


def test_the_chat_model_refines_and_keeps_the_trigger_words():
    seen: list[str] = []

    def refine(prompt: str) -> str:
        seen.append(prompt)
        return "Prompt: the Destined One standing in heavy snow, ink wash, dramatic light, masterpiece"

    result = plan("画天命人在雪地里", refine=refine)
    assert result.refined and result.prompt.startswith("dstnd_one, the Destined One standing in heavy snow")
    assert "dstnd_one" in seen[0] and "画天命人在雪地里" in seen[0] and "snowfield" in seen[0]


@pytest.mark.parametrize("answer", ["", "好的！", "天命人，雪山，水墨，大圣，金箍棒，史诗感", "x" * 700])
def test_an_unusable_rewrite_keeps_the_draft(answer):
    draft = plan("画天命人在雪地里")
    result = plan("画天命人在雪地里", refine=lambda p: answer)
    assert result.prompt == draft.prompt and not result.refined
    assert any("保留规则生成的提示词" in note for note in result.notes)


def test_a_failing_model_keeps_the_draft_and_refine_off_never_calls_it():
    def broken(prompt: str) -> str:
        raise TimeoutError("slow")

    assert plan("画天命人", refine=broken).prompt == plan("画天命人").prompt
    off = ImageSettings(refine_prompt=False)
    assert not plan("画天命人", settings=off, refine=lambda p: pytest.fail("called")).refined


def test_empty_request_is_refused():
    with pytest.raises(ValueError, match="say what to draw"):
        plan("  ")


def test_every_drawing_request_in_the_labelled_list_becomes_an_english_prompt():
    items = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line.strip()]
    drawn = [i["text"] for i in items if i["intent"] == "image" and rule_decision(i["text"]).intent == "image"]
    assert len(drawn) >= 100
    for text in drawn:
        result = plan(text)
        assert not CJK.search(result.prompt), (text, result.prompt)
        assert len(result.prompt.split(",")) >= 3 and result.prompt.endswith(QUALITY["sd15"])


@pytest.mark.parametrize("request_text", ["画一个雪地里的天命人", "画一只花果山上的猴子，水墨风", "draw a red dragon"])
def test_a_finished_prompt_sent_back_in_comes_out_as_it_went_in(request_text: str):
    # An engine app drawing for another app (image.backend=openai) gets the front's finished prompt: it
    # must not add the style, the quality tags or the trigger words a second time.
    first = plan(request_text).prompt
    again = plan(first).prompt
    assert again.lower() == first.lower()
    phrases = [p.strip().lower() for p in again.split(",")]
    assert len(phrases) == len(set(phrases))


def test_english_terms_are_spelled_out_without_saying_their_words_twice():
    result = plan("draw the destined one as a chinese ink wash painting").prompt
    assert "traditional Chinese ink wash painting" in result
    assert result.lower().count("ink wash") == 1 and result.lower().count("painting") == 1
    assert result.count("a monkey warrior") == 1
