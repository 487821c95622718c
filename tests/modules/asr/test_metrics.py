"""CER and WER measured the way the speech fixtures' README says."""

from __future__ import annotations

import json

import pytest

from modules.asr.metrics import ErrorRate, cer, cer_units, edit_distance, mean_rate, wer, wer_words
from tests.modules.asr.conftest import SPEECH


def test_cer_units_follow_the_readme():
    assert cer_units("游戏里一共有多少个Boss？") == [*"游戏里一共有多少个", "boss"]
    assert cer_units("2024年") == [*"二零二四年"]
    assert cer_units("《黑神話：悟空》, 有沒有") == [*"黑神话悟空有没有"]  # simplified, punctuation dropped


def test_cer_counts_edits_over_reference_units():
    assert cer("黑熊精住在哪座山上", "黑熊精住在哪座山上。") == ErrorRate(0, 9)
    assert cer("黑熊精住在哪座山上", "黑雄金住在哪座山上").rate == pytest.approx(2 / 9)
    assert cer("", "").rate == 0.0 and cer("", "多余").rate == 1.0


def test_wer():
    assert wer("Where can I find the Yellow Wind Sage?", "Where can I find the yellow wind sage.").errors == 0
    assert wer(
        "How many chapters does Black Myth Wukong have?", "How many chapters does Blight Myth Wook on have?"
    ) == ErrorRate(3, 8)
    assert wer_words("It's Sun Wukong’s staff!") == ["it's", "sun", "wukong's", "staff"]


def test_edit_distance_and_mean():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["a"]) == 1
    assert mean_rate([ErrorRate(1, 2), ErrorRate(0, 4)]) == 0.25
    assert mean_rate([]) == 0.0


def test_matches_the_recorded_baseline_rates():
    """Our CER/WER reproduce the rate the baseline file recorded for every hypothesis."""
    path = SPEECH / "whisper_base_baseline.jsonl"
    if not path.is_file():
        pytest.skip("whisper_base_baseline.jsonl is in the shared speech fixtures")
    checked = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["kind"] != "question":
            continue
        measure = cer if record["metric"] == "cer" else wer
        for run in ("noprompt", "prompt"):
            result = measure(record["ref"], record[run]["hyp"])
            assert result.errors == record[run]["errors"], (record["file"], run)
            assert result.ref_units == record[run]["ref_units"]
            checked += 1
    assert checked == 48
