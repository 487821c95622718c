"""Property tests for the configuration layers: any value either loads or fails with a ConfigError naming
the key — never another exception — and the precedence holds for every key and value."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from app.config import load_settings, parse_set_flags
from modules.config_layers import ConfigError

KEYS = ["rag.top_k", "app.port", "llm.temperature", "asr.max_seconds", "tts.backend", "image.width", "app.host"]
text = st.text(alphabet=string.printable + "中文：，", max_size=30)


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(KEYS), value=text)
def test_any_value_loads_or_is_a_config_error_naming_the_key(key: str, value: str):
    try:
        load_settings(None, [f"{key}={value}"], environ={})
    except ConfigError as exc:
        assert key in str(exc) or key.split(".")[-1] in str(exc)


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=8), min_size=1, max_size=4),
       value=text)  # fmt: skip
def test_an_unknown_key_is_always_refused(parts: list[str], value: str):
    dotted = "nosuchsection." + ".".join(parts)
    try:
        load_settings(None, [f"{dotted}={value}"], environ={})
    except ConfigError as exc:
        assert "unknown config key" in str(exc) or "not a section" in str(exc)
    else:  # pragma: no cover - hypothesis would show the key
        raise AssertionError(f"{dotted} was accepted")


@settings(max_examples=100, deadline=None)
@given(env=st.integers(1, 50), flag=st.integers(1, 50))
def test_a_flag_beats_the_environment_which_beats_the_file(env: int, flag: int):
    environ = {"WULEWULE_RAG__TOP_K": str(env)}
    assert load_settings(None, [], environ=environ).rag.top_k == env
    assert load_settings(None, [f"rag.top_k={flag}"], environ=environ).rag.top_k == flag


@given(st.text(max_size=40))
def test_set_flags_parse_or_fail_cleanly(flag: str):
    try:
        pairs = parse_set_flags([flag])
    except ConfigError:
        assert "=" not in flag or not flag.partition("=")[0].strip()
    else:
        assert pairs == [(flag.partition("=")[0].strip(), flag.partition("=")[2])]
