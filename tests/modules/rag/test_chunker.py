from modules.rag.chunker import chunk_document, sections
from modules.rag.types import Document


def doc(body: str, summary_en: str = "") -> Document:
    return Document("x.md", "黑熊精", body, "x.md", summary_en=summary_en)


def test_sections_split_at_headings():
    secs = sections("开头一句。\n\n## 位置\n在黑风山。\n### 细节\n山顶。")
    assert [(s.heading, s.sentences) for s in secs] == [
        ("", ["开头一句。"]),
        ("位置", ["在黑风山。"]),
        ("细节", ["山顶。"]),
    ]


def test_chunks_never_cross_a_heading_or_split_a_sentence():
    body = "## 打法\n" + "闪避很重要。" * 30 + "\n## 原著\n第十六回。"
    chunks = chunk_document(doc(body), chunk_chars=50)
    assert {c.section for c in chunks} == {"打法", "原著"}
    for c in chunks:
        assert len(c.text) <= 50
        assert c.text.endswith("。")
    assert "".join(c.text for c in chunks if c.section == "打法") == "闪避很重要。" * 30


def test_overlong_sentence_is_cut_at_commas():
    sentence = "，".join(["天命人挥棍"] * 30) + "。"
    chunks = chunk_document(doc(sentence), chunk_chars=40)
    assert len(chunks) > 1
    assert all(len(c.text) <= 40 for c in chunks)
    assert "".join(c.text for c in chunks) == sentence


def test_list_items_stay_separate_sentences():
    chunks = chunk_document(doc("## 头目\n- 广智\n- 广谋\n- 黑熊精"), chunk_chars=300)
    assert chunks[0].text == "广智\n广谋\n黑熊精"


def test_english_summary_is_its_own_chunk_and_ids_are_sequential():
    chunks = chunk_document(
        doc("黑熊精在黑风山。", "The Black Bear Guai lives on Black Wind Mountain."), 300, first_id=7
    )
    assert [c.chunk_id for c in chunks] == [7, 8]
    assert chunks[-1].section == "English summary"
    assert chunks[-1].title == "黑熊精" and chunks[-1].source == "x.md"
