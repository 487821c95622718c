"""The backend factory: each llm.backend builds its chat model, or fails naming the config key."""

from pathlib import Path

import pytest

from app.config import load_settings
from llm.backends import create_chat_model
from modules.model_files import ModelNotFoundError


def llm_settings(*sets: str):
    return load_settings(None, list(sets), environ={}).llm


def test_openai_backend_reads_its_key_from_the_named_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("MY_KEY", "sk-test")
    model = create_chat_model(
        llm_settings(
            "llm.backend=openai", "llm.openai.base_url=http://127.0.0.1:9/v1", "llm.openai.api_key_env=MY_KEY"
        ),
        tmp_path,
        tmp_path,
    )
    assert model.name == "openai"
    assert model._client.headers["Authorization"] == "Bearer sk-test"


def test_lmdeploy_with_a_url_only_connects(tmp_path):
    model = create_chat_model(
        llm_settings("llm.backend=lmdeploy", "llm.lmdeploy.url=http://127.0.0.1:9"), tmp_path, tmp_path
    )
    assert model.name == "lmdeploy"
    assert model.base_url.endswith("/v1")


def test_managed_lmdeploy_needs_the_model_and_the_serving_environment(tmp_path: Path):
    with pytest.raises(ModelNotFoundError, match=r"llm\.lmdeploy\.model.*download gpu"):
        create_chat_model(llm_settings("llm.backend=lmdeploy", "llm.lmdeploy.model=models/nope"), tmp_path, tmp_path)
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"llm\.lmdeploy\.command.*requirements-serve\.txt"):
        create_chat_model(
            llm_settings(
                "llm.backend=lmdeploy",
                f"llm.lmdeploy.model={tmp_path / 'm'}",
                "llm.lmdeploy.command=.venv-x/bin/lmdeploy",
            ),
            tmp_path,
            tmp_path,
        )


@pytest.mark.parametrize(
    ("backend", "key"), [("transformers", "llm.transformers.model"), ("llamacpp", "llm.llamacpp.model")]
)
def test_in_process_backends_need_a_model(backend, key, tmp_path):
    with pytest.raises(ModelNotFoundError, match=key.replace(".", r"\.") + " is empty"):
        create_chat_model(llm_settings(f"llm.backend={backend}"), tmp_path, tmp_path)
    with pytest.raises(ModelNotFoundError, match="not on this machine"):
        create_chat_model(llm_settings(f"llm.backend={backend}", f"{key}=/no/such/model"), tmp_path, tmp_path)


def test_extractive_is_not_a_chat_model(tmp_path):
    with pytest.raises(ValueError, match="not a chat-model backend"):
        create_chat_model(llm_settings(), tmp_path, tmp_path)
