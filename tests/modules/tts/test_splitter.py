import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modules.tts.splitter import SentenceSplitter


def split(text: str, **kwargs) -> list[str]:
    return SentenceSplitter(**kwargs).split(text)


def feed_in(chunks: list[str], **kwargs) -> list[str]:
    splitter = SentenceSplitter(**kwargs)
    pieces = []
    for chunk in chunks:
        pieces += splitter.feed(chunk)
    return pieces + splitter.flush()


def test_chinese_sentences_keep_their_marks_and_closing_quotes():
    text = "黑熊精在黑风山。他说：“来吧！”真的吗？是的……好；走"
    expected = ["黑熊精在黑风山。", "他说：“来吧！”", "真的吗？", "是的……", "好；", "走"]
    assert split(text, first_clause_chars=0) == expected


def test_english_sentences_and_whitespace_goes_with_the_next_piece():
    assert split("Hi there. How are you? Fine!") == ["Hi there.", " How are you?", " Fine!"]


@pytest.mark.parametrize(
    "text",
    [
        "Version 3.5 is out",
        "Released on 2024.08.20 in China",
        "Dr. Feng designed it",
        "Bosses e.g. the bear are hard",
        "The U.S. release was big",
        "J. K. Rowling wrote it",
        "See example.com for more",
        "1. 第一项",
    ],
)
def test_dots_that_do_not_end_a_sentence(text):
    assert split(text, first_clause_chars=0) == [text]


def test_ellipsis_stays_whole_and_can_end_a_sentence():
    assert split("Wait... Then go.") == ["Wait...", " Then go."]
    assert split("好的...然后") == ["好的...", "然后"]


def test_newlines_end_pieces_but_blank_lines_make_no_empty_ones():
    assert split("标题\n\n- 第一条\n- 第二条") == ["标题\n", "\n- 第一条\n", "- 第二条"]


def test_a_trailing_dot_is_held_back_until_the_next_character():
    splitter = SentenceSplitter()
    assert splitter.feed("It costs 3.") == []
    assert splitter.feed("5 coins. Next") == ["It costs 3.5 coins."]
    assert splitter.flush() == [" Next"]


def test_a_closing_quote_after_the_end_is_waited_for():
    splitter = SentenceSplitter()
    assert splitter.feed("他说：“走吧。") == []
    assert splitter.feed("”然后") == ["他说：“走吧。”"]


def test_flush_emits_the_rest_and_resets():
    splitter = SentenceSplitter()
    assert splitter.feed("没有结尾") == []
    assert splitter.flush() == ["没有结尾"]
    assert splitter.flush() == []
    assert splitter.split("再来。") == ["再来。"]


def test_first_clause_fast_path():
    text = "黑熊精是第一回的最终头目，盘踞在黑风山，原本是妖怪。后来，他被收服了。"
    expected = ["黑熊精是第一回的最终头目，", "盘踞在黑风山，原本是妖怪。", "后来，他被收服了。"]
    assert split(text, first_clause_chars=8) == expected
    # A first clause shorter than the threshold waits for the sentence end.
    assert split("是的，黑熊精在黑风山。", first_clause_chars=8) == ["是的，黑熊精在黑风山。"]
    assert split(text, first_clause_chars=0)[0] == "黑熊精是第一回的最终头目，盘踞在黑风山，原本是妖怪。"


def test_fast_path_does_not_cut_inside_numbers():
    assert split("The first boss has 1,800 health points and hits hard.", first_clause_chars=5) == [
        "The first boss has 1,800 health points and hits hard."
    ]


def test_max_chars_cuts_an_endless_sentence_at_a_pause_or_space():
    pieces = split("a" * 10 + " " + "b" * 10 + " " + "c" * 10, max_chars=15, first_clause_chars=0)
    assert "".join(pieces) == "a" * 10 + " " + "b" * 10 + " " + "c" * 10
    assert all(len(p) <= 15 for p in pieces)
    assert pieces[0] == "a" * 10


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="first_clause_chars"):
        SentenceSplitter(first_clause_chars=-1)
    with pytest.raises(ValueError, match="max_chars"):
        SentenceSplitter(max_chars=1)
    with pytest.raises(TypeError, match="str"):
        SentenceSplitter().feed(b"bytes")  # type: ignore[arg-type]


# Text built from the characters the rules are about, so the property tests reach every branch.
_ALPHABET = [*"。！？；…!?.,，、：:;”）\"' \n3a5AbDrJ黑熊精", "Dr.", "e.g.", "U.S.", "...", "2024.08.20", "3.5"]
texts = st.lists(st.sampled_from(_ALPHABET), max_size=60).map("".join)


@st.composite
def text_and_cuts(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(texts)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=12)))
    bounds = [0, *cuts, len(text)]
    return text, [text[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=300, deadline=None)
@given(text_and_cuts(), st.sampled_from([0, 4, 12]), st.sampled_from([8, 40, 160]))
def test_pieces_join_to_the_text_and_do_not_depend_on_chunking(case, first_clause_chars, max_chars):
    text, chunks = case
    whole = split(text, first_clause_chars=first_clause_chars, max_chars=max_chars)
    streamed = feed_in(chunks, first_clause_chars=first_clause_chars, max_chars=max_chars)
    one_by_one = feed_in(list(text), first_clause_chars=first_clause_chars, max_chars=max_chars)
    assert "".join(streamed) == text
    assert streamed == whole == one_by_one
    assert all(piece for piece in whole)
    # The length cap may be passed only by the run of end marks and closing quotes a sentence ends with.
    assert all(len(piece.rstrip("。！？；…!?.\"'”）")) <= max_chars for piece in whole[:-1])
