import pytest

from modules.jsonl import JsonlError, json_objects


def test_objects_with_their_line_numbers_blank_lines_skipped():
    assert list(json_objects('{"a": 1}\n\n{"b": 2}\n')) == [(1, {"a": 1}), (3, {"b": 2})]


@pytest.mark.parametrize(("text", "reason"), [('{"a": 1}\nnope\n', "not JSON"), ("[1, 2]\n", "not a JSON object")])
def test_a_bad_line_is_named(text, reason):
    with pytest.raises(JsonlError) as err:
        list(json_objects(text))
    assert err.value.reason.startswith(reason)
    assert err.value.line == text.count("\n")
