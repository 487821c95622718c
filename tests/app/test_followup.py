from app.followup import resolve_followup
from llm.base import ChatTurn

ENTITIES = ["红孩儿", "黑熊精", "Red Boy"]


def find(text: str) -> list[str]:
    return [{"Red Boy": "红孩儿"}.get(e, e) for e in ENTITIES if e in text]


def test_pronoun_follow_up_gets_the_last_entity():
    history = [ChatTurn("user", "红孩儿是谁？"), ChatTurn("assistant", "红孩儿是第五回的头目。")]
    assert resolve_followup("那他的父亲呢？", history, find) == "红孩儿的父亲呢？"


def test_short_follow_up_without_pronoun_is_prefixed():
    history = [ChatTurn("user", "黑熊精在哪里？"), ChatTurn("assistant", "黑风山。")]
    assert resolve_followup("怎么打？", history, find) == "黑熊精怎么打？"


def test_english_follow_up():
    history = [ChatTurn("user", "Who is Red Boy?"), ChatTurn("assistant", "...")]
    assert resolve_followup("Who is his father?", history, find) == "Who is 红孩儿's father?"


def test_stand_alone_questions_are_left_alone():
    history = [ChatTurn("user", "红孩儿是谁？")]
    assert resolve_followup("黑熊精在哪里？", history, find) == "黑熊精在哪里？"
    assert resolve_followup("游戏是什么时候发售的？", history, find) == "游戏是什么时候发售的？"


def test_no_history_or_no_entity_in_history():
    assert resolve_followup("他的父亲呢？", [], find) == "他的父亲呢？"
    assert resolve_followup("他的父亲呢？", [ChatTurn("user", "你好")], find) == "他的父亲呢？"


def test_latest_entity_wins():
    history = [ChatTurn("user", "红孩儿是谁？"), ChatTurn("assistant", "..."), ChatTurn("user", "黑熊精呢？")]
    assert resolve_followup("他在哪？", history, find) == "黑熊精在哪？"
