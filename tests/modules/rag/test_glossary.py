from modules.rag.glossary import chinese_terms


def test_english_game_words_get_their_chinese_terms():
    assert chinese_terms("How do I beat the boss?") == ["打法", "头目", "妖王"]
    assert chinese_terms("Is there New Game Plus?") == ["二周目"]


def test_words_inside_other_words_do_not_match():
    assert chinese_terms("forget the settlement") == []
    assert chinese_terms("天命人") == []
