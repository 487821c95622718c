"""Chat or picture? Routing a player's message, with rules first and the chat model for the unclear rest.

The word 画 ("draw", but also "picture" in 画面/画质 graphics, 壁画 murals, 动画 animation …) and
"draw" (draw aggro, draw distance, who drew …) are the traps. The rules find a *request* to draw:
a drawing verb used as a verb, addressed to the assistant, or a make/give/want verb whose object is a
picture (图/壁纸/头像 …, "a picture/wallpaper of"). Questions about pictures that already exist
(who drew the concept art, where is the mural, how do I change the graphics) stay chat.

Messages that look like a picture request without saying so ("来一张天命人", "show me the Destined
One in snow", "水墨风天命人") are *not confident*: the chat model is asked when one is given, else
the rule's guess stands.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

Intent = Literal["chat", "image"]


@dataclass(frozen=True)
class IntentDecision:
    """Where a message goes, why (for logs and tests), and whether the rules were sure."""

    intent: Intent
    reason: str
    confident: bool


# -- Chinese ------------------------------------------------------------------------------------

# 画 is a noun (not "draw") after these characters: 壁画 漫画 动画 原画 国画 油画 图画 绘画 插画 水墨画 …
_HUA_NOUN_BEFORE = set("壁漫动原国油版年名字书图绘刻比插墨笔彩计策")
# … and before these: 画面 画质 画风 画卷 画册 画师 画家 画像 画作 画展 画皮 画符 画饼 画中仙 画里 …
_HUA_NOUN_AFTER = set("面质卷册师家手工像作布展廊皮符饼室集板龙蛇圈眉框中里外报架笔")
# Words that make a drawing verb a question or a statement about someone else's drawing.
_HOW_OR_WHO = re.compile(r"(谁|哪位|哪个|怎么|怎样|如何|咋|被|是不是|学|教我|练习|练)[^，,。！!？?]{0,3}$")
# "X的同人画" at the end of a clause: a painting (noun), not "draw".
_NOUN_PHRASE_END = re.compile(r"的[^，,。！!？?的]{0,3}$")
_CAPABILITY = re.compile(r"(会|能|可以|能不能|会不会)(画|绘画)(画)?(吗|嘛|么|不|呢|[?？]|$)")
_DONE_AFTER = re.compile(r"^(画)?(得|过|着|的|了(?!一|个|张|幅))")
# Idioms with 画 that draw nothing: 画重点 (highlight), 画大饼 (empty promises), 画押, 画等号, 画上句号 …
_HUA_IDIOM_AFTER = re.compile(r"^(重点|大饼|押|等号|上?句号|问号|虎不成|勾|叉|横线|线)")
# 画 after a measure word or 的 is "a painting": 那幅画, 这张画, 图鉴里的画.
_HUA_AFTER_MEASURE = set("幅张的")
_ZH_DRAW_VERB = re.compile(r"画|绘制|描绘")

# Things you can ask to be made that are pictures …
_ZH_PICTURE = re.compile(
    r"图片|图像|照片|相片|壁纸|头像|插画|插图|海报|立绘|表情包|画像|全身像|美图|封面|写真|同人图|形象图|"
    r"(?<![地神截线略程意企试拼示置布版蓝宏])图(?![鉴标腾纸文书表层率])|"
    rf"(?<![{''.join(sorted(_HUA_NOUN_BEFORE))}])画(?![{''.join(sorted(_HUA_NOUN_AFTER))}])"
)
# … and things that are not, though they are "made" with the same verbs.
_ZH_NOT_PICTURE = re.compile(
    r"地图|路线图|影神图|图鉴|截图|攻略|方案|配装|表格|清单|列表|流程|路线|存档|答案|回答|文案|总结|主意|台词|故事|打法|教程|"
    r"视频|介绍|建议|推荐|说明|下载|一句|一段|一口|一局|一把|一下子"
)
# Verbs that ask for something to be made or handed over.
_ZH_MAKE = re.compile(r"(来|整|弄|搞|做|生成|出|要|给我|给俺|求|发|[pP])(?!过|了|的|自|现|来|去|门|发)")
_ZH_PICTURE_CLASSIFIER = re.compile(r"^(一|两|几|再)?(张|幅|副)")
_ZH_QUESTION = re.compile(
    r"[吗呢么嘛?？]|什么|怎么|怎样|如何|哪|谁|为什么|为啥|多少|第几|几个|是不是|有没有|能不能|可不可以|会不会|是否|咋|啥"
)
# Questions that ask for information (not the polite 能…吗 of a request).
_ZH_ASKING = re.compile(r"什么|怎么|怎样|如何|哪|谁|为什么|为啥|多少|第几|是不是|有没有|是否|咋|啥")
# Verbs that look something up rather than make it.
_ZH_LOOK_UP = re.compile(r"查|搜|找|讲|说说|介绍|推荐|下载|告诉|分享")
_ZH_STYLE = re.compile(r"水墨|国风|赛博朋克|像素风|像素|Q版|q版|二次元|油画风|浮世绘|工笔|写实风|手绘|素描|水彩|剪纸")

# -- English ------------------------------------------------------------------------------------

_EN_DRAW = r"(?:draw|paint|sketch|illustrate|render|doodle)"
_EN_PICTURE = (
    r"(?:pictures?|pics?|images?|imgs?|drawings?|paintings?|illustrations?|wallpapers?|posters?|avatars?|pfps?|"
    r"portraits?|sketch(?:es)?|renders?|fan ?art|artworks?|art|photos?|selfies?|profile pic(?:ture)?)"
)
_EN_LEAD = (
    r"^(?:(?:please|pls|plz|hey|hi|ok|okay|now|also|then|so|and|just|quickly|quick|yo|hmm|alright|wukong|"
    r"can you|could you|would you|will you|can u|could u|would u|will u|you|i want you to|i'd like you to|"
    r"id like you to|i need you to|try to|go ahead and|let's|lets|wanna|want to|mind to|maybe)[\s,!]+)*"
)
_EN_DRAW_REQUEST = re.compile(_EN_LEAD + _EN_DRAW + r"\b(?!\s+(?:distance|calls?)\b)")
_EN_DRAW_ME = re.compile(r"\b" + _EN_DRAW + r" (?:me|us)\b")
_EN_NOT_DRAWING = re.compile(
    r"\bwho (?:drew|painted|illustrated|designed|made|created|did|draws|paints)\b|"
    r"\b(?:drawn|painted|illustrated|designed|made) by\b|"
    r"\bdraw(?:s|ing)? (?:\w+'s |the \w+'s |their |his |her |its |enemy |the )?"
    r"(?:aggro|agro|attention|fire|hate|threat)\b|"
    r"\bdraw(?:s|ing)? (?:out|away|distance|calls?|back|near|closer|level|your|my)\b|"
    r"\bhow (?:do|can|should|would|to|did|does)\b.*\b" + _EN_DRAW + r"\b"
)
_EN_MAKE_PICTURE = re.compile(
    r"\b(?:generate|create|make|give|show|design|produce|send|whip up)"
    r"(?: me| us)?"
    r"(?: (?:a|an|some|another|one|two|three|\d+|new|quick|cool|nice|cute|little|big|hd|high-res|\w+-style))+"
    r"(?: [\w-]+){0,3} " + _EN_PICTURE + r"\b"
)
_EN_MAKE_ART_OF = re.compile(
    r"\b(?:generate|create|make|give|show|design|send|do)(?: me| us)?(?: (?:a|an|another|one|some|new))? "
    + _EN_PICTURE
    + r" of\b"
)
_EN_WANT_PICTURE = re.compile(
    r"^(?:i want|i'd like|id like|i need|can i (?:get|have)|could i (?:get|have)|gimme|give me|let me see|"
    r"i wanna see|i'd love)\b.*\b" + _EN_PICTURE + r"\b"
)
_EN_GENERATE = re.compile(_EN_LEAD + r"(?:generate|create|imagine|visualize|visualise)\b")
_EN_SHOW_ME = re.compile(
    _EN_LEAD + r"show me\b(?! (?:where|how|what|when|which|why|who|the way|a video|a guide|the map|the route|"
    r"the location|around)\b)"
)
_EN_PICTURE_OF = re.compile(r"^(?:a |an |some )?" + _EN_PICTURE + r" of\b")
_EN_QUESTION = re.compile(
    r"\?|^(?:what|why|how|who|where|when|which|is|are|was|were|does|do|did|can i|should|any|whats|what's)\b"
)
_EN_STYLE = re.compile(
    r"\b(?:ink wash|ink painting|ink style|cyberpunk|pixel art|chibi|anime style|oil painting|watercolou?r|ukiyo-e|"
    r"wallpaper|fan ?art)\b"
)
_EN_NOT_PICTURE = re.compile(
    r"\b(?:list|checklist|build|guide|summary|plan|route|walkthrough|table|map|loadout|explanation|tier list|tips?|"
    r"advice|ideas?|names?|text|story|description|strateg(?:y|ies)|answers?|steps|combos?|notes|lore|backstory|"
    r"history|stats|weakness(?:es)?|location|moveset|ending|cutscenes?|videos?|clips?)\b"
)


# Traditional characters of the words the rules read, so 幫我畫一張 routes like 帮我画一张.
_TRADITIONAL = str.maketrans(
    "畫圖張幫給來紙頭繪製質麼嗎誰這個們樣為裡裏貼會還設動啟幾樂風點學練問難將機",
    "画图张帮给来纸头绘制质么吗谁这个们样为里里贴会还设动启几乐风点学练问难将机",
)


def _normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(_TRADITIONAL).strip().lower()


def _clauses(text: str) -> list[str]:
    # Not split at colons: "生成：天命人，雪山" names what to make after one.
    return [c.strip() for c in re.split(r"[，,。.!！；;\n]+", text) if c.strip()]


def _verbal_draw(text: str) -> tuple[bool, str]:
    """(a drawing verb asks for a picture, why) for Chinese text."""
    found_other = ""
    for match in _ZH_DRAW_VERB.finditer(text):
        start, end = match.span()
        word = match.group(0)
        before, after = text[:start], text[end:]
        if word == "画":
            if before.endswith(tuple(_HUA_NOUN_BEFORE | _HUA_AFTER_MEASURE)) and not before.endswith("画"):
                continue
            if (
                _HUA_IDIOM_AFTER.match(after)
                or after[:1] in _HUA_NOUN_AFTER
                or (after.startswith("风") and not after.startswith("风景"))
            ):
                continue
            if re.match(r"^([吗呢吧啊]|[，,。！!？?]|$)", after) and _NOUN_PHRASE_END.search(before):
                continue
        clause = re.split(r"[，,。！!？?；;]", before)[-1]
        if "把" in clause and not _ZH_QUESTION.search(text):
            # 把天命人画成… / 把黄眉画得帅一点: the 把 construction is an instruction.
            return True, f"'把 … {word}' instruction"
        if _HOW_OR_WHO.search(before):
            found_other = f"{word}: asks how or who"
            continue
        if _CAPABILITY.search(text[max(0, start - 4) : end + 3]):
            found_other = f"{word}: asks whether it can draw"
            continue
        if _DONE_AFTER.match(after):
            found_other = f"{word}: talks about a drawing that exists"
            continue
        return True, f"drawing verb {word!r} used as a request"
    return False, found_other


def _make_picture(clause: str) -> tuple[Intent | None, bool, str]:
    """A make/give/want verb in one Chinese clause: (intent, confident, reason) or (None, …)."""
    if _ZH_ASKING.search(clause):
        return None, False, ""
    for verb in _ZH_MAKE.finditer(clause):
        rest = clause[verb.end() :]
        if _ZH_NOT_PICTURE.search(rest):
            continue
        if _ZH_PICTURE.search(rest):
            return "image", True, f"{verb.group(0)!r} asks for a picture"
        if _ZH_PICTURE_CLASSIFIER.match(rest):
            # 来一张天命人: a picture's measure word, but no word for "picture".
            confident = verb.group(0) == "生成"
            return "image", confident, f"{verb.group(0)!r} with a picture's measure word"
        if verb.group(0) == "生成" and rest and not _ZH_QUESTION.search(rest):
            return "image", False, "'生成' with something to show"
    return None, False, ""


def _classify_zh(text: str) -> IntentDecision | None:
    drawing, why = _verbal_draw(text)
    if drawing:
        return IntentDecision("image", why, True)
    guess: IntentDecision | None = None
    for clause in _clauses(text):
        intent, confident, reason = _make_picture(clause)
        if intent and confident:
            return IntentDecision(intent, reason, True)
        if intent and guess is None:
            guess = IntentDecision(intent, reason, False)
    if guess:
        return guess
    if why:
        return IntentDecision("chat", why, True)
    if _ZH_QUESTION.search(text) or _ZH_NOT_PICTURE.search(text) or _ZH_LOOK_UP.search(text):
        return None
    if _ZH_STYLE.search(text) or _ZH_PICTURE.search(text):
        return IntentDecision("image", "a picture or art style named, no question", False)
    return None


def _classify_en(text: str) -> IntentDecision | None:
    if _EN_NOT_DRAWING.search(text):
        return IntentDecision("chat", "about drawing, not a request to draw", True)
    if _EN_DRAW_REQUEST.search(text) or _EN_DRAW_ME.search(text):
        return IntentDecision("image", "drawing verb used as a request", True)
    question = bool(_EN_QUESTION.search(text)) and not re.match(r"(?:can|could|would|will) (?:you|u)\b", text)
    if not _EN_NOT_PICTURE.search(text):
        if _EN_WANT_PICTURE.search(text) or _EN_MAKE_ART_OF.search(text):
            return IntentDecision("image", "asks for a picture", True)
        if (
            not question
            and _EN_MAKE_PICTURE.search(text)
            and not re.search(r"\b(?:the|my|this|that) " + _EN_PICTURE + r"\b", text)
        ):
            return IntentDecision("image", "asks for a picture to be made", True)
        if not question and (_EN_SHOW_ME.search(text) or _EN_GENERATE.search(text) or _EN_PICTURE_OF.search(text)):
            return IntentDecision("image", "sounds like a picture request", False)
        if not question and _EN_STYLE.search(text):
            return IntentDecision("image", "an art style named, no question", False)
    return None


def rule_decision(text: str) -> IntentDecision:
    """The rules' verdict alone."""
    norm = _normalize(text)
    if not norm:
        return IntentDecision("chat", "empty", True)
    decision = _classify_zh(norm) if re.search(r"[\u4e00-\u9fff]", norm) else None
    if decision is None:
        decision = _classify_en(norm)
    if decision is not None:
        return decision
    weak = bool(_ZH_STYLE.search(norm) or _EN_STYLE.search(norm))
    return IntentDecision("chat", "no request for a picture", not weak)


ASK_PROMPT = (
    "你是《黑神话：悟空》助手里的分流器。玩家的消息如果是要你画一张图/生成图片，回答 yes；"
    "如果是提问、聊天或要文字内容，回答 no。只回答 yes 或 no。\n玩家：{text}"
)
_YES = re.compile(r"^\W*(yes|y|是|要|画|对|image|picture)", re.IGNORECASE)
_NO = re.compile(r"^\W*(no|n|不|否|chat|text)", re.IGNORECASE)


def classify(text: str, ask_model: Callable[[str], str] | None = None) -> IntentDecision:
    """Route a message: rules first; when they are unsure, ``ask_model`` (yes/no text) decides."""
    decision = rule_decision(text)
    if decision.confident or ask_model is None:
        return decision
    try:
        answer = ask_model(ASK_PROMPT.format(text=text.strip()))
    except Exception as exc:  # the model is only a tie-breaker: its failure leaves the rules' guess
        log.warning("intent: the chat model could not be asked (%s); keeping the rules' guess", exc)
        return decision
    answer = re.sub(r"<think>.*?</think>", "", answer or "", flags=re.DOTALL).strip()
    if _YES.match(answer):
        return IntentDecision("image", f"chat model said yes ({decision.reason})", True)
    if _NO.match(answer):
        return IntentDecision("chat", f"chat model said no ({decision.reason})", True)
    log.info("intent: unclear model answer %r; keeping the rules' guess", answer[:40])
    return decision
