"""Build the configured chat backend (llm.backend) — lazily, so unused backends cost nothing."""

from __future__ import annotations

import os
from pathlib import Path

from app.config import LlmSettings
from llm.base import ChatModel
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

        cfg = llm.openai
        return OpenAIChatModel(
            cfg.base_url,
            cfg.model,
            api_key=os.environ.get(cfg.api_key_env) or None,
            connect_timeout=cfg.connect_timeout,
            read_timeout=cfg.read_timeout,
        )
    if backend == "lmdeploy":
        from llm.lmdeploy_server import LmdeployChatModel, ManagedLmdeployServer

        cfg = llm.lmdeploy
        if cfg.url:
            return LmdeployChatModel(cfg, url=cfg.url)
        model_dir = _model_dir(cfg.model, "llm.lmdeploy.model", backend, repo_root)
        command = Path(cfg.command)
        command = command if command.is_absolute() or "/" not in cfg.command else repo_root / command
        if "/" in cfg.command and not command.exists():
            raise ModelNotFoundError(
                f"config key llm.lmdeploy.command: {cfg.command} does not exist. Create the serving environment "
                "on the GPU host (`python3 -m venv .venv-serve && .venv-serve/bin/pip install -r "
                "requirements-serve.txt`), or run `lmdeploy serve api_server` yourself and set llm.lmdeploy.url"
            )
        server = ManagedLmdeployServer(cfg, model_dir, log_dir, command=str(command))
        return LmdeployChatModel(cfg, server=server)
    if backend == "transformers":
        from llm.transformers_chat import TransformersChatModel

        cfg = llm.transformers
        model_dir = _model_dir(cfg.model, "llm.transformers.model", backend, repo_root)
        return TransformersChatModel(model_dir, cfg.device, cfg.dtype, cfg.trust_remote_code)
    if backend == "llamacpp":
        from llm.llamacpp_chat import LlamaCppChatModel

        cfg = llm.llamacpp
        model_path = _model_dir(cfg.model, "llm.llamacpp.model", backend, repo_root)
        return LlamaCppChatModel(model_path, cfg.n_ctx, cfg.n_threads, cfg.n_gpu_layers)
    raise ValueError(f"llm.backend {backend!r} is not a chat-model backend")
