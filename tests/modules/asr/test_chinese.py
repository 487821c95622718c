"""Script helpers."""

from modules.asr.chinese import han_count, to_simplified


def test_to_simplified():
    assert to_simplified("黃風大聖的三昧神風怎麼躲？") == "黄风大圣的三昧神风怎么躲？"
    assert to_simplified("黑熊精") == "黑熊精"
    assert to_simplified("Where is Xbox?") == "Where is Xbox?"
    assert to_simplified("") == ""


def test_han_count():
    assert han_count("游戏里有多少个Boss") == 7
    assert han_count("Boss") == 0
