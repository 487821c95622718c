"""The embedded default answerer: no model, just the best knowledge-base sentences, cited.

It scores every sentence of the retrieved passages by how much of the question (weighted by
inverse document frequency) it covers, by how close it is in meaning (the sentence vectors of
modules/rag/dense.py, when they are ready), and by whether it sits in the section the question is
about (打法 for "怎么打", 位置 for "在哪" …). It then composes by the kind of question: the sentence
that states the answer first; for a yes/no question the verdict first (有/没有, Yes/No) when the
sentence states one; for a list question one line per entry, each cited. When neither the words
nor the meaning of any sentence come close enough to the question it says so instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from llm.base import ChatModel, ChatTurn
from modules.rag.synonyms import GLOSSARY
from modules.rag.text import is_cjk, mostly_english, quotable_sentences, split_sentences
from modules.rag.types import Passage

NOTHING_RELEVANT_ZH = (
    "知识库里没有找到能回答这个问题的内容，俺老孙不瞎编。"
    "可以换个说法，或者问问《黑神话：悟空》的章节、妖王、角色、法术、装备和原著典故。"
)
NOTHING_RELEVANT_EN = (
    "I could not find anything in the knowledge base that answers this, and I would rather not guess. "
    "Try rephrasing, or ask about Black Myth: Wukong's chapters, bosses, characters, spells, gear or its "
    "links to Journey to the West."
)
# A question about what has not happened yet: say that plainly, then what is known so far.
FUTURE_ZH = "知识库里没有找到关于将来的确切消息（知识库只记录已经发生、已经公布的事）。目前已知的是："
FUTURE_EN = (
    "I could not find anything certain about the future in the knowledge base "
    "(it records what has happened or been announced). What is known so far: "
)
FUTURE = re.compile(
    r"明年|后年|下一届|下届|下一?个版本|下一个?补丁|下一部|将来|以后会|未来会|会涨|会跌"
    r"|\bnext (?:year|patch|update|game)\b|\bin the future\b|\bupcoming\b"
    r"|\bwill\b.{0,40}\b(?:announce|release|win|add|come out|cost|sell|launch)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Intent:
    """A kind of question, the entry sections that answer it, and the words an answer sentence uses."""

    name: str
    question: re.Pattern[str]
    sections: tuple[str, ...]  # "" = an entry's opening summary
    cue: re.Pattern[str]
    unless: re.Pattern[str] | None = None  # a question matching this is not of this kind

    def asked_by(self, question: str) -> bool:
        return bool(self.question.search(question)) and not (self.unless and self.unless.search(question))


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# A yes/no question ends in 吗/嘛, or in 么 that is not part of 什么/怎么/那么 …
_ASKS = r"(?:[吗嘛]|(?<![什怎那这多要])么)(?=[？?。!！\s]*$)"
_PLACE = r"山|洞|村|寺|林|岭|谷|崖|岛|塔|殿|院|国|观|顶|底|深处|附近|尽头|路口|庙|井|湖|河|潭|宫|阁|楼|门|关|城|池"
INTENTS: tuple[Intent, ...] = (
    Intent(
        "identity",
        _re(
            r"是谁|是什么|是何人|叫什么|什么名字|身份|来历|简介|介绍|真身|原形|原身|本体|原型"
            r"|\b(?:who|what) (?:is|are|was)\b|called"
        ),
        ("", "身份", "简介", "概述", "来历", "原型"),
        _re(r"是|原型|原形|原身|真身|真实身份|本是|原本|原来"),
        # "X是谁" asks who X is; "X的兵器是什么" asks about the weapon, not about X.
        _re(r"的(?!原形|原身|真身|本体|来历|身份|原型)[^的，,]{1,10}(?:是谁|是什么)"),
    ),
    Intent(
        "fight",
        _re(
            r"怎么打|如何打|打法|攻略|技巧|难打|打不过|怎么过|怎么躲|躲|弱点|机制|注意什么|要注意"
            r"|how (?:do i |to |can i )?(?:beat|defeat|fight|dodge)|tips?\b|dodge|weak"
        ),
        ("打法", "技巧", "攻略", "机制", "应对", "战斗"),
        _re(r"闪避|躲|翻滚|破绽|弱点|输出|定身|硬直|建议|注意|蓄力|留意|空档|时机|dodge|roll"),
    ),
    Intent(
        "acquire",
        _re(
            r"在哪(?:里|儿)?(?:学|拿|领|获得|得到|弄|买|找)|拿到|获得|得到|学会|学到|取得|入手|弄到|解锁"
            r"|谁给|从哪|从谁|how (?:do i |to |can i )?(?:get|obtain|learn|unlock)"
        ),
        ("获取", "获得", "解锁", "来源", "取得", "入手", "学习"),
        _re(
            r"获得|得到|学会|习得|拿到|取得|传授|教会|教给|击败.{0,15}后|奖励|解锁|送给|领取|obtain|unlock|learn|reward"
        ),
    ),
    Intent(
        "where",
        _re(r"在哪(?!学|拿|领|获|得)|哪里(?!学|拿|获|得)|哪儿|位置|什么地方|哪一回|哪个地图|where|location"),
        ("位置", "地点", "场景", "区域", "入口", "所在"),
        _re(rf"位于|在.{{0,14}}(?:{_PLACE})|地点|区域|第.回|located|found|fought"),
    ),
    Intent(
        "drop",
        _re(r"掉落|掉什么|爆什么|奖励|给什么|得到什么|获得什么|drop|reward|loot"),
        ("掉落", "奖励", "获得", "获取"),
        _re(r"掉落|获得|得到|奖励|可以拿到|drops?|reward"),
    ),
    Intent(
        "novel",
        _re(r"原著|西游记|小说|第几回|novel|journey to the west"),
        ("原著", "西游记", "典故", "出处"),
        _re(r"第.{1,5}回|西游记|原著|《"),
    ),
    Intent(
        "condition",
        _re(
            r"怎么触发|触发条件|条件|怎么进|如何进入|怎么去|入口|怎么开启"
            r"|how (?:do i |to |can i )?(?:reach|trigger|enter|access)"
        ),
        ("条件", "触发", "入口", "进入", "前往", "解锁"),
        _re(r"需要|必须|条件|之后|才能|才会|入口|进入|触发|先"),
    ),
    Intent(
        "count",
        _re(r"多少|几(?:个|次|段|种|件|回|级|点|年|位|只)|how (?:many|much|long)"),
        (),
        _re(r"\d|[一二三四五六七八九十百千万两]+(?:个|次|段|份|万|名|套|种|件|回|级|点|年|月|日|位|只|套|小时)"),
    ),
    Intent(
        "outcome",
        _re(r"最后怎么|结局|下场|怎么死|死了|后来|怎么样了|what happen"),
        ("结局", "结果", "下场", "剧情", "结尾", "故事"),
        _re(r"最后|最终|结局|死|被.{0,8}(?:抓|杀|收|带|救|封)|后来|下场"),
    ),
    Intent(
        "why",
        _re(r"为什么|为何|怎么回事|原因|why"),
        (),
        _re(r"因为|由于|所以|原因|因此|为了|于是|because"),
    ),
    Intent(
        "when",
        _re(r"什么时候|啥时候|哪天|哪一天|哪年|哪一年|几月|何时|多久以前|\bwhen\b|what (?:day|date|year)"),
        (),
        _re(r"\d{4}年|\d{1,2}月|\d{1,2}日|\b(?:19|20)\d\d\b|首发|发售|上线"),
    ),
    Intent(
        "yesno",
        _re(
            (
                r"有没有|能不能|可不可以|可以不|是不是|会不会|要不要|需不需要|支不支持|有.{0,14}{Q}|能.{0,14}{Q}"
                r"|可以.{0,14}{Q}|支持.{0,14}{Q}|是.{0,14}{Q}|会.{0,14}{Q}|需要.{0,14}{Q}"
                r"|^\s*(?:is|are|does|do|can|could|will|was|were|has|have|should|did)\b"
            ).replace("{Q}", _ASKS)
        ),
        (),
        _re(r"没有|不支持|不能|无法|支持|可以|能够|\bno\b|\bnot\b|n't|\byes\b|\bonly\b"),
    ),
    Intent(
        "list",
        _re(
            r"有哪些|分别|都有哪|都是谁|哪几|全部|所有|列表|一览|盘点|清单"
            r"|\blist\b|\ball (?:the )?\w+|what are the|which \w+ are there"
        ),
        ("", "一览", "列表", "总览"),
        _re(r"、|：|分别|依次|共有|一共|包括"),
    ),
)
YESNO = next(i for i in INTENTS if i.name == "yesno")
LIST = next(i for i in INTENTS if i.name == "list")


class SentenceScorer(Protocol):
    """How close in meaning a passage's sentences are to a question (modules/rag/dense.DenseIndex)."""

    def sentence_scores(self, question: str, chunk_id: int, positions: Sequence[int]) -> list[float | None]: ...


# Sentence score = share of the question's weighted terms the sentence covers (a term in the
# entry's title or the section heading counts as covered) + these bonuses. Tuned on the public
# and players' evaluation sets; see docs/evaluation.md.
ENTITY_RELEVANCE = 0.4  # share of min_relevance needed when the question names a retrieved entry
STRAY_RUN = 3  # single characters in a row that make an unknown name
UNKNOWN_SHARE = 0.3  # ... but not when this share of the question's weight is words the knowledge base lacks
SIMILAR = 0.5  # token Jaccard above which a sentence repeats one already chosen
BONUS_RANK = 0.03  # / (1 + passage rank): retrieval's own order breaks near-ties
BONUS_BIGRAM = 0.15  # x share of the question's character pairs the sentence shares
BONUS_SECTION = 0.3  # the sentence sits in the section the question asks about (打法, 位置 …)
BONUS_CUE = 0.15  # the sentence uses the words such an answer uses (位于, 击败…后, 第N回 …)
BONUS_LEAD = 0.1  # the entry's opening sentence says what the entity is
BONUS_ENGLISH = 0.3  # an English sentence (an entry's summary_en) for an English question
# Meaning: a sentence's relevance to the question on the calibrated scale of modules/rag/dense.py
# (0 = as close as an off-topic question comes; embedder-independent). Above SEM_FLOOR it earns up
# to BONUS_SEMANTIC, reached at SEM_FLOOR + SEM_SPAN.
BONUS_SEMANTIC = 0.5
SEM_FLOOR = 1.0
SEM_SPAN = 3.0
SEM_ANSWER = 4.5  # a sentence this close in meaning answers even when the words differ (联机 / 多人)
BONUS_LIST = 0.2  # x share of a full enumeration (three 、) in a sentence, for list questions
LIST_LINES = 6  # most lines in a list answer
LIST_ITEMS = 20  # most items a list question takes from a list that follows an introducing sentence
VERDICT_SURE = 0.5  # coverage (or SEM_ANSWER) the leading sentence needs before a yes/no verdict is drawn from it


@dataclass(frozen=True)
class _Candidate:
    sentence: str
    passage_index: int
    position: int
    score: float
    coverage: float
    tokens: frozenset[str]
    semantic: float = 0.0  # calibrated relevance of meaning; 0 when no vectors are ready
    title: str = ""
    predicate: float = 1.0  # share of what the question asks (its terms other than entity names) covered


class ExtractiveAnswerer:
    """Composes a cited answer from knowledge-base sentences; the no-download default."""

    name = "extractive"
    model: ChatModel | None = None  # no chat model: answers are composed from the passages

    def __init__(
        self,
        tokenize: Callable[[str], list[str]],
        idf: Callable[[str], float],
        max_sentences: int = 4,
        min_relevance: float = 0.5,
        piece_chars: int = 6,
        find_entities: Callable[[str], list[str]] | None = None,
        expand: Callable[[str], str] | None = None,
        semantic: Callable[[], SentenceScorer | None] | None = None,
    ) -> None:
        self.tokenize = tokenize
        self.find_entities = find_entities
        self.expand = expand  # adds entity titles / Chinese terms, so English questions can match
        self.idf = idf
        self.max_sentences = max_sentences
        self.min_relevance = min_relevance
        self.piece_chars = piece_chars
        self.semantic = semantic  # the sentence vectors, once they are ready (None before)
        self._max_idf: float | None = None

    def rewrite(self, question: str, history: Sequence[ChatTurn]) -> str | None:
        """No model to rewrite follow-ups with: the caller resolves them by rule."""
        return None

    def stream(
        self, question: str, passages: Sequence[Passage], history: Sequence[ChatTurn] = ()
    ) -> Generator[str, None, None]:
        answer = self.compose(question, passages)
        for start in range(0, len(answer), self.piece_chars):
            yield answer[start : start + self.piece_chars]

    # -- composition -------------------------------------------------------------------------

    def compose(self, question: str, passages: Sequence[Passage]) -> str:
        english = mostly_english(question)
        listing = LIST.asked_by(question)
        chosen = self._select(
            question, passages, max(self.max_sentences, LIST_LINES) if listing else self.max_sentences
        )
        if not chosen:
            return NOTHING_RELEVANT_EN if english else NOTHING_RELEVANT_ZH
        items = LIST_ITEMS if listing else 5
        lines = [_cite(self._with_list(c, passages, items), c.passage_index + 1) for c in chosen]
        if FUTURE.search(question):
            return (FUTURE_EN if english else FUTURE_ZH) + "".join(lines)
        if listing and len({c.title for c in chosen}) > 1:
            body = "\n".join(f"- {line.strip()}" for line in lines)
        else:
            body = "".join(lines)
        verdict = _verdict(question, chosen[0], english) if YESNO.asked_by(question) else ""
        if english and not any(_is_english(c.sentence) for c in chosen):
            return (verdict + " " if verdict else "") + "From the knowledge base (in Chinese): " + body
        if verdict:
            return f"{verdict} {body}" if english else f"{verdict}。{body}"
        return body

    def select(self, question: str, passages: Sequence[Passage], limit: int) -> list[tuple[int, str]]:
        """The best sentences for the question as (passage number from 1, sentence); [] = nothing relevant.

        A small chat model reads these instead of whole passages: a shorter prompt answers sooner.
        """
        return [(c.passage_index + 1, self._with_list(c, passages)) for c in self._select(question, passages, limit)]

    def _select(self, question: str, passages: Sequence[Passage], limit: int) -> list[_Candidate]:
        english = mostly_english(question)
        # English words the expansion translated count through their Chinese terms only.
        translated = {t for t in self.tokenize(question) if t in GLOSSARY} if english and self.expand else set()
        original = question
        if _years_unmentioned(original, passages):
            return []  # "2030年的销量" when no passage speaks of 2030: the knowledge base cannot know
        question = self.expand(question) if self.expand else question
        weights = {t: w for t, w in self._weights(question).items() if t not in translated}
        total = sum(weights.values())
        scorer = self.semantic() if self.semantic else None
        if not passages or (total == 0 and scorer is None):
            return []
        candidates = self._candidates(question, passages, weights, total, english, original, scorer)
        if not candidates:
            return []
        # A question that names an entry we retrieved is about the game even when its wording is
        # far from the entry's ("蝎大王他老婆是怎么死的"); only other questions must cover enough,
        # in words or, when the vectors are ready, in meaning.
        named = set(self.find_entities(question)) if self.find_entities else set()
        # ... unless much of the question is words the knowledge base has never seen: "第二回的紫霄雷猿"
        # names a real chapter and a made-up boss, and is not answered by the chapter's sentences.
        strays = _stray_characters(self.tokenize(original))
        unknown = sum(w for t, w in weights.items() if self._unknown(t) or t in strays) / total if total else 0.0
        relieved = named & {p.title for p in passages} and unknown < UNKNOWN_SHARE
        needed = self.min_relevance * (ENTITY_RELEVANCE if relieved else 1.0)
        close_in_meaning = scorer is not None and max(c.semantic for c in candidates) >= SEM_ANSWER
        if max(c.coverage for c in candidates) < needed and not close_in_meaning:
            return []
        chosen = self._choose(candidates, english, limit, LIST.asked_by(original))
        # What the question asks about its entities (不是 who): the weight of the terms that are not
        # their names. A yes/no verdict is only drawn from a sentence that covers that.
        names = {t for title in named for t in self.tokenize(title)}
        asked = {t: w for t, w in weights.items() if t not in names}
        if asked:
            lead = chosen[0]
            share = sum(w for t, w in asked.items() if t in lead.tokens) / sum(asked.values())
            chosen[0] = replace(lead, predicate=share)
        return chosen

    def _unknown(self, token: str) -> bool:
        """A word no chunk of the knowledge base contains (BM25 gives it the largest IDF there is)."""
        if self._max_idf is None:
            self._max_idf = self.idf("\x00no such word\x00")
        return len(token) >= 2 and self.idf(token) >= self._max_idf - 1e-9

    def _weights(self, question: str) -> dict[str, float]:
        """IDF weight of each content term of the question.

        The words that only say what kind of answer is wanted (怎么打, 在哪, 原著 …) are left out:
        the section preference answers them, and an entry need not repeat them.
        """
        form = set()
        for intent in INTENTS:
            if intent.asked_by(question):
                for match in intent.question.finditer(question):
                    form.update(self.tokenize(match.group(0)))
        weights = {}
        for token in dict.fromkeys(self.tokenize(question)):
            if token not in form:
                # A lone character (攒, 份 …) is often colloquial filler; it counts half.
                weights[token] = self.idf(token) * (0.5 if len(token) == 1 and is_cjk(token) else 1.0)
        return {t: w for t, w in weights.items() if w > 0}

    def _candidates(
        self,
        question: str,
        passages: Sequence[Passage],
        weights: dict[str, float],
        total: float,
        english: bool,
        original: str = "",
        scorer: SentenceScorer | None = None,
    ) -> list[_Candidate]:
        wanted = [intent for intent in INTENTS if intent.asked_by(question)]
        listing = LIST in wanted
        q_grams = _bigrams(question)
        out = []
        for index, passage in enumerate(passages):
            chunk = passage.chunk
            header = set(self.tokenize(f"{chunk.title} {chunk.section}"))
            section_match = any(_section_matches(chunk.section, intent.sections) for intent in wanted)
            sentences = quotable_sentences(chunk.text)  # the same sentences the vectors were made of
            meaning = (
                scorer.sentence_scores(original or question, chunk.chunk_id, [p for p, _ in sentences])
                if scorer is not None
                else [None] * len(sentences)
            )
            for (position, sentence), z in zip(sentences, meaning, strict=True):
                tokens = frozenset(self.tokenize(sentence))
                in_sentence = sum(w for t, w in weights.items() if t in tokens) / total if total else 0.0
                in_header = (
                    sum(w for t, w in weights.items() if t in header and t not in tokens) / total if total else 0.0
                )
                coverage = in_sentence + in_header
                score = coverage + BONUS_RANK / (1 + index) + BONUS_BIGRAM * _bigram_overlap(q_grams, sentence)
                semantic = z if z is not None else 0.0
                score += BONUS_SEMANTIC * min(1.0, max(0.0, (semantic - SEM_FLOOR) / SEM_SPAN))
                if listing:
                    score += BONUS_LIST * min(1.0, sentence.count("、") / 3)
                if section_match:
                    score += BONUS_SECTION
                if any(intent.cue.search(sentence) for intent in wanted):
                    score += BONUS_CUE
                if english and _is_english(sentence):
                    score += BONUS_ENGLISH
                if not chunk.section and position == 0:
                    score += BONUS_LEAD  # an entry's opening sentence says what the entity is
                out.append(_Candidate(sentence, index, position, score, coverage, tokens, semantic, chunk.title))
        return out

    @staticmethod
    def _with_list(candidate: _Candidate, passages: Sequence[Passage], limit: int = 5) -> str:
        """A sentence that introduces a list ("…如下：", "按以下顺序…") brings the list items that follow it."""
        sentence = candidate.sentence.rstrip()
        if not (sentence.endswith(("：", ":")) or _LIST_INTRO.search(sentence)):
            return candidate.sentence
        following = split_sentences(passages[candidate.passage_index].text)[candidate.position + 1 :]
        items = [s.rstrip("。；;") for s in following[:limit]]
        return candidate.sentence + "；".join(items) + "。" if items else candidate.sentence

    def _choose(
        self, candidates: list[_Candidate], english: bool, limit: int, listing: bool = False
    ) -> list[_Candidate]:
        ranked = sorted(candidates, key=lambda c: (-c.score, c.passage_index, c.position))
        best = ranked[0]
        chosen = [best]
        for cand in ranked[1:]:
            if len(chosen) >= limit:
                break
            if cand.score < 0.5 * best.score:
                break
            if any(_similar(cand.tokens, c.tokens) or cand.sentence == c.sentence for c in chosen):
                continue
            if english and _is_english(cand.sentence) and any(_is_english(c.sentence) for c in chosen):
                continue
            # A list answer is one line per entry: a second sentence of an entry already listed adds length, not items.
            if listing and any(c.title == cand.title for c in chosen) and not english:
                continue
            chosen.append(cand)
        # Read in the order the knowledge base tells it: the best passage first, then by position.
        head, rest = chosen[0], sorted(chosen[1:], key=lambda c: (c.passage_index, c.position))
        return [head, *rest]


_NEGATIVE_ZH = re.compile(r"没有|不支持|不能|无法|不可以|不可|不会|并不|并非|不是|不需要|不提供|不包含|不含|没")
_NEGATIVE_EN = re.compile(r"\bno\b|\bnot\b|n't\b|\bnever\b|\bwithout\b|\bneither\b|\bnor\b", re.I)
_UNSURE = re.compile(
    r"说法不一|未明言|未明确|不确定|尚未公布|尚无|未公布|官方未|unclear|not confirmed|unannounced", re.I
)
# The verb a Chinese yes/no question turns on, and its yes and no answers: 能不能… -> 能 / 不能.
_ZH_VERDICTS = (
    (re.compile(r"有没有|有.{0,14}" + _ASKS), "有", "没有"),
    (re.compile(r"能不能|能.{0,14}" + _ASKS), "能", "不能"),
    (re.compile(r"可不可以|可以不|可以.{0,14}" + _ASKS), "可以", "不可以"),
    (re.compile(r"支不支持|支持.{0,14}" + _ASKS), "支持", "不支持"),
    (re.compile(r"需不需要|要不要|需要.{0,14}" + _ASKS), "需要", "不需要"),
    (re.compile(r"会不会|会.{0,14}" + _ASKS), "会", "不会"),
    (re.compile(r"是不是|是.{0,14}" + _ASKS), "是", "不是"),
)


def _verdict(question: str, lead: _Candidate, english: bool) -> str:
    """Yes or no, as the leading sentence states it; "" when it is not sure enough to say."""
    sure = (lead.coverage >= VERDICT_SURE and lead.predicate >= VERDICT_SURE) or lead.semantic >= SEM_ANSWER
    if not sure or _UNSURE.search(lead.sentence):
        return ""
    if english:
        if not _is_english(lead.sentence):
            negative = bool(_NEGATIVE_ZH.search(lead.sentence))
        else:
            negative = bool(_NEGATIVE_EN.search(lead.sentence))
        return "No." if negative else "Yes."
    for pattern, yes, no in _ZH_VERDICTS:
        if pattern.search(question):
            return no if _NEGATIVE_ZH.search(lead.sentence) else yes
    return ""


def _stray_characters(tokens: Sequence[str]) -> set[str]:
    """Chinese characters the tokenizer left standing alone three or more in a row: a name it does not know
    (紫/霄/雷/猿), not a word of the knowledge base."""
    out: set[str] = set()
    run: list[str] = []
    for token in [*tokens, ""]:
        if len(token) == 1 and is_cjk(token):
            run.append(token)
            continue
        if len(run) >= STRAY_RUN:
            out.update(run)
        run = []
    return out


_LIST_INTRO = re.compile(r"(?:如下|以下|下列)[^。，,]{0,8}[。：:]?$")
_YEAR = re.compile(r"(?<!\d)(1[5-9]\d\d|20\d\d)(?!\d)")


def _years_unmentioned(question: str, passages: Sequence[Passage]) -> bool:
    """True when the question names a year that none of the passages mentions."""
    years = set(_YEAR.findall(question))
    if not years:
        return False
    seen = {y for p in passages for y in _YEAR.findall(f"{p.chunk.section} {p.text}")}
    return not years & seen


def _bigrams(text: str) -> set[str]:
    """Chinese character pairs: they catch near-synonyms jieba splits apart (原形 / 原身 …)."""
    han = "".join(ch if is_cjk(ch) else " " for ch in text)
    return {w[i : i + 2] for w in han.split() for i in range(len(w) - 1)}


def _bigram_overlap(question_grams: set[str], sentence: str) -> float:
    if not question_grams:
        return 0.0
    return len(question_grams & _bigrams(sentence)) / len(question_grams)


def _section_matches(section: str, wanted: tuple[str, ...]) -> bool:
    return any((word in section) if word else not section for word in wanted)


def _is_english(sentence: str) -> bool:
    return mostly_english(sentence)


def _similar(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:
        return False
    return len(a & b) / len(a | b) > SIMILAR


def _cite(sentence: str, n: int) -> str:
    """Put the citation before the sentence's closing punctuation: 黑风山[1]。"""
    sentence = sentence.strip()
    if _is_english(sentence):
        return f"{sentence} [{n}] "
    if sentence and sentence[-1] in "。！？；!?…":
        return f"{sentence[:-1]}[{n}]{sentence[-1]}"
    return f"{sentence}[{n}]。"
