import json
from pathlib import Path

import pytest

from modules.image.intent import IntentDecision, classify, rule_decision

LABELLED = Path(__file__).parents[2] / "eval" / "intent.jsonl"


def labelled() -> list[dict[str, str]]:
    return [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_labelled_list_is_big_mixed_and_clean():
    items = labelled()
    assert len(items) >= 120
    assert {i["intent"] for i in items} == {"chat", "image"}
    assert len({i["text"] for i in items}) == len(items)
    english = [i for i in items if i["text"].isascii()]
    assert len(english) >= 40 and {i["intent"] for i in english} == {"chat", "image"}
    # Near misses: chat messages that carry a drawing word.
    tricky = [
        i
        for i in items
        if i["intent"] == "chat"
        and any(w in i["text"].lower() for w in ("画", "图", "draw", "paint", "picture", "image"))
    ]
    assert len(tricky) >= 50


def test_rules_alone_route_the_labelled_list():
    items = labelled()
    wrong = [(i["text"], i["intent"]) for i in items if rule_decision(i["text"]).intent != i["intent"]]
    accuracy = 1 - len(wrong) / len(items)
    assert accuracy >= 0.97, f"{accuracy:.3f}; wrong: {wrong}"


@pytest.mark.parametrize(
    "text",
    [
        "谁画了游戏的概念图", "画面设置怎么调", "这游戏画质怎么样", "怎么画符", "how do I draw aggro",
        "who drew the concept art", "壁画在哪", "画中仙是谁", "", "   ", "黑熊精怎么打", "what's the draw distance",
    ],
)  # fmt: skip
def test_near_misses_stay_chat(text):
    decision = rule_decision(text)
    assert decision.intent == "chat" and decision.confident


@pytest.mark.parametrize(
    "text",
    [
        "画一个天命人", "帮我画一张天命人在雪山上的图", "生成一张黑熊精的图片", "来张天命人的壁纸",
        "draw the Destined One", "paint Wukong in ink wash style", "generate an image of Red Boy",
        "can you illustrate Yellowbrow?", "I'd like a picture of the Destined One", "幫我畫一張天命人",
    ],
)  # fmt: skip
def test_obvious_requests_are_images(text):
    decision = rule_decision(text)
    assert decision == IntentDecision("image", decision.reason, True)


@pytest.mark.parametrize("text", ["来一张天命人", "show me the Destined One in snow", "水墨风天命人"])
def test_ambiguous_requests_lean_image_but_are_not_confident(text):
    decision = rule_decision(text)
    assert decision.intent == "image" and not decision.confident


def test_ambiguous_requests_ask_the_model():
    asked: list[str] = []

    def model(answer: str):
        def ask(prompt: str) -> str:
            asked.append(prompt)
            return answer

        return ask

    assert classify("来一张天命人", ask_model=model("Yes.")).intent == "image"
    assert "来一张天命人" in asked[-1] and "yes" in asked[-1]
    decision = classify("来一张天命人", ask_model=model("<think>hmm</think>no, they want facts"))
    assert decision.intent == "chat" and decision.confident and "chat model" in decision.reason
    assert classify("show me the Destined One in snow", ask_model=model("是的，要画")).intent == "image"


def test_an_unclear_or_failing_model_leaves_the_rules_guess():
    def broken(prompt: str) -> str:
        raise ConnectionError("server down")

    assert classify("来一张天命人", ask_model=lambda p: "maybe?") == rule_decision("来一张天命人")
    assert classify("来一张天命人", ask_model=broken) == rule_decision("来一张天命人")


def test_confident_messages_never_ask_the_model():
    def ask(prompt: str) -> str:
        raise AssertionError("asked")

    assert classify("画一个天命人", ask_model=ask).intent == "image"
    assert classify("画面设置怎么调", ask_model=ask).intent == "chat"
