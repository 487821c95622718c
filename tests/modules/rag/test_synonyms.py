from modules.rag.synonyms import chinese_terms


def test_english_game_words_get_their_chinese_terms():
    assert chinese_terms("How do I beat the boss?") == ["打法", "头目", "妖王"]
    assert chinese_terms("Is there New Game Plus?") == ["二周目"]


def test_words_inside_other_words_do_not_match():
    assert chinese_terms("forget the settlement") == []
    assert chinese_terms("天命人") == []


def test_colloquial_words_get_the_knowledge_base_terms():
    from modules.rag.synonyms import kb_terms

    assert "妻子" in kb_terms("蝎大王他老婆是怎么死的")
    assert "打法" in kb_terms("虎先锋咋打")


def test_every_synonym_points_at_words_the_knowledge_base_uses():
    """A row whose terms appear nowhere in the shipped knowledge base expands a question into noise."""
    from modules.rag.loader import iter_knowledge_files
    from modules.rag.synonyms import COLLOQUIAL, GLOSSARY
    from tests.conftest import REPO

    text = "".join(p.read_text("utf-8") for _, p in iter_knowledge_files([REPO / "assets" / "knowledge"])).lower()
    terms = {term for table in (GLOSSARY, COLLOQUIAL) for terms in table.values() for term in terms.split()}
    unused = sorted(t for t in terms if t.lower() not in text)
    assert unused == []


def test_a_malformed_synonyms_file_is_a_clear_error(tmp_path):
    import pytest

    from modules.rag.synonyms import load_synonyms

    bad = tmp_path / "synonyms.yaml"
    bad.write_text("english:\n  co-op: [多人]\n", "utf-8")
    with pytest.raises(ValueError, match="english"):
        load_synonyms(bad)
    good = tmp_path / "ok.yaml"
    good.write_text("english:\n  Co-op: 多人 联机\ncolloquial:\n  联机: 多人\n", "utf-8")
    assert load_synonyms(good) == ({"co-op": "多人 联机"}, {"联机": "多人"})
