from pathlib import Path

import pytest

from app.config import DEFAULT_CONFIG, load_settings, parse_set_flags
from modules.config_layers import ConfigError, env_overrides


def test_defaults_come_from_the_yaml_file():
    s = load_settings(environ={})
    assert s.app.host == "127.0.0.1"
    assert s.app.port == 7860
    assert s.rag.embedding.model == "maidalun1020/bce-embedding-base_v1"
    assert s.llm.backend == "extractive"
    assert "rag:" in DEFAULT_CONFIG.read_text("utf-8")


def test_precedence_file_then_env_then_set(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rag:\n  top_k: 3\n  candidates: 11\napp:\n  port: 9000\n", encoding="utf-8")
    s = load_settings(cfg, environ={})
    assert (s.rag.top_k, s.rag.candidates, s.app.port) == (3, 11, 9000)

    env = {"WULEWULE_RAG__TOP_K": "4", "WULEWULE_APP__PORT": "9001"}
    s = load_settings(cfg, environ=env)
    assert (s.rag.top_k, s.rag.candidates, s.app.port) == (4, 11, 9001)

    s = load_settings(cfg, ["rag.top_k=7"], environ=env)
    assert (s.rag.top_k, s.app.port) == (7, 9001)


def test_config_file_from_environment(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("app:\n  port: 9100\n", encoding="utf-8")
    assert load_settings(environ={"WULEWULE_CONFIG": str(cfg)}).app.port == 9100


def test_set_values_are_typed_by_yaml():
    s = load_settings(None, ["app.share=true", "knowledge.paths=[a, b]", "llm.min_relevance=0.5"], environ={})
    assert s.app.share is True
    assert [str(p) for p in s.knowledge.paths] == ["a", "b"]
    assert s.llm.min_relevance == 0.5


def test_empty_set_value_disables_a_model():
    assert load_settings(None, ["rag.embedding.model="], environ={}).rag.embedding.model == ""


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["rag.top_kk=3"], "unknown config key 'rag.top_kk'"),
        (["nope.x=1"], "unknown config key 'nope'"),
        (["rag.top_k=many"], "config key 'rag.top_k'"),
        (["rag.top_k=0"], "config key 'rag.top_k'"),
        (["app.port=70000"], "config key 'app.port'"),
        (["llm.backend=gpt9"], "config key 'llm.backend'"),
        (["llm.lmdeploy.model_format=gguf"], "config key 'llm.lmdeploy.model_format'"),
    ],
)
def test_bad_keys_and_values_name_the_key(sets, needle):
    with pytest.raises(ConfigError) as err:
        load_settings(None, sets, environ={})
    assert needle in str(err.value)


def test_bad_environment_value_names_the_key():
    with pytest.raises(ConfigError, match=r"config key 'rag\.top_k'"):
        load_settings(environ={"WULEWULE_RAG__TOP_K": "lots"})


def test_set_flag_needs_an_equals_sign():
    with pytest.raises(ConfigError, match=r"expected dotted\.key=value"):
        parse_set_flags(["rag.top_k"])


def test_setting_inside_a_scalar_is_an_error():
    with pytest.raises(ConfigError, match="is not a section"):
        load_settings(None, ["app.port.x=1"], environ={})


def test_missing_or_broken_config_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("app: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad, environ={})
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(scalar, environ={})


def test_env_overrides_ignore_other_variables():
    pairs = env_overrides(
        {"WULEWULE_APP__PORT": "1", "WULEWULE_CONFIG": "x", "PATH": "/bin", "WULEWULE_X": "y"}, "WULEWULE_"
    )
    assert pairs == [("app.port", "1")]


def test_relative_paths_resolve_against_the_repo():
    s = load_settings(environ={})
    assert s.data_dir.is_absolute()
    assert s.user_kb_dir == s.data_dir / "user_kb"
