"""The Gradio app, started for real on a free port and driven through gradio_client."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from app.ui import format_sources, history_turns, message_text
from tests.app.serving import start_app
from tests.conftest import write_kb

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("ui")
    write_kb(root / "kb")
    for url in start_app(root, "ui"):
        yield url + "/"


def test_ask_api_streams_a_cited_answer(app_url: str):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    job = client.submit("红孩儿的父亲是谁？", api_name="/ask")
    final = job.result(timeout=60)
    updates = job.outputs()
    assert len(updates) > 2, "the answer should arrive in several pieces"
    partial = [u["answer"] for u in updates[:-1]]
    assert all(final["answer"].startswith(p.strip()) for p in partial if p.strip())
    assert final["done"] is True
    assert "牛魔王" in final["answer"] and "[1]" in final["answer"]
    assert final["sources"][0]["title"] == "红孩儿"


def test_chat_endpoint_keeps_history_and_shows_sources(app_url: str):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    box, _mic, messages, _voice, _voice_file, _gallery = client.predict(
        "红孩儿是谁？", None, [], False, [], api_name="/chat"
    )
    assert box == ""
    texts = [message_text(m["content"]) for m in messages]
    assert texts[0] == "红孩儿是谁？"
    assert "火焰山" in texts[1]
    sources = [m for m in messages if (m.get("metadata") or {}).get("title", "").startswith("📚")]
    assert sources and "红孩儿" in message_text(sources[0]["content"])

    box, _mic, messages, *_ = client.predict("那他的父亲呢？", None, messages, False, [], api_name="/chat")
    texts = [message_text(m["content"]) for m in messages]
    assert "红孩儿是谁？" in texts and "那他的父亲呢？" in texts  # nothing lost
    assert "牛魔王" in texts[-2]


def test_home_page_serves(app_url: str):
    with urllib.request.urlopen(app_url, timeout=5) as resp:
        assert resp.status == 200
        assert "悟了悟了" in resp.read().decode("utf-8", "replace")


def test_history_helpers():
    history = [
        {"role": "user", "content": [{"type": "text", "text": "你好"}]},
        {"role": "assistant", "content": "答", "metadata": None},
        {"role": "assistant", "content": "来源", "metadata": {"title": "📚 来源"}},
    ]
    turns = history_turns(history)
    assert [(t.role, t.content) for t in turns] == [("user", "你好"), ("assistant", "答")]


def test_sources_are_escaped():
    from app.events import Source

    md = format_sources([Source(1, "<b>x</b>", "", "<script>alert(1)</script>", "kb/x.md", 1.0)])
    assert "<script>" not in md and "&lt;script&gt;" in md


def test_an_interrupted_answer_is_marked_cut_once_and_its_sources_are_kept():
    from app.ui import CUT_MARK, mark_cut

    history = [
        {"role": "user", "content": "黑熊精在哪里打？"},
        {"role": "assistant", "content": "在黑风山[1]"},
        {"role": "assistant", "content": "**[1] 黑熊精**", "metadata": {"title": "📚 来源 / Sources（1）"}},
    ]
    cut = mark_cut(history)
    assert cut[1]["content"] == "在黑风山[1]" + CUT_MARK and cut[2] == history[2]
    assert mark_cut(cut) == cut  # marked once
    assert history[1]["content"] == "在黑风山[1]"  # the original is not changed
    assert mark_cut([]) == []


def test_each_tab_has_its_own_conversation_and_closing_ends_it(kb_dir, tmp_path):
    from app.companion import Companion
    from app.ui import Conversations
    from tests.conftest import make_settings

    companion = Companion(make_settings(kb_dir, tmp_path / "data"))
    tabs = Conversations()
    one, two = tabs.get("tab-1", companion), tabs.get("tab-2", companion)
    assert one is not two and tabs.get("tab-1", companion) is one and len(tabs) == 2
    tabs.close("tab-1")
    assert one.closed and tabs.find("tab-1") is None and len(tabs) == 1
    tabs.close("never-seen")  # a tab that never spoke: nothing to do


def test_stop_ends_a_tabs_running_turns_and_says_whether_they_ended():
    import threading
    import time

    from app.ui import RunningTurns

    running = RunningTurns()
    assert running.stop("tab") is False  # nothing runs: the caller falls back to gradio's cancel (a queued turn)

    def turn(session: str, step_s: float, seen: list[bool]) -> None:
        with running.turn(session) as stopped:
            while not stopped.wait(step_s):  # one step of the answer, then a look at the flag
                pass
            seen.append(True)

    seen: list[bool] = []
    mine = threading.Thread(target=turn, args=("tab", 0.05, seen))
    other = threading.Thread(target=turn, args=("other tab", 0.05, []))
    mine.start()
    other.start()
    while len(running) < 2:
        time.sleep(0.01)
    assert running.stop("tab", wait=5) is True and seen == [True]
    assert len(running) == 1  # another tab's turn goes on
    assert running.stop("other tab", wait=5) is True
    mine.join()
    other.join()
    assert len(running) == 0

    # A turn stuck in one long step is not waited for past the limit.
    release = threading.Event()

    def stuck() -> None:
        with running.turn("tab"):
            release.wait(10)

    thread = threading.Thread(target=stuck)
    thread.start()
    while len(running) < 1:
        time.sleep(0.01)
    started = time.monotonic()
    assert running.stop("tab", wait=0.2) is False
    assert time.monotonic() - started < 2
    release.set()
    thread.join()


def test_a_turn_whose_tab_closed_while_it_was_heard_says_nothing():
    from concurrent.futures import CancelledError
    from typing import Any

    from app.ui import hear_turn

    class Closed:
        def take(self, token: str) -> Any:
            raise CancelledError  # Conversation.close() cancelled the recognition this turn waited for

    class Broken:
        def take(self, token: str) -> Any:
            raise RuntimeError("model file missing")

    assert hear_turn(Closed(), "turn-1") is None  # type: ignore[arg-type]
    assert hear_turn(Broken(), "turn-1") == "语音识别不可用：model file missing"  # type: ignore[arg-type]
