"""The 图鉴 (Compendium): shelves over the real knowledge base and the small test one, rendering, search
through the app's own retrieval, questions the chat answers, pictures, and the tab's components."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from app.compendium import (
    CATEGORY_SHELF,
    SHELF_BY_KEY,
    SHELVES,
    Compendium,
    build_compendium_tab,
    compendium_link,
    parse_compendium_link,
    parse_subjects,
)
from app.evaluation import is_refusal
from app.knowledge_chat import KnowledgeChat
from modules.image.base import GeneratedImage, ImageRequest
from modules.image.png import read_png_metadata, save_png
from modules.rag.loader import load_documents
from modules.rag.types import Chunk, Document, Passage
from tests.conftest import REPO, make_settings

KB = REPO / "assets" / "knowledge"


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return load_documents([KB], REPO)


@pytest.fixture(scope="module")
def book(documents: list[Document]) -> Compendium:
    return Compendium.from_documents(documents)


@pytest.fixture(scope="module")
def kb_chat(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeChat:
    """The app's chat on the shipped knowledge base: BM25 + aliases, the extractive answerer."""
    return KnowledgeChat(make_settings(KB, tmp_path_factory.mktemp("compendium-data")))


def titles(book: Compendium, shelf: str) -> list[str]:
    return [row.title for row in book.entries(shelf)]


# -- shelves ------------------------------------------------------------------------------------


def test_every_category_is_on_a_shelf_and_every_entry_is_reachable(book: Compendium, documents: list[Document]):
    categories = {d.category for d in documents}
    assert categories <= {*CATEGORY_SHELF, "combat"}, "a KB category the compendium does not know"
    reachable = {row.key for shelf in book.shelves() for row in book.entries(shelf.key)}
    assert {e.key for e in book.all_entries()} == reachable
    assert len(book.all_entries()) == len(documents)
    assert "other" not in [s.key for s in book.shelves()]
    for d in documents:
        found = book.entry(d.title)
        assert found is not None and found.doc == d
        assert found.key in {row.key for row in book.entries(found.shelf)}  # on its home shelf


def test_shelves_come_in_browsing_order_with_both_languages(book: Compendium):
    keys = [s.key for s in book.shelves()]
    assert keys[:7] == ["chapters", "bosses", "characters", "areas", "spells", "items", "story"]
    assert set(keys) >= {"combat", "faq", "novel", "culture", "game", "art", "memes"}
    assert keys == [s.key for s in SHELVES if s.key in keys]
    assert SHELF_BY_KEY["spells"].label == "法术与变化 Spells & transformations"
    assert all(re.search(r"[\u4e00-\u9fff]", s.zh) and s.en.isascii() for s in SHELVES)
    with pytest.raises(KeyError, match="no shelf"):
        book.entries("nope")


def _split_names(text: str) -> list[str]:
    """A 、-separated list where a quoted name (“急如火、快如风”) may hold a 、 itself."""
    names, current, quoted = [], "", False
    for ch in text:
        if ch == "、" and not quoted:
            names.append(current)
            current = ""
            continue
        quoted = True if ch == "“" else False if ch == "”" else quoted
        current += ch
    return [*names, current]


def test_chapters_list_their_bosses_in_the_order_the_overview_entry_gives(book: Compendium):
    overview = book.entry("各回头目一览")
    assert overview is not None
    checked = 0
    for line in overview.doc.body.splitlines():
        m = re.match(r"^(第.回)“[^”]+”的头目依次是(.+?)，共(\d+)个", line)
        if not m:
            continue
        chapter = book.entry(m.group(1))
        assert chapter is not None and chapter.category == "chapter"
        expected = []
        for name in _split_names(m.group(2)):
            found = book.entry(name) or book.entry(name.strip("“”"))
            assert found is not None, name
            expected.append(found.title)
        assert len(expected) == int(m.group(3))
        assert [b.title for b in book.chapter_bosses(chapter.key)] == expected
        checked += 1
    assert checked == 6
    # A known chapter, spelled out: 第三回 starts at the Macaque Chief and ends at Yellowbrow.
    third = [b.title for b in book.chapter_bosses("第三回 夜生白露")]
    assert third[:3] == ["赤尻马猴", "亢金龙", "魔将·莲眼"] and third[-1] == "黄眉" and len(third) == 19


def test_the_chapters_shelf_nests_each_chapters_bosses_under_it(book: Compendium):
    rows = book.entries("chapters")
    heads = [r.title for r in rows if r.depth == 0]
    assert heads[0] == "序章" and heads[1:3] == ["第一回 火照黑云", "第二回 风起黄昏"] and heads[-1] == "第六回 未竟"
    i = next(n for n, r in enumerate(rows) if r.title == "第三回 夜生白露")
    under = []
    for r in rows[i + 1 :]:
        if r.depth == 0:
            break
        under.append(r)
    assert [r.title for r in under] == [b.title for b in book.chapter_bosses("第三回 夜生白露")]
    assert [r.number for r in under] == list(range(1, 20))
    assert under[0].label.strip() == "1. 赤尻马猴"
    # The bosses shelf holds the same bosses, chapter by chapter, in fought order, each once.
    fought = [r.title for r in rows if r.depth == 1]
    bosses = titles(book, "bosses")
    assert bosses == list(dict.fromkeys(fought)) and len(bosses) == 91


def test_combat_entries_split_into_spells_items_and_mechanics(book: Compendium):
    spells, items, combat = titles(book, "spells"), titles(book, "items"), titles(book, "combat")
    assert {"法术", "法术一览", "定身法", "禁字法", "身外身法", "变化", "变化·广智", "精魄", "精魄·虎伥"} <= set(spells)
    assert {"法宝", "法宝一览", "辟火罩", "芭蕉扇", "葫芦", "珍玩", "披挂", "大圣套", "百戏套", "如意金箍棒"} <= set(
        items
    )
    assert {"酒", "泡酒物", "丹药", "仙丹"} <= set(items)
    assert {"棍势", "闪身", "劈棍", "二周目", "法力", "土地庙", "异常状态"} <= set(combat)
    assert spells.index("法术") < spells.index("定身法") < spells.index("变化") < spells.index("变化·广智")
    combat_docs = {e.title for e in book.all_entries() if e.category == "combat"}
    assert set(spells) | set(items) | set(combat) == combat_docs
    assert not (set(spells) & set(items)) and not (set(spells) & set(combat)) and not (set(items) & set(combat))


def test_names_find_entries_as_written_first(book: Compendium):
    # “虎先锋” (the secret rematch) and 虎先锋 are two bosses: quotes decide, and an unquoted name
    # typed with stray spaces or another case still finds the right one.
    assert book.entry("“虎先锋”").title == "“虎先锋”" and book.entry(" 虎先锋 ").title == "虎先锋"
    assert book.entry("yellowbrow").title == "黄眉" and book.entry("Chapter 3").title == "第三回 夜生白露"
    assert book.entry("没有这个条目") is None


def test_the_small_test_kb(kb_dir: Path):
    book = Compendium.from_documents(load_documents([kb_dir]))
    assert [s.key for s in book.shelves()] == ["chapters", "bosses"]
    assert [(r.title, r.depth) for r in book.entries("chapters")] == [("第一回 火照黑云", 0), ("黑熊精", 1)]
    # Bosses no chapter lists still have a place: after the listed ones, by chapter.
    assert titles(book, "bosses") == ["黑熊精", "黄眉", "红孩儿"]
    assert book.entry("Red Boy") is not None and book.entry("red boy").title == "红孩儿"


def test_unknown_categories_and_shared_titles_stay_reachable():
    docs = [
        Document("a.md", "同名", "甲。", "kb/a.md", category="boss", chapter=1),
        Document("b.md", "同名", "乙。", "kb/b.md", category="boss", chapter=2),
        Document("notes.txt", "notes", "我的笔记。", "user_kb/notes.txt"),
        Document("x.jsonl#1", "x", "记录。", "user_kb/x.jsonl#1", category="recipe"),
        Document("c.md", "第一回", "第一回。", "kb/c.md", category="chapter", chapter=1),  # no bosses: by number
    ]
    book = Compendium.from_documents(docs)
    assert titles(book, "other") == ["notes", "x"]
    keys = [r.key for r in book.entries("bosses")]
    assert len(set(keys)) == 2 and all(k.startswith("同名") for k in keys)
    assert [e.doc.body for e in (book.entry(k) for k in keys) if e] == ["甲。", "乙。"]
    assert [b.doc.body for b in book.chapter_bosses("第一回")] == ["甲。"]
    assert book.entry("同名") is not None  # the title names the first of them


# -- rendering ----------------------------------------------------------------------------------


def test_render_escapes_html_and_links_related_entries():
    evil = Document(
        "bosses/evil.md",
        "<b>恶</b>",
        "恶是<script>alert(1)</script>一个测试。\n\n## 打法\n闪避<img src=x onerror=alert(2)>即可。"
        "\n\n> 引文 <i>斜</i>",
        "assets/knowledge/bosses/evil.md",
        category="boss",
        aliases=("<svg onload=alert(3)>", "Evil [One]"),
        chapter=3,
        related=("黄眉", "不存在的条目<u>"),
        summary_en="An <em>evil</em> test.",
    )
    yellowbrow = Document("bosses/huang-mei.md", "黄眉", "黄眉。", "kb/huang-mei.md", category="boss", chapter=3)
    chapter = Document(
        "chapters/3.md",
        "第三回 夜生白露",
        "第三回。",
        "kb/3.md",
        category="chapter",
        chapter=3,
        extra={"bosses": ["黄眉"]},
    )
    book = Compendium.from_documents([evil, yellowbrow, chapter])
    md = book.render("<b>恶</b>")
    for raw in ("<script>", "<img", "<svg", "<b>", "<em>", "<u>", "<i>"):
        assert raw not in md
    assert "&lt;script&gt;" in md and "&lt;b&gt;恶&lt;/b&gt;" in md and "&lt;svg onload=alert(3)&gt;" in md
    assert "### 打法" in md  # the entry's own headings are kept, one level under its title
    assert "\n> 引文 &lt;i&gt;斜&lt;/i&gt;" in md  # a blockquote stays a blockquote
    assert f"[黄眉]({compendium_link('黄眉')})" in md
    assert f"[第三回 夜生白露]({compendium_link('第三回 夜生白露')})" in md  # the chapter, linked
    assert "不存在的条目&lt;u&gt;" in md and "[不存在的条目" not in md  # a missing entry is plain text
    assert "assets/knowledge/bosses/evil.md" in md
    links = re.findall(r"\]\((#compendium/[^)]+)\)", md)
    assert links and all(parse_compendium_link(h) in {"黄眉", "第三回 夜生白露"} for h in links)
    assert parse_compendium_link("https://example.com/") is None
    assert parse_compendium_link("http://127.0.0.1:7860/#compendium/%E9%BB%84%E7%9C%89") == "黄眉"
    chapter_md = book.render("第三回 夜生白露")
    assert f"1. [黄眉]({compendium_link('黄眉')})" in chapter_md  # a chapter lists its bosses in order


def test_render_of_a_shipped_entry(book: Compendium):
    md = book.render("Yellowbrow")  # any name finds the entry
    assert md.startswith("## 黄眉\n")
    assert "黄眉大王" in md and "### 打法" in md and "assets/knowledge/bosses/huang-mei.md" in md
    for name in book.entry("黄眉").doc.related:
        assert f"[{name}]({compendium_link(name)})" in md
    with pytest.raises(KeyError, match="no compendium entry"):
        book.render("没有这个条目")


# -- search and questions -----------------------------------------------------------------------


def test_search_uses_the_apps_retrieval(book: Compendium, kb_chat: KnowledgeChat):
    retrieve = kb_chat.retriever.retrieve
    first = book.search("Yellowbrow", retrieve)
    assert first[0].title == "黄眉"
    assert len({e.key for e in first}) == len(first)  # each entry once, though many passages came back
    assert book.search("where do I fight the bear", retrieve)[0].title == "黑熊精"
    assert "辟火罩" in [e.title for e in book.search("fire protection vessel", retrieve)[:3]]
    assert book.search("  ", retrieve) == []
    partial = [e.title for e in book.search("黄风", retrieve)]
    assert partial[0] == "黄风岭" and {"黄风大圣", "黄风阵"} <= set(partial[:8])  # names holding the query


def test_exact_names_come_before_retrieval():
    docs = [
        Document("a.md", "甲", "甲是一个条目。", "kb/a.md", category="boss", aliases=("Alpha",)),
        Document("b.md", "乙", "乙说 Alpha 很多次。", "kb/b.md", category="boss"),
    ]
    book = Compendium.from_documents(docs)
    b_chunk = Chunk(0, "b.md", "乙", "", "乙说 Alpha 很多次。", "kb/b.md")

    def retrieve(query: str, top_k: int) -> list[Passage]:
        return [Passage(b_chunk, 2.0), Passage(b_chunk, 1.0)]

    assert [e.title for e in book.search("alpha", retrieve)] == ["甲", "乙"]
    assert [e.title for e in book.search("alph", retrieve)] == ["甲", "乙"]  # part of a name, then retrieval
    assert [e.title for e in book.search("al", retrieve)] == ["乙"]  # too short a part of an English name


def test_ask_about_is_generic_per_kind(book: Compendium):
    assert book.ask_about("黄眉") == "黄眉是谁？怎么打？"
    assert book.ask_about("璧水洞") == "璧水洞在哪里？怎么去？"
    assert book.ask_about("法术一览") == "法术有哪些？"
    assert book.ask_about("隐藏结局怎么打") == "隐藏结局怎么打？"
    for shelf in book.shelves():
        homed = [e for e in (book.entry(r.key) for r in book.entries(shelf.key)) if e and e.shelf == shelf.key]
        plain = [e.title for e in homed if not e.is_list][:2]
        if shelf.key == "faq" or len(plain) < 2:
            continue
        a, b = plain
        # The same sentence with the name swapped: a template per kind, never per entry.
        assert book.ask_about(a).replace(a.strip("“”"), "X") == book.ask_about(b).replace(b.strip("“”"), "X")


@pytest.mark.parametrize(
    "title",
    [
        "黄眉",  # boss
        "第三回 夜生白露",  # chapter
        "天命人",  # character
        "璧水洞",  # area
        "定身法",  # spell
        "变化·广智",  # transformation
        "辟火罩",  # item (vessel)
        "隐藏结局",  # story
        "棍势",  # combat
        "新手建议",  # faq
        "紧箍咒",  # novel
        "大足石刻",  # culture
        "冯骥",  # game
        "游戏配乐",  # art
        "黑吗喽",  # meme
        "法术一览",  # a list entry
    ],
)
def test_the_chat_answers_ask_about(book: Compendium, kb_chat: KnowledgeChat, title: str):
    question = book.ask_about(title)
    answer = kb_chat.ask(question)
    assert not is_refusal(answer.answer), (question, answer.answer)
    assert title in [s.title for s in answer.sources[:3]], (question, [s.title for s in answer.sources])


# -- pictures -----------------------------------------------------------------------------------


def picture(folder: Path, name: str, prompt: str, subjects: str | None = None, age_s: int = 0) -> Path:
    """A tiny picture saved like the app saves one; ``subjects`` adds the wulewule_subjects chunk."""
    image = Image.fromarray(np.full((64, 64, 3), 120, dtype=np.uint8))
    result = GeneratedImage(image, ImageRequest(prompt, width=64, height=64), seed=7, model="tiny-sd")
    path = save_png(result, folder, name=name)
    if subjects is not None:
        info = PngImagePlugin.PngInfo()
        for key, value in read_png_metadata(path).items():
            info.add_text(key, str(value))
        info.add_text("wulewule_subjects", subjects)
        with Image.open(path) as img:
            img.load()
            img.save(path, format="PNG", pnginfo=info)
    stamp = 1_700_000_000 - age_s
    os.utime(path, (stamp, stamp))
    return path


def test_pictures_are_found_by_english_names_or_subjects(book: Compendium, tmp_path: Path):
    pics = tmp_path / "images"
    old = picture(pics, "old", "dstnd_one, Yellowbrow, a demon monk with long yellow eyebrows", age_s=100)
    new = picture(pics, "new", "yellowbrow in snow, ink wash", age_s=10)
    place = picture(pics, "place", "a misty pine forest, Black Wind Mountain, landscape")
    tagged = picture(pics, "tagged", "a monk in snow", subjects=json.dumps(["黄眉", "小西天"], ensure_ascii=False))
    listed = picture(pics, "listed", "two fire demons", subjects="急如火、快如风, 天命人")
    # The subjects, when the picture has them, decide: this prompt names Yellowbrow, the request did not.
    picture(pics, "other", "Yellowbrow-like monk, a bull", subjects="牛魔王")
    picture(pics, "focus", "focus on the staff, dramatic light")  # "Focus" is 棍势's alias: not a drawn kind
    (pics / "broken.png").write_text("not a picture")
    Image.new("RGB", (8, 8)).save(pics / "photo.jpg")
    (pics / "sub").mkdir()
    deep = picture(pics / "sub", "deep", "Yellowbrow again", age_s=5)

    assert book.pictures_for("黄眉", pics) == [tagged, deep, new, old]  # newest first
    assert book.pictures_for("Black Wind Mountain", pics) == [place]
    assert book.pictures_for("小西天", pics) == [tagged]
    assert book.pictures_for("急如火、快如风", pics) == [listed]
    assert book.pictures_for("天命人", pics) == [listed]
    assert book.pictures_for("棍势", pics) == []
    assert book.pictures_for("黄眉", pics, limit=1) == [tagged]
    assert book.pictures_for("黄眉", tmp_path / "missing") == []
    assert book.pictures_for("黄眉", None) == []


def test_subjects_parse_from_json_or_separated_text():
    assert parse_subjects('["黄眉", "急如火、快如风"]') == ["黄眉", "急如火、快如风"]
    assert parse_subjects("黄眉，小西天; 天命人\n猪八戒") == ["黄眉", "小西天", "天命人", "猪八戒"]
    assert parse_subjects(["黄眉", " "]) == ["黄眉"]
    assert parse_subjects("") == [] and parse_subjects(None) == []


# -- the tab ------------------------------------------------------------------------------------


def _fn(demo: gr.Blocks, component: gr.components.Component, event: str):
    found = [f for f in demo.fns.values() if (component._id, event) in f.targets]
    assert len(found) == 1, f"one {event} handler on {component.elem_id}"
    return found[0]


def _by_id(demo: gr.Blocks) -> dict[str, gr.components.Component]:
    return {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}


def test_the_tab_builds_inside_the_apps_blocks(kb_dir: Path, tmp_path: Path):
    chat = KnowledgeChat(make_settings(kb_dir, tmp_path / "data"))
    pics = tmp_path / "images"
    drawn = picture(pics, "bear", "Black Bear Guai, a huge black bear demon")
    with gr.Blocks() as demo:
        with gr.Tab("对话 Chat"):
            box = gr.Textbox(elem_id="question", show_label=False)
        with gr.Tab("图鉴 Compendium"):
            build_compendium_tab(chat, box, pics)
    parts = _by_id(demo)
    ids = ["compendium-shelf", "compendium-list", "compendium-search", "compendium-entry"]
    ids += ["compendium-ask", "compendium-pictures"]
    for elem_id in ids:
        assert elem_id in parts, elem_id
    shelf, listing, search = parts["compendium-shelf"], parts["compendium-list"], parts["compendium-search"]
    entry, ask, gallery = parts["compendium-entry"], parts["compendium-ask"], parts["compendium-pictures"]
    for control in (shelf, listing, search, entry, gallery, parts["compendium-nav"]):
        assert getattr(control, "label", ""), f"{control.elem_id} has no label"
    assert ask.value  # a button's text is its label
    assert isinstance(entry, gr.Markdown) and entry.sanitize_html
    assert gallery.visible is False and ask.interactive is False
    assert [c[1] for c in shelf.choices] == ["chapters", "bosses"] and shelf.value == "chapters"
    assert [c[1] for c in listing.choices] == ["第一回 火照黑云", "黑熊精"]

    # Picking an entry shows it, its question on the button and its pictures.
    md, key, button, gallery_update = _fn(demo, listing, "input").fn("黑熊精")
    assert md.startswith("## 黑熊精") and key == "黑熊精"
    assert button.interactive is True and "黑熊精是谁？怎么打？" in button.value
    assert gallery_update.visible is True and gallery_update.value[0]["image"]["orig_name"] == drawn.name
    assert _fn(demo, listing, "input").fn("第一回 火照黑云")[3].visible is False  # no pictures: hidden

    # "问问悟空" fills the chat's box; it sends nothing.
    ask_fn = _fn(demo, ask, "click")
    assert ask_fn.outputs == [box] and ask_fn.fn("黑熊精") == "黑熊精是谁？怎么打？"
    assert not [f for f in demo.fns.values() if (box._id, "change") in f.targets]

    # A shelf lists its rows; search runs on submit only, through the chat's retrieval.
    rows = _fn(demo, shelf, "input").fn("bosses")
    assert [c[1] for c in rows.choices] == ["黑熊精", "黄眉", "红孩儿"]
    assert not [
        f for f in demo.fns.values() if (search._id, "change") in f.targets or (search._id, "input") in f.targets
    ]
    found = _fn(demo, search, "submit").fn("Red Boy")
    assert found[0] is None and found[1].choices[0][1] == "红孩儿" and found[2].startswith("## 红孩儿")
    nothing = _fn(demo, search, "submit").fn("zzqx")
    assert "没有找到" in nothing[2]

    # A related link (caught in the page) opens the entry with its home shelf beside it.
    shelf_value, rows, md, key, *_ = _fn(demo, parts["compendium-nav"], "change").fn("红孩儿\x001700000000")
    assert shelf_value == "bosses" and rows.value == "红孩儿" and md.startswith("## 红孩儿") and key == "红孩儿"


def test_the_ask_button_can_switch_to_the_chat_tab(kb_dir: Path, tmp_path: Path):
    chat = KnowledgeChat(make_settings(kb_dir, tmp_path / "data"))
    with gr.Blocks() as demo, gr.Tabs() as tabs:
        with gr.Tab("对话 Chat", id="chat"):
            box = gr.Textbox(elem_id="question")
        with gr.Tab("图鉴 Compendium", id="compendium"):
            build_compendium_tab(chat, box, None, tabs=tabs, chat_tab="chat")
    ask_fn = _fn(demo, _by_id(demo)["compendium-ask"], "click")
    question, switch = ask_fn.fn("黄眉")
    assert question == "黄眉是谁？怎么打？" and switch.selected == "chat"
