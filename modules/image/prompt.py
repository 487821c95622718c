"""A player's request ("帮我画一张天命人在雪山上的水墨画") -> a Stable Diffusion prompt the UI shows.

Chinese is read by longest match against the curated table (modules/image/prompt_terms.py), the knowledge
base's names (a boss or place becomes its English alias) and a list of request words that carry no
picture ("帮我", "一张", "的图"). What is left unknown is dropped and listed in the notes. English
requests keep their words, minus the request phrasing, with game names spelled out. "不要 X" goes to
the negative prompt. The Destined One brings the LoRA's trigger words. When a chat model is given it
polishes the draft; an answer that is not a usable prompt leaves the draft.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from modules.image import prompt_terms
from modules.image.settings import ImageSettings
from modules.rag.types import Document

log = logging.getLogger(__name__)

MAX_PROMPT_WORDS = 60  # CLIP reads 77 tokens; beyond that the text encoder never sees the words
KB_CATEGORIES = {"boss": ", a yaoguai demon", "character": "", "area": ", landscape"}
_CJK = re.compile(r"[\u4e00-\u9fff]")
_NEGATION = re.compile(r"(?:不要|不想要|别|不带|去掉|没有|无需)([^，,。；;！!？?]+)")
_EN_REQUEST = re.compile(
    r"^(?:(?:please|pls|plz|hey|hi|ok|okay|yo|wukong|can you|could you|would you|will you|can u|could u|"
    r"i want you to|i'd like you to|i want|i'd like|i need|i'd love|give me|gimme|let me see)[\s,!]+)*"
    r"(?:(?:draw|paint|sketch|illustrate|render|doodle|generate|create|make|give|show|design|do)(?: me| us)?\s+)?"
    r"(?:(?:a|an|some|another|one|new)\s+)?"
    r"(?:(?:picture|image|pic|drawing|painting|illustration|wallpaper|poster|portrait|avatar|sketch|render|"
    r"artwork|fan art|art)s?\s+(?:of|with|for|showing)\s+)?",
    re.IGNORECASE,
)
_ENGLISH_TERMS = re.compile(
    "|".join(rf"\b{re.escape(k)}\b" for k in sorted(prompt_terms.ENGLISH, key=len, reverse=True)), re.IGNORECASE
)
_EN_TAIL = re.compile(r"[\s,.!?]*(?:please|pls|for me|thanks|thank you)?[\s,.!?]*$", re.IGNORECASE)


@dataclass(frozen=True)
class PromptPlan:
    """The prompt that will be drawn, and what happened on the way (shown to the player)."""

    prompt: str
    negative_prompt: str
    notes: tuple[str, ...] = ()
    refined: bool = False  # the chat model's rewrite was used


@dataclass(frozen=True)
class _Piece:
    kind: str  # subject | scene | detail | style | general | kb | filler | english
    text: str


def kb_names(documents: Iterable[Document]) -> dict[str, str]:
    """Chinese name -> English phrase for the knowledge base's bosses, characters and places."""
    names: dict[str, str] = {}
    for doc in documents:
        suffix = KB_CATEGORIES.get(doc.category)
        if suffix is None:
            continue
        english = next((a.strip("'\" ") for a in doc.aliases if a.isascii() and a.strip("'\" ")), "")
        if not english:
            continue
        for name in doc.names:
            # Single characters and "…地图" aliases would swallow ordinary words.
            if _CJK.search(name) and len(name) > 1 and "地图" not in name and "·" not in name:
                names.setdefault(name.strip("“”\"' "), english + suffix)
    return names


@lru_cache(maxsize=8)
def _lexicon(names: tuple[tuple[str, str], ...]) -> tuple[dict[str, _Piece], int]:
    table: dict[str, _Piece] = {}
    # Later tables win: request words < knowledge base < everyday words < the curated game table.
    for word in prompt_terms.FILLERS:
        table[word] = _Piece("filler", "")
    for name, english in names:
        table[name] = _Piece("kb", english)
    for kind, source in (
        ("general", prompt_terms.GENERAL),
        ("scene", prompt_terms.SCENES),
        ("detail", prompt_terms.DETAILS),
        ("style", prompt_terms.STYLES),
        ("subject", prompt_terms.SUBJECTS),
    ):
        for word, english in source.items():
            table[word.lower()] = _Piece(kind, english)
    return table, max(len(k) for k in table)


def _scan(text: str, table: dict[str, _Piece], longest: int) -> tuple[list[_Piece], list[str]]:
    """Longest-match pieces of a (lowercased) request, and the unknown Chinese runs left over."""
    pieces: list[_Piece] = []
    unknown: list[str] = []
    run = ""
    i = 0
    while i < len(text):
        for size in range(min(longest, len(text) - i), 0, -1):
            piece = table.get(text[i : i + size])
            if piece is not None:
                break
        else:
            piece, size = None, 1
        if piece is not None:
            if run:
                unknown.append(run)
                run = ""
            if piece.kind != "filler":
                pieces.append(piece)
            i += size
            continue
        char = text[i]
        if _CJK.match(char):
            run += char
            i += 1
            continue
        if run:
            unknown.append(run)
            run = ""
        match = re.match(r"[^\u4e00-\u9fff]+", text[i:])
        english = match.group(0) if match else char
        words = english.strip(" ，,。.、；;：:！!？?~-")
        if words:
            pieces.append(_Piece("english", _english(words)))
        i += len(english)
    if run:
        unknown.append(run)
    return pieces, unknown


def _english(text: str) -> str:
    """An English request with the request phrasing removed and game names spelled out."""
    text = _EN_REQUEST.sub("", text.strip(), count=1)
    text = _EN_TAIL.sub("", text)
    return _spell_out(text).strip(" ,")


def _spell_out(text: str) -> str:
    """The game terms of an English text spelled out for SD, the words around a term that its spelling
    already has not said twice: "chinese ink wash painting" or a prompt this module wrote stay as they are.
    """
    out: list[str] = []
    pos = 0
    lowered = text.lower()
    for match in _ENGLISH_TERMS.finditer(text):
        if match.start() < pos:
            continue
        term = match.group(0).lower()
        full = prompt_terms.ENGLISH[term]
        at = full.lower().find(term)
        left = right = 0
        if at >= 0:
            left = _overlap(lowered[pos : match.start()][::-1], full.lower()[:at][::-1])
            right = _overlap(lowered[match.end() :], full.lower()[at + len(term) :])
        out += [text[pos : match.start() - left], full]
        pos = match.end() + right
    out.append(text[pos:])
    return "".join(out)


def _overlap(text: str, spelling: str) -> int:
    """How much of ``spelling``'s start ``text`` starts with, in whole words (both read away from a term)."""
    size = 0
    while size < min(len(text), len(spelling)) and text[size] == spelling[size]:
        size += 1
    while size and not (
        (size == len(text) or not text[size].isalnum()) and (size == len(spelling) or not spelling[size].isalnum())
    ):
        size -= 1
    return size


def _unique_phrases(prompt: str) -> str:
    """Each comma-separated phrase once, where it last came, spelt as it first came (CLIP reads lower case).

    The quality tags stay last, and a finished prompt sent back in (an engine app drawing for another,
    image.backend=openai) comes out as it went in, not with its trigger words or tags twice.
    """
    spelling: dict[str, str] = {}
    last: dict[str, int] = {}
    for i, phrase in enumerate(p.strip() for p in prompt.split(",")):
        if phrase:
            spelling.setdefault(phrase.lower(), phrase)
            last[phrase.lower()] = i
    return ", ".join(spelling[key] for key in sorted(last, key=last.__getitem__))


def _join(phrases: list[str]) -> str:
    out: list[str] = []
    glue_next = False
    for phrase in phrases:
        if not phrase:
            continue
        if glue_next and out:
            out[-1] = f"{out[-1]} {phrase}"
        elif phrase not in out:
            out.append(phrase)
        glue_next = phrase in prompt_terms.JOINS_NEXT
    return ", ".join(out)


def _lora_trigger_words(settings: ImageSettings, repo_root: Path) -> str:
    if settings.lora.trigger_words.strip():
        return settings.lora.trigger_words.strip()
    if not settings.lora.path:
        return ""
    from modules.image.diffusers_gen import lora_metadata, resolve_lora_file, trigger_words_from_metadata

    try:
        return trigger_words_from_metadata(
            lora_metadata(resolve_lora_file(settings.lora.path, "image.lora.path", repo_root))
        )
    except Exception as exc:  # the generator reports a broken LoRA when it loads; a prompt is still a prompt
        log.warning("image prompt: cannot read the LoRA's trigger words: %s", exc)
        return ""


def build_prompt(
    text: str,
    settings: ImageSettings,
    refine: Callable[[str], str] | None = None,
    *,
    names: Mapping[str, str],
    trigger_words: str | None = None,
    root: Path | None = None,
) -> PromptPlan:
    """Turn a drawing request into a PromptPlan.

    ``names`` maps Chinese names to English (the knowledge base's, see ``kb_names``); ``trigger_words``
    default to image.lora.trigger_words or the metadata of the LoRA file (a relative path resolved against
    ``root``); ``refine`` (a chat model: prompt text in, text out) polishes the draft when
    image.refine_prompt is on.
    """
    request = text.strip()
    if not request:
        raise ValueError("a drawing request needs some text: say what to draw")
    triggers = _lora_trigger_words(settings, root or Path.cwd()) if trigger_words is None else trigger_words.strip()
    table, longest = _lexicon(tuple(sorted(names.items())))
    notes: list[str] = []

    lowered = request.lower()
    negatives: list[str] = []
    for match in _NEGATION.finditer(lowered):
        neg_pieces, _ = _scan(match.group(1), table, longest)
        negatives += [p.text for p in neg_pieces if p.text]
    lowered = _NEGATION.sub("，", lowered)

    pieces, unknown = _scan(lowered, table, longest)
    content = [p.text for p in pieces if p.kind != "style" and p.text]
    styles = [p.text for p in pieces if p.kind == "style"]
    destined = any(prompt_terms.DESTINED_ONE in p.text for p in pieces)
    if not any(p.kind in ("subject", "kb", "general", "english") for p in pieces):
        content.insert(0, prompt_terms.DESTINED_ONE)
        destined = True
        notes.append("没有说画谁，默认画天命人")
    if unknown:
        notes.append(f"没认出的词已略去：{'、'.join(dict.fromkeys(unknown))}")
    if destined and triggers:
        content.insert(0, triggers)
        notes.append(f"天命人：加上 LoRA 触发词 {triggers}")
    # Styles follow the content whatever order the player said them in, then the quality tags.
    # A request that already carries the quality tags is a finished prompt (an engine app drawing for
    # another, image.backend=openai): it keeps its own style instead of getting the default one too.
    quality = prompt_terms.QUALITY[settings.family]
    finished = all(tag.strip() in lowered for tag in quality.lower().split(","))
    parts = [_join(content)] if finished else [_join(content), _join(styles or [prompt_terms.DEFAULT_STYLE]), quality]
    prompt = _unique_phrases(", ".join(parts))
    negative = ", ".join(dict.fromkeys([*negatives, settings.negative_prompt.strip()]))
    negative = negative.strip(", ")

    refined = False
    if refine is not None and settings.refine_prompt:
        polished = _refine(refine, request, prompt, triggers if destined else "")
        if polished:
            prompt, refined = polished, True
            notes.append("聊天模型润色了提示词")
        else:
            notes.append("聊天模型的改写不可用，保留规则生成的提示词")
    if len(re.findall(r"[\w']+", prompt)) > MAX_PROMPT_WORDS:
        notes.append("提示词较长：Stable Diffusion 只读前 77 个 token，靠后的词可能被忽略")
    return PromptPlan(prompt=prompt, negative_prompt=negative, notes=tuple(notes), refined=refined)


REFINE_PROMPT = (
    "Rewrite the picture request below as ONE English Stable Diffusion prompt: comma-separated visual phrases, "
    "at most 50 words, no sentences, no explanation, no quotes. Keep the meaning of the draft; keep these words "
    "exactly: {keep}.\nRequest: {request}\nDraft: {draft}\nPrompt:"
)


def _refine(refine: Callable[[str], str], request: str, draft: str, triggers: str) -> str:
    """The chat model's rewrite of the draft, or "" when it failed or is not a usable prompt."""
    keep = triggers or "(none)"
    try:
        answer = refine(REFINE_PROMPT.format(keep=keep, request=request, draft=draft))
    except Exception as exc:  # polishing is optional: the rule-built prompt stands
        log.warning("image prompt: the chat model could not refine the prompt: %s", exc)
        return ""
    answer = re.sub(r"<think>.*?</think>", "", answer or "", flags=re.DOTALL)
    lines = [line.strip() for line in answer.splitlines() if line.strip()]
    if not lines:
        return ""
    line = re.sub(r"^(?:prompt|positive prompt|提示词)\s*[:：]\s*", "", lines[0], flags=re.IGNORECASE)
    line = line.strip(" \"'`“”")
    cjk = len(_CJK.findall(line))
    words = re.findall(r"[A-Za-z][\w'-]*", line)
    if len(words) < 3 or cjk > len(line) // 5 or len(line) > 600:
        return ""
    if triggers and triggers.lower() not in line.lower():
        line = f"{triggers}, {line}"
    return line
