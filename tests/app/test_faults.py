"""Faults: a model server killed mid-answer, a hung one, a broken model — the player always gets a clear
message, an answer from the knowledge base where one exists, and the conversation so far."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.events import Answer, Notice, TextDelta
from app.knowledge_chat import KnowledgeChat
from tests.app.serving import free_port
from tests.conftest import REPO, make_settings


def start_fake_llm(*flags: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", str(port), *flags],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc, f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def slow_llm() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc, url = start_fake_llm("--delay", "0.2")
    yield proc, url
    proc.kill()
    proc.wait()


def openai_assistant(kb_dir: Path, tmp_path: Path, url: str, read_timeout: float = 30) -> KnowledgeChat:
    settings = make_settings(
        kb_dir,
        tmp_path / "data",
        "llm.backend=openai",
        f"llm.openai.base_url={url}",
        "llm.openai.model=fake",
        f"llm.openai.read_timeout={read_timeout}",
        "llm.openai.connect_timeout=2",
        "llm.rewrite_followups=false",
    )
    return KnowledgeChat(settings)


def test_a_model_server_killed_mid_answer(kb_dir: Path, tmp_path: Path, slow_llm):
    proc, url = slow_llm
    assistant = openai_assistant(kb_dir, tmp_path, url)
    events = []
    for event in assistant.ask_stream("黄眉原本是谁的童子？"):
        events.append(event)
        if sum(bool(isinstance(e, TextDelta) and e.text.strip()) for e in events) == 2:
            proc.kill()  # SIGKILL: no goodbye on the socket
    notices = [e.text for e in events if isinstance(e, Notice)]
    final = events[-1]
    assert isinstance(final, Answer)
    assert notices and "模型服务出错" in notices[0]
    assert "弥勒" in final.answer  # the knowledge base answered instead
    assert final.backend == "openai+extractive"

    # The server stays dead: the next question is still answered, with the same explanation.
    again = assistant.ask("红孩儿的父亲是谁？")
    assert "牛魔王" in again.answer and again.notices


def test_a_hung_model_server_times_out(kb_dir: Path, tmp_path: Path):
    proc, url = start_fake_llm("--hang")
    try:
        assistant = openai_assistant(kb_dir, tmp_path, url, read_timeout=1.5)
        started = time.monotonic()
        answer = assistant.ask("黄眉原本是谁的童子？")
        assert time.monotonic() - started < 15
        assert answer.notices and "弥勒" in answer.answer
    finally:
        proc.kill()
        proc.wait()


def test_a_missing_llamacpp_model_is_a_start_up_error_naming_the_key(kb_dir: Path, tmp_path: Path):
    from modules.model_files import ModelNotFoundError

    settings = make_settings(kb_dir, tmp_path / "data", "llm.backend=llamacpp", f"llm.llamacpp.model={tmp_path}/x.gguf")
    with pytest.raises((ModelNotFoundError, FileNotFoundError), match=r"llm\.llamacpp\.model"):
        KnowledgeChat(settings).answerer  # noqa: B018


def test_a_corrupt_gguf_is_a_clear_error(kb_dir: Path, tmp_path: Path):
    from llm.base import ChatModelError

    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    settings = make_settings(kb_dir, tmp_path / "data", "llm.backend=llamacpp", f"llm.llamacpp.model={bad}")
    assistant = KnowledgeChat(settings)
    try:
        answer = assistant.ask("黄眉原本是谁的童子？")
    except (ChatModelError, ValueError, OSError) as exc:
        assert "broken.gguf" in str(exc) or "gguf" in str(exc).lower()
    else:  # or it answers from the knowledge base and says why
        assert answer.notices and "弥勒" in answer.answer
