"""Chat-model settings (``llm:`` in ``configs/default.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modules.config_layers import Section


class OpenAISettings(Section):
    base_url: str = "http://127.0.0.1:23333/v1"
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    connect_timeout: float = Field(5, gt=0)
    read_timeout: float = Field(60, gt=0)


class LmdeploySettings(Section):
    url: str = ""
    model: str = "models/xzyun2011/wulewule_v1_1_8b-w4a16-4bit"
    command: str = ".venv-serve/bin/lmdeploy"
    host: str = "127.0.0.1"
    port: int = Field(23333, ge=1, le=65535)
    model_format: Literal["auto", "hf", "awq"] = "auto"
    cache_max_entry_count: float = Field(0.5, gt=0, le=1)
    session_len: int = Field(8192, ge=256)
    tp: int = Field(1, ge=1)
    startup_timeout: float = Field(600, gt=0)


class TransformersSettings(Section):
    model: str = ""
    device: str = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    trust_remote_code: bool = False


class LlamaCppSettings(Section):
    model: str = ""
    n_ctx: int = Field(4096, ge=256)
    n_threads: int = Field(0, ge=0)
    n_gpu_layers: int = Field(0, ge=0)


class LlmSettings(Section):
    backend: Literal["extractive", "openai", "lmdeploy", "transformers", "llamacpp"] = "extractive"
    max_answer_sentences: int = Field(4, ge=1, le=10)
    min_relevance: float = Field(0.5, ge=0.0, le=1.0)
    system_prompt: str = ""
    max_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.3, ge=0.0, le=2.0)
    context_tokens: int = Field(4096, ge=512)
    history_tokens: int = Field(1024, ge=0)
    rewrite_followups: bool = True
    compact_context: Literal["auto", "true", "false"] | bool = "auto"
    compact_sentences: int = Field(2, ge=1, le=20)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    lmdeploy: LmdeploySettings = Field(default_factory=LmdeploySettings)
    transformers: TransformersSettings = Field(default_factory=TransformersSettings)
    llamacpp: LlamaCppSettings = Field(default_factory=LlamaCppSettings)
