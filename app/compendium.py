"""The 图鉴 (Compendium): the knowledge base as shelves a player browses, and the tab that shows it.

The data part (``Compendium``) is plain Python over ``modules.rag.types.Document``; only
``build_compendium_tab`` touches gradio.

Shelves, in the order a player sees them (``SHELVES``)
-------------------------------------------------------
Every entry has exactly one *home* shelf, chosen by its ``category`` (= its folder):

- 章节 Chapters: the ``chapter`` entries by chapter number (序章 = 0 first), each followed by its
  bosses in the order they are fought (see "Boss order" below). Bosses are listed here *and* on their
  home shelf, 妖王 Bosses.
- 妖王 Bosses: ``boss`` entries, chapter by chapter in the same fought order; a boss no chapter lists
  comes after them (by chapter, then file).
- 人物 Characters (``character``), 地点 Areas (``area``).
- 法术与变化 Spells & transformations and 物品 Items: the ``combat`` entries, split by the rule below.
- 剧情与结局 Story & endings (``story``: lore, the six roots, the endings, the cross-KB overviews).
- 战斗与系统 Combat & mechanics: the remaining ``combat`` entries (stances, attacks, focus, stamina,
  mana, Will, sparks, shrines, death, NG+, the banes, drops).
- 常见问题 FAQ, 西游记原著 Journey to the West (``novel``), 文化与古迹 Culture, 游戏资讯 About the
  game (``game``), 美术与音乐 Art & music (``art``), 梗与彩蛋 Memes & easter eggs (``meme``).
- 其他 Other: any other category, or none (the player's own documents, plain text, JSONL records),
  so that every document is on some shelf. ``shelves()`` lists only shelves that have entries.

Boss order
----------
A chapter entry's front matter carries ``bosses:``, the titles of every boss of that chapter "in the
order a player meets them" (assets/knowledge/README.md); the overview entry 各回头目一览 repeats the
same lists in prose ("第三回……的头目依次是赤尻马猴、亢金龙……"), and the tests hold the two together. A
chapter without ``bosses:`` falls back to the boss entries with its ``chapter`` number, in file order.

Spells & transformations vs items (``combat`` entries)
------------------------------------------------------
The KB README names what ``combat/`` holds: "stances, focus, spells, transformations, spirits,
vessels, gourds, curios, armour, staffs, mechanics". Each kind has a *system entry* that explains it,
titled with the kind's Chinese name; ``SPELL_SYSTEMS`` and ``ITEM_SYSTEMS`` below are those titles
(spells 法术, transformations 变化, spirits 精魄 — a spirit briefly turns the Destined One into the
yaoguai; vessels 法宝, gourds 葫芦, curios 珍玩, armour 披挂, staffs 武器, and the consumables 丹药,
仙丹, 酒, 泡酒物). A ``combat`` entry belongs to a kind when

1. it is the kind's system entry, or the kind's list entry ``<system>一览`` (法术一览, 法宝一览 …);
2. the system entry or its list names it at the head of a list item ("- 定身法属于奇术…",
   "- 赤潮（Red Tides）：化身广智…" names 变化·广智 by its alias 赤潮); names of one character are
   ignored;
3. its title is ``<system>·<name>`` (变化·广智, 精魄·虎伥: the KB's naming of a system's member); or
4. (items only) its title ends in 套: the KB's armour sets (大圣套, 百戏套).

Spell kinds are tried before item kinds; a ``combat`` entry of no kind is on 战斗与系统. Within the two
shelves entries follow the kinds' order: system entry, its list, then members as the lists name them.

Order on the other shelves: list entries (``overview-*`` files or titles ending in 一览) first, then
the entries in the order those lists' ``related:`` name them, then entries without a chapter (they
span the game), then by chapter, then by file path.

Links between entries
---------------------
``render`` writes related entries as Markdown links to ``#compendium/<percent-encoded title>``
(``compendium_link``). The tab intercepts clicks on such links inside ``#compendium-entry`` with a
small script and opens the entry in place; ``parse_compendium_link`` reads one back. Anything else
from the KB is escaped (``html.escape``): HTML in the knowledge base is shown as text, never run.

Pictures
--------
``pictures_for`` reads each PNG's text chunks (``modules.image.png.read_png_metadata``). A picture
whose metadata has ``wulewule_subjects`` (the Chinese entity titles found in the drawing request; a
JSON list, or names separated by commas, semicolons, 、 or new lines) belongs to the entries it names
(by title or alias). A picture without that key belongs to a boss, character or area (the categories
whose names the prompt builder turns into English, ``modules.image.prompt.KB_CATEGORIES``) when one of
the entry's English aliases appears as whole words in its English ``prompt`` (or, for pictures other
programs wrote, the first line of ``parameters``).
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from modules.rag.types import Document, Passage

if TYPE_CHECKING:
    import gradio as gr

    from app.knowledge_chat import KnowledgeChat

log = logging.getLogger(__name__)


# -- shelves --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shelf:
    """One shelf of the compendium: a key for code, a Chinese and an English name for players."""

    key: str
    zh: str
    en: str

    @property
    def label(self) -> str:
        return f"{self.zh} {self.en}"


SHELVES: tuple[Shelf, ...] = (
    Shelf("chapters", "章节", "Chapters"),
    Shelf("bosses", "妖王", "Bosses"),
    Shelf("characters", "人物", "Characters"),
    Shelf("areas", "地点", "Areas"),
    Shelf("spells", "法术与变化", "Spells & transformations"),
    Shelf("items", "物品", "Items"),
    Shelf("story", "剧情与结局", "Story & endings"),
    Shelf("combat", "战斗与系统", "Combat & mechanics"),
    Shelf("faq", "常见问题", "FAQ"),
    Shelf("novel", "西游记原著", "Journey to the West"),
    Shelf("culture", "文化与古迹", "Culture & heritage"),
    Shelf("game", "游戏资讯", "About the game"),
    Shelf("art", "美术与音乐", "Art & music"),
    Shelf("memes", "梗与彩蛋", "Memes & easter eggs"),
    Shelf("other", "其他", "Other"),
)
SHELF_BY_KEY = {s.key: s for s in SHELVES}

# category -> home shelf; "combat" is split (see the module docstring), anything else goes to "other".
CATEGORY_SHELF = {
    "chapter": "chapters",
    "boss": "bosses",
    "character": "characters",
    "area": "areas",
    "story": "story",
    "faq": "faq",
    "novel": "novel",
    "culture": "culture",
    "game": "game",
    "art": "art",
    "meme": "memes",
}
# The system entries of the combat kinds, by title, in the order their members are listed.
SPELL_SYSTEMS = ("法术", "变化", "精魄")
ITEM_SYSTEMS = ("法宝", "葫芦", "珍玩", "披挂", "武器", "丹药", "仙丹", "酒", "泡酒物")
LIST_SUFFIX = "一览"
ARMOUR_SET_SUFFIX = "套"
LINK_PREFIX = "#compendium/"
# The categories whose English aliases the picture prompts carry (modules.image.prompt.KB_CATEGORIES).
DRAWN_CATEGORIES = ("boss", "character", "area")
SUBJECTS_KEY = "wulewule_subjects"
PARTIAL_NAME_HITS = 8  # names that contain the query, listed before retrieval's hits

_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.、)])\s+(.*)$")
_HEADING = re.compile(r"^(#{1,6})(\s+.*)$")
_QUESTION_WORDS = re.compile(r"怎么|怎样|如何|吗|哪|什么|多大|多少|几|能否|有没有|是否|区别|\?|？")
_SUBJECT_SPLIT = re.compile(r"[,，;；、|\n]+")


@dataclass(frozen=True)
class Entry:
    """One knowledge-base entry as the compendium shows it."""

    key: str  # unique: the title, or "title〔doc_id〕" when two documents share a title
    doc: Document
    shelf: str  # the home shelf's key

    @property
    def title(self) -> str:
        return self.doc.title

    @property
    def aliases(self) -> tuple[str, ...]:
        return self.doc.aliases

    @property
    def chapter(self) -> int | None:
        return self.doc.chapter

    @property
    def category(self) -> str:
        return self.doc.category

    @property
    def source(self) -> str:
        return self.doc.source

    @property
    def is_list(self) -> bool:
        """An overview entry that lists many others (各回头目一览, 法术一览 …)."""
        return _is_list(self.doc)


@dataclass(frozen=True)
class Listed:
    """One row of a shelf: an entry, indented (depth 1) when it sits under another (a chapter's boss)."""

    key: str
    title: str
    depth: int = 0
    number: int = 0  # the boss's place in its chapter's order (1-based), 0 otherwise

    @property
    def label(self) -> str:
        if self.depth == 0:
            return self.title
        return f"　{self.number}. {self.title}" if self.number else f"　· {self.title}"


def compendium_link(title: str) -> str:
    """The link target of an entry inside rendered Markdown: ``#compendium/<percent-encoded title>``."""
    return LINK_PREFIX + quote(title, safe="")


def parse_compendium_link(href: str) -> str | None:
    """The title a ``compendium_link`` points to; None for any other link."""
    href = href.strip()
    if "#" in href and not href.startswith("#"):
        href = href[href.index("#") :]
    if not href.startswith(LINK_PREFIX):
        return None
    title = unquote(href[len(LINK_PREFIX) :])
    return title or None


def _is_list(doc: Document) -> bool:
    stem = PurePosixPath(doc.doc_id.split("#", 1)[0]).stem
    return stem.startswith("overview-") or doc.title.endswith(LIST_SUFFIX)


def _fold(name: str) -> str:
    return name.strip().casefold()


def _clean_name(name: str) -> str:
    """A name without its quotes, for lookups that were typed without them."""
    return name.strip().strip("“”\"'‘’「」 ").casefold()


def _chapter_sort(chapter: int | None) -> tuple[int, int]:
    return (0, 0) if chapter is None else (1, chapter)


def _list_heads(body: str) -> list[str]:
    """The text of every Markdown list item in a body, in order."""
    heads = []
    for line in body.splitlines():
        m = _LIST_ITEM.match(line)
        if m:
            heads.append(m.group(1).strip())
    return heads


def chapter_name(chapter: int) -> str:
    return "序章" if chapter == 0 else f"第{chapter}回"


# -- the compendium -------------------------------------------------------------------------------


@dataclass(repr=False)
class Compendium:
    """Every knowledge-base entry on its shelf, with lookups, rendering, search and pictures."""

    _entries: dict[str, Entry]  # by key, in document order
    _shelves: dict[str, list[Listed]]
    _names: dict[str, str] = field(default_factory=dict)  # casefolded title or alias (also unquoted) -> key
    _by_doc: dict[str, str] = field(default_factory=dict)  # doc_id -> key

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={len(v)}" for k, v in self._shelves.items() if v)
        return f"Compendium({len(self._entries)} entries: {counts})"

    # -- building ---------------------------------------------------------------------------------

    @classmethod
    def from_documents(cls, documents: Iterable[Document]) -> Compendium:
        docs = list(documents)
        counts: dict[str, int] = {}
        for d in docs:
            counts[d.title] = counts.get(d.title, 0) + 1
        keys = [d.title if counts[d.title] == 1 else f"{d.title}〔{d.doc_id}〕" for d in docs]
        key_of_doc = {d.doc_id: k for d, k in zip(docs, keys, strict=True)}

        # Names: titles win over aliases, an alias two entries share names neither, and the spelling
        # as written wins over one without its quotes (“虎先锋” and 虎先锋 are two bosses).
        names: dict[str, str] = {}
        for fold in (_fold, _clean_name):
            for d, k in zip(docs, keys, strict=True):
                names.setdefault(fold(d.title), k)
            alias_owners: dict[str, set[str]] = {}
            for d, k in zip(docs, keys, strict=True):
                for a in d.aliases:
                    alias_owners.setdefault(fold(a), set()).add(k)
            for alias, owners in alias_owners.items():
                if alias and len(owners) == 1:
                    names.setdefault(alias, next(iter(owners)))

        combat_kind = _combat_kinds([d for d in docs if d.category == "combat"])
        entries: dict[str, Entry] = {}
        for d, k in zip(docs, keys, strict=True):
            if d.category == "combat":
                shelf = combat_kind.get(d.doc_id, ("combat", 0))[0]
            else:
                shelf = CATEGORY_SHELF.get(d.category, "other")
            entries[k] = Entry(k, d, shelf)

        book = cls(entries, {}, names, key_of_doc)
        book._shelves = book._arrange(combat_kind)
        return book

    def _arrange(self, combat_kind: dict[str, tuple[str, int]]) -> dict[str, list[Listed]]:
        homes: dict[str, list[Entry]] = {s.key: [] for s in SHELVES}
        for e in self._entries.values():
            homes[e.shelf].append(e)
        shelves: dict[str, list[Listed]] = {}

        chapters = sorted(homes["chapters"], key=lambda e: (_chapter_sort(e.chapter), e.source))
        bosses_in_order: list[Entry] = []
        chapter_rows: list[Listed] = []
        for ch in chapters:
            chapter_rows.append(Listed(ch.key, ch.title))
            for n, boss in enumerate(self.chapter_bosses(ch.key), 1):
                chapter_rows.append(Listed(boss.key, boss.title, depth=1, number=n))
                if boss.shelf == "bosses" and boss not in bosses_in_order:
                    bosses_in_order.append(boss)
        shelves["chapters"] = chapter_rows
        rest = sorted(
            (b for b in homes["bosses"] if b not in bosses_in_order),
            key=lambda e: (_chapter_sort(e.chapter), e.source),
        )
        shelves["bosses"] = [Listed(b.key, b.title) for b in [*bosses_in_order, *rest]]

        for key in ("spells", "items"):
            ranked = sorted(homes[key], key=lambda e: (combat_kind[e.doc.doc_id][1], e.source))
            shelves[key] = [Listed(e.key, e.title) for e in ranked]

        for key in homes:
            if key not in shelves:
                shelves[key] = [Listed(e.key, e.title) for e in self._ordered(homes[key])]
        return shelves

    def _ordered(self, entries: list[Entry]) -> list[Entry]:
        """List entries first, then in the order their ``related:`` name the rest, then by chapter and file."""
        lists = sorted((e for e in entries if e.is_list), key=lambda e: e.source)
        mention: dict[str, int] = {}
        for lst in lists:
            for name in lst.doc.related:
                found = self.entry(name)
                if found is not None:
                    mention.setdefault(found.key, len(mention))
        others = [e for e in entries if not e.is_list]
        others.sort(key=lambda e: (mention.get(e.key, len(mention)), _chapter_sort(e.chapter), e.source))
        return [*lists, *others]

    # -- lookups ----------------------------------------------------------------------------------

    def shelves(self) -> list[Shelf]:
        """The shelves that hold entries, in browsing order."""
        return [s for s in SHELVES if self._shelves.get(s.key)]

    def entries(self, shelf_key: str) -> list[Listed]:
        """The rows of one shelf, in order; KeyError for a shelf that does not exist."""
        if shelf_key not in SHELF_BY_KEY:
            raise KeyError(f"no shelf {shelf_key!r}; shelves: {', '.join(SHELF_BY_KEY)}")
        return list(self._shelves.get(shelf_key, []))

    def all_entries(self) -> list[Entry]:
        return list(self._entries.values())

    def entry(self, name: str) -> Entry | None:
        """The entry with this key, title or (unambiguous) alias; None when there is none."""
        if name in self._entries:
            return self._entries[name]
        key = self._names.get(_fold(name)) or self._names.get(_clean_name(name))
        return self._entries.get(key) if key is not None else None

    def _need(self, name: str) -> Entry:
        found = self.entry(name)
        if found is None:
            raise KeyError(f"no compendium entry {name!r}")
        return found

    def shelf_of(self, name: str) -> Shelf:
        return SHELF_BY_KEY[self._need(name).shelf]

    def chapter_bosses(self, name: str) -> list[Entry]:
        """A chapter's bosses in the order they are fought (``bosses:``; else its boss entries by file)."""
        chapter = self._need(name)
        listed = chapter.doc.extra.get("bosses")
        if isinstance(listed, list) and listed:
            out: list[Entry] = []
            for title in listed:
                boss = self.entry(str(title))
                if boss is None:
                    log.warning("%s lists boss %r, which has no entry", chapter.source, title)
                elif boss not in out:
                    out.append(boss)
            return out
        if chapter.chapter is None:
            return []
        same = [e for e in self._entries.values() if e.category == "boss" and e.chapter == chapter.chapter]
        return sorted(same, key=lambda e: e.source)

    def chapter_entry(self, chapter: int) -> Entry | None:
        return next((e for e in self._entries.values() if e.category == "chapter" and e.chapter == chapter), None)

    # -- rendering --------------------------------------------------------------------------------

    def render(self, name: str, link: Callable[[str], str] = compendium_link) -> str:
        """One entry as Markdown: title, aliases, chapter, body (headings kept, one level down), related
        entries as links, source. Text from the KB is HTML-escaped; ``link`` makes a link target."""
        e = self._need(name)
        lines = [f"## {_esc(e.title)}"]
        facts = [f"**分类 Shelf：** {_esc(SHELF_BY_KEY[e.shelf].label)}"]
        if e.aliases:
            facts.append("**别名 Also known as：** " + " · ".join(_esc(a) for a in e.aliases))
        if e.chapter is not None and e.category != "chapter":
            ch = self.chapter_entry(e.chapter)
            where = self._link(ch, link) if ch is not None else _esc(chapter_name(e.chapter))
            facts.append(f"**章节 Chapter：** {where}")
        lines.append("  \n".join(facts))
        if e.doc.summary_en:
            lines.append(f"> {_esc(e.doc.summary_en)}")
        lines.append(_body_markdown(e.doc.body, e.title))
        if e.category == "chapter":
            bosses = self.chapter_bosses(e.key)
            if bosses:
                rows = [f"{n}. {self._link(b, link)}" for n, b in enumerate(bosses, 1)]
                lines.append("### 本回头目（按遭遇顺序） Bosses in order\n" + "\n".join(rows))
        related = [self._related_link(r, link) for r in e.doc.related]
        if related:
            lines.append("### 相关条目 Related\n" + " · ".join(related))
        lines.append(f"<sub>来源 Source：{_esc(e.source)}</sub>")
        return "\n\n".join(lines)

    def _link(self, e: Entry, link: Callable[[str], str]) -> str:
        return f"[{_esc_link_text(e.title)}]({link(e.key)})"

    def _related_link(self, name: str, link: Callable[[str], str]) -> str:
        target = self.entry(name)
        return self._link(target, link) if target is not None else _esc(name)

    # -- search and questions ---------------------------------------------------------------------

    def search(self, query: str, retrieve: Callable[[str, int], Sequence[Passage]], limit: int = 20) -> list[Entry]:
        """Entries for a query, best first, each once: the exact title/alias match, then up to
        ``PARTIAL_NAME_HITS`` entries whose names contain the query, then the entries whose passages the
        app's own retrieval (``KnowledgeChat.retriever.retrieve``) returns, in its order."""
        query = query.strip()
        if not query:
            return []
        found: list[Entry] = []
        exact = self.entry(query)
        if exact is not None:
            found.append(exact)
        for named in self._partial_names(query)[:PARTIAL_NAME_HITS]:
            if named not in found:
                found.append(named)
        for passage in retrieve(query, max(limit * 4, 20)):
            chunk = passage.chunk
            key = self._by_doc.get(chunk.doc_id)
            hit = self._entries.get(key) if key is not None else self.entry(chunk.title)
            if hit is not None and hit not in found:
                found.append(hit)
            if len(found) >= limit:
                break
        return found[:limit]

    def _partial_names(self, query: str) -> list[Entry]:
        """Entries a part of whose title or alias the query is ("黄风" -> 黄风岭, 黄风大圣 …), titles that
        start with it first; Chinese queries of 2+ characters, others of 3+."""
        q = _fold(query)
        if len(q) < (3 if q.isascii() else 2):
            return []
        starts: list[Entry] = []
        contains: list[Entry] = []
        for e in self._entries.values():
            names = [_fold(n) for n in e.doc.names]
            if any(n.startswith(q) for n in names):
                starts.append(e)
            elif any(q in n for n in names):
                contains.append(e)
        return [*starts, *contains]

    def ask_about(self, name: str) -> str:
        """A natural question about the entry for the chat, by kind of entry (never per entry)."""
        e = self._need(name)
        t = e.title
        if e.is_list and t.endswith(LIST_SUFFIX) and len(t) > len(LIST_SUFFIX):
            return f"{t[: -len(LIST_SUFFIX)]}有哪些？"
        if e.shelf == "faq":
            return t if t.endswith(("？", "?")) else (f"{t}？" if _QUESTION_WORDS.search(t) else f"{t}有什么要知道的？")
        template = {
            "chapters": "{t}讲了什么？有哪些Boss？",
            "bosses": "{t}是谁？怎么打？",
            "characters": "{t}是谁？",
            "areas": "{t}在哪里？怎么去？",
            "spells": "{t}怎么获得？有什么用？",
            "items": "{t}怎么获得？有什么用？",
            "story": "{t}是怎么回事？",
            "combat": "{t}是什么？怎么用？",
            "novel": "{t}在《西游记》原著里是怎么回事？",
            "culture": "{t}和《黑神话：悟空》有什么关系？",
            "game": "介绍一下{t}。",
            "art": "{t}是什么？",
            "memes": "“{t}”是什么梗？",
        }.get(e.shelf, "{t}是什么？")
        return template.format(t=t.strip('“”"') if e.shelf == "memes" else t)

    # -- pictures ---------------------------------------------------------------------------------

    def pictures_for(self, name: str, image_dir: Path | str | None, limit: int = 12) -> list[Path]:
        """PNGs under ``image_dir`` whose metadata names the entry, newest first (see the module docstring)."""
        e = self._need(name)
        if image_dir is None:
            return []
        root = Path(image_dir)
        if not root.is_dir():
            return []
        own = {_fold(n) for n in e.doc.names if n.strip()}
        english = _english_names(e.doc) if e.category in DRAWN_CATEGORIES else []
        found: list[tuple[int, Path]] = []
        for path, mtime in _pngs(root):
            prompt, subjects = picture_metadata(path)
            if subjects is not None:
                if own & {_fold(s) for s in subjects} or _pair_named(e.title, subjects):
                    found.append((mtime, path))
            elif prompt and any(p.search(prompt) for p in english):
                found.append((mtime, path))
        found.sort(key=lambda x: (-x[0], x[1].name))
        return [p for _, p in found[:limit]]


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _esc_link_text(text: str) -> str:
    return _esc(text).replace("[", "\\[").replace("]", "\\]")


def _body_markdown(body: str, title: str) -> str:
    """The entry's Markdown with HTML escaped, its headings one level down, a leading ``# title`` dropped."""
    lines = body.strip().splitlines()
    if lines and _HEADING.match(lines[0]) and lines[0].lstrip("#").strip() == title:
        lines = lines[1:]
    out = []
    fence = False
    for line in lines:
        if line.lstrip().startswith("```"):
            fence = not fence
        m = None if fence else _HEADING.match(line)
        if m:
            # The entry's title is "##": its sections go one level below ("#" and "##" -> "###").
            level = min(max(len(m.group(1)), 2) + 1, 6)
            out.append("#" * level + _esc(m.group(2)))
        else:
            quote_marks = "" if fence else line[: len(line) - len(line.lstrip(" >"))]  # a blockquote's ">" stays
            out.append(quote_marks + _esc(line[len(quote_marks) :]))
    return "\n".join(out).strip()


def _combat_kinds(docs: list[Document]) -> dict[str, tuple[str, int]]:
    """doc_id -> (shelf, rank within the shelf) for the combat entries that are spells or items."""
    by_title = {d.title: d for d in docs}
    names: dict[str, Document] = {}
    for d in docs:
        for n in d.names:
            n = n.strip()
            if len(n) >= 2:
                names.setdefault(n, d)
    longest_first = sorted(names, key=len, reverse=True)

    kinds: dict[str, tuple[str, int]] = {}
    rank = 0

    def put(doc: Document, shelf: str) -> None:
        nonlocal rank
        if doc.doc_id not in kinds:
            kinds[doc.doc_id] = (shelf, rank)
            rank += 1

    for shelf, systems in (("spells", SPELL_SYSTEMS), ("items", ITEM_SYSTEMS)):
        for system in systems:
            head = by_title.get(system)
            listing = by_title.get(system + LIST_SUFFIX)
            if head is not None:
                put(head, shelf)
            if listing is not None:
                put(listing, shelf)
            for source in (listing, head):
                if source is None:
                    continue
                for item in _list_heads(source.body):
                    named = next((n for n in longest_first if item.startswith(n)), None)
                    if named is not None:
                        put(names[named], shelf)
            for d in docs:
                if d.title.startswith(system + "·"):
                    put(d, shelf)
        if shelf == "items":
            for d in docs:
                if d.title.endswith(ARMOUR_SET_SUFFIX) and len(d.title) > 1:
                    put(d, shelf)
    return kinds


def _english_names(doc: Document) -> list[re.Pattern[str]]:
    out = []
    for alias in doc.aliases:
        name = alias.strip().strip("'\" ")
        if name.isascii() and len(name) >= 3 and any(c.isalpha() for c in name):
            out.append(re.compile(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", re.IGNORECASE))
    return out


def _pair_named(title: str, subjects: Sequence[str]) -> bool:
    """A paired title ("急如火、快如风") named by its parts when the subjects were split on 、."""
    parts = [_fold(p) for p in title.split("、") if p.strip()]
    cleaned = {_fold(s) for s in subjects}
    return len(parts) > 1 and all(p in cleaned for p in parts)


def _pngs(root: Path) -> list[tuple[Path, int]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for fname in filenames:
            if fname.startswith(".") or not fname.lower().endswith(".png"):
                continue
            path = Path(dirpath) / fname
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                continue
            out.append((path, mtime))
    return out


def parse_subjects(value: Any) -> list[str]:
    """``wulewule_subjects`` as a list of names: a JSON list, or names separated by , ; 、 or new lines."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value).strip()
    if text.startswith("["):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, list):
            return [str(v).strip() for v in data if str(v).strip()]
    return [s.strip() for s in _SUBJECT_SPLIT.split(text.strip("[]")) if s.strip().strip("\"'")]


def picture_metadata(path: Path) -> tuple[str, list[str] | None]:
    """(English prompt, subjects or None when the picture has no ``wulewule_subjects``) of a PNG."""
    try:
        stat = path.stat()
    except OSError:
        return "", None
    prompt, subjects = _picture_metadata(str(path), stat.st_mtime_ns, stat.st_size)
    return prompt, list(subjects) if subjects is not None else None


@lru_cache(maxsize=4096)
def _picture_metadata(path: str, mtime_ns: int, size: int) -> tuple[str, tuple[str, ...] | None]:
    from modules.image.png import read_png_metadata

    try:
        meta = read_png_metadata(path)
    except (OSError, ValueError) as exc:
        log.debug("skipping picture %s: %s", path, exc)
        return "", None
    prompt = str(meta.get("prompt") or "")
    if not prompt:
        prompt = str(meta.get("parameters") or "").split("\n", 1)[0]
    subjects = tuple(parse_subjects(meta[SUBJECTS_KEY])) if SUBJECTS_KEY in meta else None
    return prompt, subjects


# -- the tab --------------------------------------------------------------------------------------

WELCOME = (
    "### 图鉴 Compendium\n"
    "左边选一个分类，再点一个条目；或者在搜索框里输入名字、英文名或一句话，按回车搜索。"
    "条目里的蓝色链接可以直接跳到相关条目。\n\n"
    "Pick a shelf and an entry on the left, or search by name, English name or a phrase (press Enter)."
)
ASK_LABEL = "💬 问问悟空 / Ask about this"
NOT_FOUND = "没有找到相关条目。换个说法试试，比如名字、英文名或“怎么打”。 / Nothing found: try another name or phrase."
# The entry list reads as a list (one entry a line, a chapter's bosses indented under it) and scrolls.
LIST_CSS = (
    "#compendium-list .wrap{flex-direction:column;flex-wrap:nowrap;align-items:stretch;gap:2px;"
    "max-height:34rem;overflow-y:auto}"
    "#compendium-list .wrap label{width:100%;box-sizing:border-box}"
)
# Installed once by a hidden gr.HTML: a click on a #compendium/<title> link inside the rendered entry
# opens that entry in place: the title goes into the hidden component's value, whose change event
# carries it to Python (a timestamp after a NUL makes a second click on the same link a change too).
NAV_JS = """
const prefix = '#compendium/';
if (!document.getElementById('compendium-style')) {
  const style = document.createElement('style');
  style.id = 'compendium-style';
  style.textContent = `${LIST_CSS}`;
  document.head.appendChild(style);
}
if (window.wulewuleCompendiumNav) document.removeEventListener('click', window.wulewuleCompendiumNav, true);
window.wulewuleCompendiumNav = (event) => {
  const link = event.target && event.target.closest && event.target.closest('#compendium-entry a[href]');
  if (!link) return;
  const href = link.getAttribute('href') || '';
  const at = href.indexOf(prefix);
  if (at < 0) return;
  event.preventDefault();
  event.stopPropagation();
  props.value = decodeURIComponent(href.slice(at + prefix.length)) + '\\u0000' + Date.now();
};
document.addEventListener('click', window.wulewuleCompendiumNav, true);
""".replace("${LIST_CSS}", LIST_CSS)


def _shelf_choices(book: Compendium, shelf_key: str) -> list[tuple[str, str]]:
    rows = book.entries(shelf_key)
    nested = any(r.depth for r in rows)  # the chapters: each heads the bosses under it
    return [(f"📜 {r.label}" if nested and r.depth == 0 else r.label, r.key) for r in rows]


def build_compendium_tab(
    chat: KnowledgeChat,
    question_box: gr.Textbox,
    image_dir: Path | str | None,
    *,
    compendium: Compendium | None = None,
    tabs: gr.Tabs | None = None,
    chat_tab: str | int | None = None,
) -> None:
    """The compendium's controls, inside an open ``gr.Tab("图鉴 Compendium")`` of the app's Blocks.

    ``question_box`` is the chat's Textbox: "问问悟空" fills it with ``ask_about`` (it does not send).
    With ``tabs`` (the app's ``gr.Tabs``) and ``chat_tab`` (the chat tab's ``id``) it also switches
    to the chat tab. ``compendium`` defaults to one built from the chat's knowledge index.
    """
    import gradio as gr

    book = compendium or Compendium.from_documents(chat.retriever.index.documents)
    shelves = book.shelves()
    first = shelves[0].key if shelves else None
    images = Path(image_dir) if image_dir is not None else None

    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=280):
            search = gr.Textbox(
                label="搜索图鉴 Search",
                placeholder="名字、英文名或一句话，回车搜索 · e.g. 黄眉 / Yellowbrow / 怎么变身",
                max_lines=1,
                submit_btn="搜索",
                elem_id="compendium-search",
            )
            shelf = gr.Radio(
                choices=[(s.label, s.key) for s in shelves],
                value=first,
                label="分类 Shelves",
                elem_id="compendium-shelf",
            )
            listing = gr.Radio(
                choices=_shelf_choices(book, first) if first else [],
                value=None,
                label=f"条目 Entries · {SHELF_BY_KEY[first].label}" if first else "条目 Entries",
                elem_id="compendium-list",
            )
        with gr.Column(scale=5):
            entry_md = gr.Markdown(
                WELCOME, label="条目 Entry", sanitize_html=True, elem_id="compendium-entry", container=True
            )
            ask = gr.Button(ASK_LABEL, interactive=False, elem_id="compendium-ask")
            pictures = gr.Gallery(
                label="画过的图 Pictures",
                columns=4,
                height=240,
                visible=False,
                interactive=False,
                elem_id="compendium-pictures",
            )
    nav = gr.HTML(
        "",
        label="相关条目跳转 Related-entry navigation",
        html_template="",
        js_on_load=NAV_JS,
        visible="hidden",
        elem_id="compendium-nav",
    )
    current = gr.State("")

    def view(key: str) -> tuple[Any, Any, Any, Any]:
        """(entry Markdown, current key, ask button, pictures) for one entry."""
        found = book.entry(key)
        if found is None:
            return NOT_FOUND, "", gr.Button(ASK_LABEL, interactive=False), gr.Gallery(value=None, visible=False)
        question = book.ask_about(found.key)
        return (
            book.render(found.key),
            found.key,
            gr.Button(value=f"💬 问问悟空：{question}", interactive=True),
            pictures_of(found.key),
        )

    def pictures_of(key: str) -> Any:
        gallery = [(str(p), picture_metadata(p)[0][:200]) for p in book.pictures_for(key, images)]
        try:
            return gr.Gallery(value=gallery or None, visible=bool(gallery))
        except Exception as exc:  # gradio refuses a folder it may not serve: the entry still shows
            log.warning("cannot show the pictures of %s: %s", key, exc)
            return gr.Gallery(value=None, visible=False)

    def pick_shelf(key: str | None) -> Any:
        if not key or key not in SHELF_BY_KEY:
            return gr.Radio(choices=[], value=None, label="条目 Entries")
        return gr.Radio(
            choices=_shelf_choices(book, key), value=None, label=f"条目 Entries · {SHELF_BY_KEY[key].label}"
        )

    def pick_entry(key: str | None) -> tuple[Any, ...]:
        return view(key) if key else (gr.skip(), gr.skip(), gr.skip(), gr.skip())

    def go_to(value: str | None) -> tuple[Any, ...]:
        """A related link was clicked: show the entry, with its home shelf and list beside it."""
        name = (value or "").split("\x00", 1)[0]
        found = book.entry(name) if name else None
        if found is None:
            return (gr.skip(), gr.skip(), *view(name)) if name else tuple(gr.skip() for _ in range(6))
        rows = gr.Radio(
            choices=_shelf_choices(book, found.shelf),
            value=found.key,
            label=f"条目 Entries · {SHELF_BY_KEY[found.shelf].label}",
        )
        return (found.shelf, rows, *view(found.key))

    def run_search(query: str) -> tuple[Any, ...]:
        hits = book.search(query, chat.retriever.retrieve) if query.strip() else []
        if not hits:
            empty = gr.Radio(choices=[], value=None, label="搜索结果 Results")
            return (gr.skip(), empty, NOT_FOUND, "", gr.Button(ASK_LABEL, interactive=False), gr.Gallery(visible=False))
        results = gr.Radio(
            choices=[(h.title, h.key) for h in hits],
            value=hits[0].key,
            label=f"搜索结果 Results · {query.strip()[:40]}",
        )
        return (None, results, *view(hits[0].key))

    entry_outputs = [entry_md, current, ask, pictures]
    shelf.input(pick_shelf, shelf, listing, queue=False, api_visibility="private")
    listing.input(pick_entry, listing, entry_outputs, api_visibility="private")
    nav.change(go_to, nav, [shelf, listing, *entry_outputs], api_visibility="private")
    search.submit(run_search, search, [shelf, listing, *entry_outputs], api_visibility="private")

    def ask_question(key: str) -> Any:
        return book.ask_about(key) if key and book.entry(key) is not None else gr.skip()

    if tabs is not None and chat_tab is not None:

        def ask_and_switch(key: str) -> tuple[Any, Any]:
            question = ask_question(key)
            return question, gr.Tabs(selected=chat_tab)

        ask.click(ask_and_switch, current, [question_box, tabs], queue=False, api_visibility="private")
    else:
        ask.click(ask_question, current, question_box, queue=False, api_visibility="private")
