"""Speech-recognition settings (``asr:`` in ``configs/default.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modules.config_layers import Section


class FunasrSettings(Section):
    """FunASR: Paraformer-zh + VAD + punctuation by default; SenseVoiceSmall by setting ``model``."""

    model: str = "iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch"
    vad_model: str = "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch"  # empty = no VAD stage
    punc_model: str = "iic/punc_ct-transformer_cn-en-common-vocab471067-large"  # empty = no punctuation
    device: str = "auto"  # auto | cpu | cuda | cuda:1
    hotwords: bool = True  # bias recognition toward the knowledge base's names (models that support it)
    # Streaming Paraformer (paraformer-zh-streaming): auto = when the model's config.yaml says ParaformerStreaming;
    # true = decode chunk by chunk with a cache; false = a streaming model decodes each clip in one call.
    streaming: Literal["auto"] | bool = "auto"
    # [left context, chunk, look-ahead] in 60 ms frames: [0, 10, 5] = 600 ms chunks, 300 ms look-ahead
    chunk_size: tuple[int, int, int] = (0, 10, 5)  # checked when the model loads: chunk >= 1, none negative
    encoder_chunk_look_back: int = Field(4, ge=0)  # chunks the encoder's self-attention looks back over
    decoder_chunk_look_back: int = Field(1, ge=0)  # encoder chunks the decoder's cross-attention looks back over


class WhisperSettings(Section):
    """faster-whisper (CTranslate2): English and other languages, and CPU laptops."""

    model: str = "Systran/faster-whisper-base"  # hub id or local dir (model.bin, config.json, tokenizer.json)
    device: str = "auto"  # auto | cpu | cuda
    compute_type: str = "default"  # default = int8 on CPU, float16 on GPU
    beam_size: int = Field(2, ge=1, le=20)  # 2 hears the fixtures as well as 5 and decodes faster; 1 hears worse
    cpu_threads: int = Field(0, ge=0)  # 0 = all cores
    prompt: bool = True  # an initial prompt naming the game and its entities
    prompt_tokens: int = Field(210, ge=0, le=210)  # the prompt's token budget; shorter saves little, hears worse
    without_timestamps: bool = True  # decode text tokens only (a question is one segment)
    window_s: float = Field(30, gt=0, le=30)  # encoder window; shorter is 2-5x faster but hears worse


class ConversationSettings(Section):
    """Hands-free conversation mode: when the player's turn ends, and when they cut in."""

    pause_ms: float = Field(600, ge=200, le=5000)  # this much silence after speech ends the player's turn
    phrase_pause_ms: float = Field(250, ge=100, le=5000)  # a shorter pause closes a phrase, recognised at once
    onset_ms: float = Field(96, ge=32, le=2000)  # this much speech in a row means the player started talking
    barge_in: bool = True  # the player talking over the answer stops it (voice and text)


class OpenAIAsrSettings(Section):
    """A remote recogniser behind OpenAI's ``POST {base_url}/audio/transcriptions`` (asr.backend=openai)."""

    base_url: str = ""  # the server's /v1 URL, e.g. http://127.0.0.1:8000/v1; empty = not configured
    model: str = ""  # the model name the server expects (OpenAI: whisper-1); empty = not sent
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key (unset = no key)
    connect_timeout: float = Field(5, gt=0)  # seconds to connect
    read_timeout: float = Field(60, gt=0)  # seconds to wait for the transcription


class AsrSettings(Section):
    # auto: funasr when its model is present, else whisper when present, else voice input says how to get one;
    # openai: a remote OpenAI-compatible /audio/transcriptions server (asr.openai), never chosen by auto
    backend: Literal["auto", "funasr", "whisper", "openai"] = "auto"
    language: Literal["auto", "zh", "en"] = "auto"
    max_seconds: float = Field(60, gt=0)  # longer recordings are refused with a message
    max_upload_mb: float = Field(20, gt=0)  # bigger files are refused before decoding
    vad: bool = True  # silero-vad: trim silence, tell "no speech" apart from speech
    vad_threshold: float = Field(0.5, gt=0, lt=1)
    correction: bool = True  # snap misheard game names to the knowledge base's (pinyin similarity)
    funasr: FunasrSettings = Field(default_factory=FunasrSettings)
    whisper: WhisperSettings = Field(default_factory=WhisperSettings)
    conversation: ConversationSettings = Field(default_factory=ConversationSettings)
    openai: OpenAIAsrSettings = Field(default_factory=OpenAIAsrSettings)
