from modules.rag.entities import EntityMatcher, canonical_chapters, chinese_number
from modules.rag.types import Document


def matcher() -> EntityMatcher:
    return EntityMatcher(
        [
            Document("a", "黑熊精", "", "a", aliases=("黑风大王", "Black Bear Guai")),
            Document("b", "第一回 火照黑云", "", "b", aliases=("第一回", "第一章", "火照黑云", "Chapter 1")),
            Document("c", "黄风大圣", "", "c", aliases=("黄风怪",)),
            Document("d", "黄风岭", "", "d"),
        ]
    )


def test_chinese_numbers():
    assert [chinese_number(n) for n in (0, 1, 6, 10, 12, 20)] == ["零", "一", "六", "十", "十二", "二十"]


def test_chapter_mentions_become_canonical():
    assert canonical_chapters("第3章的boss") == "第三回的boss"
    assert canonical_chapters("第三章") == "第三回"
    assert canonical_chapters("bosses of chapter 2?") == "bosses of 第二回?"
    assert canonical_chapters("the prologue") == "the 序章"


def test_aliases_find_their_entry():
    m = matcher()
    assert m.find("黑风大王在哪") == ["黑熊精"]
    assert m.find("Where is the black bear guai?") == ["黑熊精"]
    assert m.find("第1章有哪些boss") == ["第一回 火照黑云"]
    assert m.find("火照黑云讲了什么") == ["第一回 火照黑云"]


def test_longest_name_wins_and_each_entity_once():
    m = matcher()
    assert m.find("黄风大圣和黄风岭，黄风大圣") == ["黄风大圣", "黄风岭"]


def test_english_names_need_word_boundaries():
    m = EntityMatcher([Document("a", "石先锋", "", "a", aliases=("Stone Vanguard", "ox"))])
    assert m.find("the box") == []
    assert m.find("an ox!") == ["石先锋"]


def test_expand_appends_titles():
    m = matcher()
    assert m.expand("Where is the Black Bear Guai?") == "Where is the Black Bear Guai? 黑熊精 位置 位于"
    assert m.expand("黑熊精在哪") == "黑熊精在哪"


def test_english_names_compare_loosely():
    m = EntityMatcher([Document("a", "百眼魔君", "", "a", aliases=("Hundred-Eyed Daoist Master",))])
    assert m.find("the hundred eyed daoist master's light") == ["百眼魔君"]


def test_everyday_english_aliases_are_ignored():
    m = EntityMatcher([Document("a", "灵蕴", "", "a", aliases=("Will",))])
    assert m.find("will it rain tomorrow") == []
