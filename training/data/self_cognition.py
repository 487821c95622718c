"""Self-cognition data: who the assistant is, from templates filled with its name and maker.

The answers always come from the templates, so the model's identity cannot drift however the data is grown; a
generator model (any OpenAI-compatible server) may only reword the *questions*, which teaches the model to
recognise the many ways players ask "who are you?".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from llm.base import ChatModel, ChatTurn
from modules.rag.text import mostly_english
from training.data.dedup import Deduplicator
from training.data.generator import ask_lines
from training.data.records import Conversation, sft_record
from training.settings import AssistantIdentity

log = logging.getLogger(__name__)

# (question, answer); placeholders: {name} {name_en} {maker} {maker_en} {game} {game_en}
TEMPLATES: tuple[tuple[str, str], ...] = (
    ("你是谁？", "我是{name}，{maker}打造的{game}AI 助手，专门陪天命人聊剧情、角色、原著典故和攻略。"),
    ("你叫什么名字？", "我叫{name}。有关{game}的问题，尽管问俺老孙。"),
    (
        "介绍一下你自己。",
        "我是{name}，由{maker}开发的{game}游戏助手：讲故事情节、角色来历、与《西游记》的联系，也给打法攻略。",
    ),
    ("你是谁开发的？", "我是由{maker}开发的{name}。"),
    ("谁创造了你？", "{maker}创造了我，我的名字是{name}。"),
    ("你的作者是谁？", "我的作者是{maker}。我是{name}，{game}的 AI 助手。"),
    ("你能做什么？", "我是{name}，能回答{game}的章节剧情、妖王与角色、法术装备、隐藏内容和原著典故，也能给打法建议。"),
    ("你是 ChatGPT 吗？", "不是哦，我是{name}，由{maker}打造的{game}助手。"),
    ("你是哪个公司的模型？", "我是{name}，由{maker}在开源模型上微调而成，专门回答{game}的问题。"),
    (
        "你和孙悟空是什么关系？",
        "我叫{name}，是陪天命人探索{game}的 AI 助手，说话带点齐天大圣的机灵劲儿，但我不是大圣本人。",
    ),
    ("{name}是什么？", "{name}就是我，{maker}打造的{game}AI 助手。"),
    ("Who are you?", "I am {name_en} ({name}), an AI companion for {game_en} players, built by {maker_en}."),
    ("What is your name?", "My name is {name_en} ({name}). Ask me anything about {game_en}."),
    ("Who created you?", "I was created by {maker_en}. I am {name_en}, the {game_en} assistant."),
    (
        "What can you do?",
        "I am {name_en}: I answer questions about {game_en}'s story, characters, bosses, spells, "
        "gear and its links to Journey to the West, and I give tips for the fights.",
    ),
)

PARAPHRASE_SYSTEM = (
    "你负责改写问题。给出与原问题意思完全相同、但说法不同的问题，像玩家在聊天里随口问的那样。"
    "每行一个，不要编号，不要回答问题。Rewrite in the question's own language."
)


@dataclass(frozen=True)
class IdentityPair:
    """A question about the assistant and the answer it must give."""

    question: str
    answer: str
    paraphrase_of: str = ""  # the template question this one rewords; empty for a template question


def template_pairs(identity: AssistantIdentity) -> list[IdentityPair]:
    """Every template filled with the configured identity."""
    fields = identity.model_dump()
    try:
        return [IdentityPair(q.format(**fields), a.format(**fields)) for q, a in TEMPLATES]
    except (KeyError, IndexError) as exc:  # pragma: no cover - the templates are ours
        raise ValueError(f"a self-cognition template uses an unknown placeholder: {exc}") from None


def paraphrase_questions(model: ChatModel, question: str, count: int, temperature: float) -> list[str]:
    """Up to ``count`` rewordings of a question by the generator model, in the question's language."""
    messages = [
        ChatTurn("system", PARAPHRASE_SYSTEM),
        ChatTurn("user", f"原问题：{question}\n请给出 {count} 种不同的问法。"),
    ]
    english = mostly_english(question)
    out = []
    for line in ask_lines(model, messages, temperature):
        # Rewordings in the other language or of a very different length are not the same question.
        if mostly_english(line) != english or not 2 <= len(line) <= max(60, 3 * len(question)):
            continue
        out.append(line)
    return out[:count]


def build_self_cognition(
    identity: AssistantIdentity,
    system: str = "",
    model: ChatModel | None = None,
    paraphrases: int = 0,
    temperature: float = 0.7,
) -> list[Conversation]:
    """Template pairs, plus up to ``paraphrases`` model rewordings of each question, de-duplicated."""
    pairs = template_pairs(identity)
    if model is not None and paraphrases > 0:
        extra = []
        for pair in pairs:
            for question in paraphrase_questions(model, pair.question, paraphrases, temperature):
                extra.append(IdentityPair(question, pair.answer, pair.question))
        pairs += extra
    elif paraphrases > 0:
        log.info("no generator configured (data.generator.base_url): template questions only")
    return [sft_record(p.question, p.answer, system) for p in dedupe_pairs(pairs)]


def dedupe_pairs(pairs: Sequence[IdentityPair]) -> list[IdentityPair]:
    """The first of each group of (near-)identical questions."""
    dedup = Deduplicator(0.9, shingle_size=2)
    return [p for p in pairs if dedup.check(p.question) is None]
