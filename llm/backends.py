"""Build the configured chat backend (llm.backend) — lazily, so unused backends cost nothing."""

from __future__ import annotations

import os
from pathlib import Path

from llm.base import ChatModel
from llm.settings import LlmSettings
from modules.model_files import ModelNotFoundError, locate_model

DOWNLOAD_HINT = {
    "lmdeploy": "python -m app download gpu",
    "transformers": "python -m app download gpu (or any local chat model directory)",
    "llamacpp": "python -m app download cpu",
}


def _model_dir(spec: str, key: str, backend: str, repo_root: Path) -> Path:
    if not spec.strip():
        raise ModelNotFoundError(
            f"config key {key} is empty: set it to a model path, or run `{DOWNLOAD_HINT[backend]}`"
        )
    loc = locate_model(spec, repo_root)
    if loc.path is None:
        raise ModelNotFoundError(
            f"config key {key}: {spec!r} is not on this machine. Run `{DOWNLOAD_HINT[backend]}` "
            f"or point {key} at a local copy; `python -m app doctor` checks it"
        )
    return loc.path


def create_chat_model(llm: LlmSettings, repo_root: Path, log_dir: Path) -> ChatModel:
    """The chat model for llm.backend; a missing model or tool is an error naming the config key."""
    backend = llm.backend
    if backend == "openai":
        from llm.openai_chat import OpenAIChatModel

        openai_cfg = llm.openai
        return OpenAIChatModel(
            openai_cfg.base_url,
            openai_cfg.model,
            api_key=os.environ.get(openai_cfg.api_key_env) or None,
            connect_timeout=openai_cfg.connect_timeout,
            read_timeout=openai_cfg.read_timeout,
        )
    if backend == "lmdeploy":
        from llm.lmdeploy_server import LmdeployChatModel, ManagedLmdeployServer

        lmdeploy_cfg = llm.lmdeploy
        if lmdeploy_cfg.url:
            return LmdeployChatModel(lmdeploy_cfg, url=lmdeploy_cfg.url)
        model_dir = _model_dir(lmdeploy_cfg.model, "llm.lmdeploy.model", backend, repo_root)
        command = Path(lmdeploy_cfg.command)
        command = command if command.is_absolute() or "/" not in lmdeploy_cfg.command else repo_root / command
        if "/" in lmdeploy_cfg.command and not command.exists():
            raise ModelNotFoundError(
                f"config key llm.lmdeploy.command: {lmdeploy_cfg.command} does not exist. Create the serving "
                "environment on the GPU host (`python3 -m venv .venv-serve && .venv-serve/bin/pip install -r "
                "requirements-serve.txt`), or run `lmdeploy serve api_server` yourself and set llm.lmdeploy.url"
            )
        server = ManagedLmdeployServer(lmdeploy_cfg, model_dir, log_dir, command=str(command))
        return LmdeployChatModel(lmdeploy_cfg, server=server)
    if backend == "transformers":
        from llm.transformers_chat import TransformersChatModel

        transformers_cfg = llm.transformers
        model_dir = _model_dir(transformers_cfg.model, "llm.transformers.model", backend, repo_root)
        return TransformersChatModel(
            model_dir, transformers_cfg.device, transformers_cfg.dtype, transformers_cfg.trust_remote_code
        )
    if backend == "llamacpp":
        from llm.llamacpp_chat import LlamaCppChatModel

        llamacpp_cfg = llm.llamacpp
        model_path = _model_dir(llamacpp_cfg.model, "llm.llamacpp.model", backend, repo_root)
        return LlamaCppChatModel(model_path, llamacpp_cfg.n_ctx, llamacpp_cfg.n_threads, llamacpp_cfg.n_gpu_layers)
    raise ValueError(f"llm.backend {backend!r} is not a chat-model backend")
