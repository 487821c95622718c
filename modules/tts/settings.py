"""Speech-synthesis settings (``tts:`` in ``configs/default.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from modules.config_layers import Section


class ChatTTSSettings(Section):
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


class EspeakSettings(Section):
    command: str = "espeak-ng"
    voice_zh: str = "cmn-latn-pinyin"  # Mandarin read from pinyin with tone numbers (see docs/voice.md)
    voice_en: str = "en-us"
    speed: int = Field(185, ge=80, le=450)  # words per minute; brighter and quicker than the default 175
    pitch: int = Field(62, ge=0, le=99)  # 50 is espeak's default; higher sounds younger and livelier


class OpenAITtsSettings(Section):
    """A remote voice behind OpenAI's ``POST {base_url}/audio/speech``, streamed (tts.backend=openai)."""

    base_url: str = ""  # the server's /v1 URL, e.g. http://127.0.0.1:8000/v1; empty = not configured
    model: str = ""  # the model name the server expects (OpenAI: tts-1); empty = not sent
    voice: str = "alloy"  # the server's voice name
    response_format: Literal["pcm", "wav"] = "pcm"  # pcm: raw 16-bit mono at sample_rate; wav: the header says
    sample_rate: int = Field(24000, ge=8000, le=192000)  # of "pcm" audio (OpenAI's is 24000)
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key (unset = no key)
    connect_timeout: float = Field(5, gt=0)  # seconds to connect
    read_timeout: float = Field(30, gt=0)  # seconds to wait for the next piece of audio


class TtsSettings(Section):
    # auto: chattts when its model is present, else espeak when espeak-ng is installed, else text only;
    # openai: a remote OpenAI-compatible /audio/speech server (tts.openai), never chosen by auto
    backend: Literal["auto", "chattts", "espeak", "openai"] = "auto"
    voice_replies: bool = True  # speak answers (the player can switch this off in the app)
    max_sentence_chars: int = Field(80, ge=10)  # longer sentences are split at natural pauses
    chattts: ChatTTSSettings = Field(default_factory=ChatTTSSettings)
    espeak: EspeakSettings = Field(default_factory=EspeakSettings)
    openai: OpenAITtsSettings = Field(default_factory=OpenAITtsSettings)
