from hypothesis import given
from hypothesis import strategies as st

from modules.rag.text import Tokenizer, mostly_english, normalize, split_sentences, strip_markdown


def test_split_sentences_chinese_marks():
    assert split_sentences("黑熊精在黑风山。打法是什么？小心！最后一句") == [
        "黑熊精在黑风山。",
        "打法是什么？",
        "小心！",
        "最后一句",
    ]


def test_split_sentences_keeps_dates_and_decimals():
    text = "游戏于2024.08.20发售，版本3.5更新。It sold 10 million copies. Next one"
    assert split_sentences(text) == ["游戏于2024.08.20发售，版本3.5更新。", "It sold 10 million copies.", "Next one"]


def test_split_sentences_english_abbreviations_and_quotes():
    assert split_sentences("Wu Cheng'en (c. 1500) wrote it. Dr. Feng agrees! \"I'm here to help you!\" he says.") == [
        "Wu Cheng'en (c. 1500) wrote it.",
        "Dr. Feng agrees!",
        '"I\'m here to help you!" he says.',
    ]
    assert split_sentences("小心!快跑。") == ["小心!", "快跑。"]


def test_split_sentences_closing_quotes_stay_with_the_sentence():
    assert split_sentences("他说：“走吧。”然后离开。") == ["他说：“走吧。”", "然后离开。"]


@given(st.text(alphabet=st.sampled_from(list("黑熊精。！？；.!? ab\n1")), max_size=60))
def test_split_sentences_loses_nothing_but_whitespace(text):
    joined = "".join(split_sentences(text))
    assert joined.replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")


def test_strip_markdown():
    assert strip_markdown("- **黑熊精**：[黑风山](x.md)") == "黑熊精：黑风山"
    assert strip_markdown("| 头目 | 地点 |") == "头目，地点"
    assert strip_markdown("|---|---|") == ""
    assert strip_markdown("> 引文") == "引文"


def test_normalize_full_width_and_case():
    assert normalize("ＢＯＳＳ　黑熊精  ") == "boss 黑熊精"


def test_mostly_english():
    assert mostly_english("Who is the Black Bear Guai?")
    assert not mostly_english("黑熊精是谁")
    assert not mostly_english("1234")


def test_tokenizer_keeps_entity_words_and_drops_stopwords():
    tok = Tokenizer(["黄风大圣", "黑熊精"])
    tokens = tok.tokens("黄风大圣在哪里？黑熊精的打法")
    assert "黄风大圣" in tokens and "黑熊精" in tokens
    assert "黑熊" in tokens  # search mode also emits the parts
    assert "在" not in tokens and "的" not in tokens and "哪里" not in tokens


def test_tokenizer_english_words():
    tok = Tokenizer()
    assert tok.tokens("Where is the Black Bear's cave?") == ["black", "bear", "cave"]
