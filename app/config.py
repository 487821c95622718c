"""The app's typed configuration: each package's settings section composed into one ``Settings``.

Each package owns its section (``modules/asr/settings.py``, ``modules/tts/settings.py``,
``modules/image/settings.py``, ``modules/rag/settings.py``, ``llm/settings.py``); this module adds the app's
own (``app``, ``api``) and loads them through ``modules/config_layers.py``: ``configs/default.yaml`` <
``--config PATH`` (or ``WULEWULE_CONFIG``) < ``WULEWULE_*`` environment variables < ``--set dotted.key=value``
flags. Unknown keys and bad values fail at start with the key named.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import Field

from llm.settings import LlmSettings
from modules.asr.settings import AsrSettings
from modules.config_layers import ConfigError, Section, load_layers, parse_set_flags
from modules.image.settings import ImageSettings
from modules.rag.settings import KnowledgeSettings, RagSettings
from modules.tts.settings import TtsSettings

__all__ = ["DEFAULT_CONFIG", "ENV_PREFIX", "REPO_ROOT", "ConfigError", "Settings", "load_settings", "parse_set_flags"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"
ENV_PREFIX = "WULEWULE_"


class AppSettings(Section):
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


class ApiSettings(Section):
    enabled: bool = True
    api_key_env: str = "WULEWULE_API_KEY"


class Settings(Section):
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


def load_settings(
    config_path: Path | str | None = None,
    sets: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from the layers above; raises ConfigError naming the offending key."""
    environ = os.environ if environ is None else environ
    config_path = config_path or environ.get(ENV_PREFIX + "CONFIG")
    return load_layers(Settings, DEFAULT_CONFIG, config_path, sets, environ, ENV_PREFIX)
