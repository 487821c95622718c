"""Fixtures for the speech tests: the spoken-question fixtures, the KB vocabulary, real and tiny models."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.modules.asr.tiny_paraformer import build_tiny_paraformer

REPO = Path(__file__).resolve().parents[3]
SPEECH = REPO.parent / "shared" / "testdata" / "speech"
NO_SPEECH_FIXTURES = f"the spoken-question fixtures live in {SPEECH} (the shared/ folder beside the repo)"
NO_WHISPER = 'WULEWULE_DEV_WHISPER is unset: run `eval "$(../shared/dev-models/fetch)"` in the repo root, then pytest'


def manifest() -> list[dict[str, Any]]:
    """The fixtures' manifest.jsonl records (empty when the fixtures are absent)."""
    path = SPEECH / "manifest.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fixture(name: str) -> Path:
    """The path of one speech fixture; skips the test when the fixtures are not here."""
    path = SPEECH / name
    if not path.is_file():
        pytest.skip(NO_SPEECH_FIXTURES)
    return path


@pytest.fixture(scope="session")
def vocabulary() -> list[str]:
    """The game vocabulary from the shipped knowledge base, as the app builds it."""
    from modules.asr.hotwords import game_vocabulary
    from modules.rag.loader import load_documents

    return game_vocabulary(load_documents([REPO / "assets" / "knowledge"]))


@pytest.fixture(scope="session")
def corrector(vocabulary: list[str]):
    from modules.asr.correction import TermCorrector

    return TermCorrector(vocabulary)


@pytest.fixture(scope="session")
def whisper_dir() -> Path:
    """The dev Whisper-base (faster-whisper format) from shared/dev-models/fetch."""
    path = os.environ.get("WULEWULE_DEV_WHISPER", "")
    if not path or not (Path(path) / "model.bin").is_file():
        pytest.skip(NO_WHISPER)
    return Path(path)


@pytest.fixture(scope="session")
def tiny_paraformer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Paraformer-zh model directory (takes no hotwords)."""
    return build_tiny_paraformer(tmp_path_factory.mktemp("tiny-paraformer"))


@pytest.fixture(scope="session")
def tiny_seaco_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SeACo-Paraformer model directory (takes hotwords)."""
    return build_tiny_paraformer(tmp_path_factory.mktemp("tiny-seaco"), kind="seaco")
