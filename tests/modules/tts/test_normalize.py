import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modules.tts.normalize import (
    detect_lang,
    en_number,
    en_ordinal,
    en_year,
    normalize_for_speech,
    speech_segments,
    split_long,
    strip_markup,
    zh_number,
)

ZH_CASES = [
    # citations
    ("黑熊精是第一回的最终头目[1]，盘踞在黑风山[2][3]。", "黑熊精是第一回的最终头目，盘踞在黑风山。"),
    ("见资料[1, 2]和【3】以及脚注[^4]。", "见资料和以及脚注。"),
    # markdown
    ("**黑熊精**是*头目*。", "黑熊精是头目。"),
    ("## 打法\n- 向侧后方闪避\n- 用定身法", "打法。向侧后方闪避。用定身法。"),
    ("1. 第一步\n2. 第二步", "第一步。第二步。"),
    ("用[定身法](https://example.com/spell)定住他。", "用定身法定住他。"),
    ("输入`help`，不要读```python\nprint(1)\n```这段。", "输入help，不要读这段。"),
    ("> 引用的话。", "引用的话。"),
    ("| 名字 | 回目 |\n|---|---|\n| 黑熊精 | 一 |", "名字，回目，黑熊精，一。"),
    # emoji and odd symbols
    ("大圣来也🐒🔥！", "大圣来也！"),
    ("好的 👍🏽 ❤️ ★ 走吧", "好的走吧。"),
    # numbers and dates, read the Chinese way
    ("游戏于2024年8月20日发售。", "游戏于二零二四年八月二十日发售。"),
    ("2024-08-20发售", "二零二四年八月二十日发售。"),
    ("第3回有72变。", "第三回有七十二变。"),
    ("时长3.5小时，掉率10%。", "时长三点五小时，掉率百分之十。"),
    ("共有2个Boss和1800点HP。", "共有两个Boss和一千八百点HP。"),
    ("售出10,000,000份。", "售出一千万份。"),
    ("晚上12:05开始。", "晚上十二点零五分开始。"),
    ("概率1/3，打3-5次。", "概率三分之一，打三到五次。"),
    ("气温-2℃。", "气温负二摄氏度。"),
    ("电话13800138000。", "电话一三八零零一三八零零零。"),
    ("版本1.2.3", "版本一点二点三。"),
    ("第2回", "第二回。"),
]

EN_CASES = [
    ("The Black Bear Guai is the boss of Chapter 1 [1].", "The Black Bear Guai is the boss of Chapter one."),
    ("It launched on 2024-08-20.", "It launched on August twentieth, twenty twenty-four."),
    ("It sold 10,000,000 copies in 3 days.", "It sold ten million copies in three days."),
    ("About 25% more, at 12:05.", "About twenty-five percent more, at twelve oh five."),
    ("The 21st boss costs $5.", "The twenty-first boss costs five dollars."),
    ("In 1995 and 2005.", "In nineteen ninety-five and two thousand five."),
    ("**Bold** and _italic_ text 😀", "Bold and italic text."),
    ("3.5 times", "three point five times."),
]


@pytest.mark.parametrize(("text", "spoken"), ZH_CASES)
def test_chinese_text_is_made_speakable(text, spoken):
    assert normalize_for_speech(text, "zh") == spoken


@pytest.mark.parametrize(("text", "spoken"), EN_CASES)
def test_english_text_is_made_speakable(text, spoken):
    assert normalize_for_speech(text, "en") == spoken


def test_auto_detects_the_language_per_text():
    assert normalize_for_speech("第3回") == "第三回。"
    assert normalize_for_speech("Chapter 3") == "Chapter three."
    assert detect_lang("Boss战") == "zh" and detect_lang("Boss fight") == "en"


def test_english_words_stay_in_chinese_text():
    spoken = normalize_for_speech("《黑神话：悟空》Black Myth: Wukong 的Boss", "zh")
    assert spoken == "《黑神话：悟空》Black Myth: Wukong 的Boss。"


def test_nothing_speakable_gives_empty_string():
    assert normalize_for_speech("[1][2] 🐒 **") == ""
    assert normalize_for_speech("") == ""
    assert speech_segments("🐒🐒") == []


def test_bad_lang_is_a_clear_error():
    with pytest.raises(ValueError, match="lang must be"):
        normalize_for_speech("你好", "fr")  # type: ignore[arg-type]


def test_strip_markup_keeps_link_text_and_drops_urls():
    assert strip_markup("see https://x.com/a and [wiki](http://w)") == "see  and wiki"


@pytest.mark.parametrize(
    ("n", "words"),
    [(0, "zero"), (13, "thirteen"), (40, "forty"), (72, "seventy-two"), (100, "one hundred"),
     (1800, "one thousand eight hundred"), (1_000_001, "one million one"), (-3, "minus three")],
)  # fmt: skip
def test_en_number(n, words):
    assert en_number(n) == words


def test_en_ordinal_and_year():
    assert [en_ordinal(n) for n in (1, 2, 3, 5, 12, 20, 21, 100)] == [
        "first", "second", "third", "fifth", "twelfth", "twentieth", "twenty-first", "one hundredth"
    ]  # fmt: skip
    assert [en_year(y) for y in (1995, 1900, 2000, 2005, 2024, 1105)] == [
        "nineteen ninety-five", "nineteen hundred", "two thousand", "two thousand five", "twenty twenty-four",
        "eleven oh five"
    ]  # fmt: skip


def test_zh_number():
    spoken = [zh_number(x) for x in ("72", "10000", "3.5", "0.25", "007")]
    assert spoken == ["七十二", "一万", "三点五", "零点二五", "零零七"]


def test_split_long_cuts_at_pauses_within_the_limit():
    text = "黑熊精是第一回的最终头目，盘踞在黑风山，黑熊精原本是观音禅院附近的妖怪，后来被观音菩萨收为守山大神。短句。"
    pieces = split_long(text, 20)
    assert all(len(p) <= 20 for p in pieces)
    assert "".join(pieces) == text
    assert pieces[-1] == "短句。"
    assert all(p.endswith(("，", "。")) for p in pieces)


def test_split_long_without_pauses_cuts_at_spaces_then_hard():
    pieces = split_long("word " * 30, 22)
    assert all(len(p) <= 22 for p in pieces) and " ".join(pieces).split() == ["word"] * 30
    assert split_long("一" * 25, 10) == ["一" * 10, "一" * 10, "一" * 5]


def test_split_long_keeps_short_sentences_whole():
    assert split_long("你好。Hello there. Fine!", 80) == ["你好。", "Hello there.", "Fine!"]


def test_split_long_rejects_a_bad_limit():
    with pytest.raises(ValueError, match="max_chars"):
        split_long("x", 0)


def test_speech_segments_normalises_then_splits():
    segments = speech_segments("**第3回**：黑熊精[1]，" + "很强，" * 20 + "小心。", "zh", 30)
    assert segments[0].startswith("第三回：黑熊精，")
    assert all(len(s) <= 30 for s in segments)
    assert "[1]" not in "".join(segments) and "*" not in "".join(segments)


# -- properties (hypothesis): any text, however odd, is made speakable or dropped, never crashes -------

_ANSWERISH = st.text(
    alphabet=st.sampled_from(list("黑熊精在第回年月日，。！？；、（）[]*#`>-_.0123456789%abcXYZ \n😀<script>&")),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(text=_ANSWERISH, lang=st.sampled_from(["auto", "zh", "en"]))
def test_normalising_never_fails_and_leaves_no_markup_or_citations(text: str, lang: str):
    out = normalize_for_speech(text, lang)  # type: ignore[arg-type]
    assert isinstance(out, str)
    assert not any(ch in out for ch in "*#`[]<>")
    if out:
        assert any(ch.isalnum() for ch in out)


@settings(max_examples=200, deadline=None)
@given(text=_ANSWERISH, limit=st.integers(10, 80))
def test_speech_segments_respect_the_limit_and_keep_the_words(text: str, limit: int):
    segments = speech_segments(text, "zh", limit)
    assert all(0 < len(s) <= limit for s in segments)
    spoken = "".join(segments)
    for ch in "黑熊精":
        if ch in normalize_for_speech(text, "zh"):
            assert ch in spoken
