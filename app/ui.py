"""The Gradio app: chat with streamed, cited answers. The UI only talks to the Assistant."""

from __future__ import annotations

import html
import logging
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import gradio as gr

from app.assistant import Answer, Assistant, Notice, Source, SourcesFound, TextDelta
from app.config import Settings
from llm.base import ChatTurn

log = logging.getLogger(__name__)

TITLE = "悟了悟了 · 黑神话：悟空 AI 助手"
INTRO = (
    "问我《黑神话：悟空》的剧情、章节、妖王打法、角色、法术装备、隐藏结局和《西游记》原著典故。"
    "每个回答都附上知识库来源。Ask in English too."
)
SOURCES_TITLE = "📚 来源 / Sources"


def message_text(content: Any) -> str:
    """The text of a chat message's content, whichever shape gradio hands it over in."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("value") or "")
    if isinstance(content, (list, tuple)):
        return "".join(message_text(part) for part in content)
    return ""


def history_turns(history: list[dict[str, Any]]) -> list[ChatTurn]:
    """Chatbot messages as conversation turns; source lists and notices are not part of it."""
    turns = []
    for msg in history or []:
        meta = msg.get("metadata") or {}
        if meta.get("title"):
            continue
        role = msg.get("role")
        if role in ("user", "assistant"):
            turns.append(ChatTurn(role, message_text(msg.get("content"))))
    return turns


def format_sources(sources: list[Source]) -> str:
    """Sources as Markdown: number, title · section, the passage, the file. Text is escaped."""
    lines = []
    for s in sources:
        section = f" · {html.escape(s.section)}" if s.section else ""
        text = html.escape(s.text.replace("\n", " "))
        lines.append(f"**[{s.index}] {html.escape(s.title)}{section}**  \n{text}  \n<sub>{html.escape(s.source)}</sub>")
    return "\n\n".join(lines)


def answer_stream(assistant: Assistant, message: str, history: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """The chatbot's messages after each step of one turn (the UI's streaming handler)."""
    turns = history_turns(history)
    messages = [*history, {"role": "user", "content": message}]
    answer_msg: dict[str, Any] = {"role": "assistant", "content": ""}
    messages.append(answer_msg)
    yield messages
    try:
        for event in assistant.ask_stream(message, turns):
            if isinstance(event, Notice):
                messages.insert(-1, {"role": "assistant", "content": event.text, "metadata": {"title": "ℹ️ 提示"}})
            elif isinstance(event, TextDelta):
                answer_msg["content"] += event.text
                yield messages
            elif isinstance(event, SourcesFound):
                pass
            elif isinstance(event, Answer) and event.sources:
                messages.append(
                    {
                        "role": "assistant",
                        "content": format_sources(event.sources),
                        "metadata": {"title": f"{SOURCES_TITLE}（{len(event.sources)}）", "status": "done"},
                    }
                )
    except Exception as exc:  # the conversation must survive any backend failure
        log.exception("answering failed")
        answer_msg["content"] += f"\n\n⚠️ 出错了，这个问题没能回答完：{exc}。对话记录还在，可以再试一次。"
    yield messages


def build_ui(assistant: Assistant, settings: Settings) -> gr.Blocks:
    with gr.Blocks(title=TITLE, fill_height=True) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        status = gr.Markdown(f"<sub>状态：{html.escape(assistant.status_line())}</sub>", elem_id="status")
        chatbot = gr.Chatbot(
            label="对话", height=520, buttons=["copy"], elem_id="chatbot", placeholder="天命人，有什么想问的？"
        )
        with gr.Row():
            box = gr.Textbox(
                placeholder="问点什么，比如：黄眉在原著里是谁的童子？",
                show_label=False,
                scale=8,
                max_lines=6,
                elem_id="question",
            )
            send = gr.Button("发送", variant="primary", scale=1, elem_id="send")
        with gr.Row():
            stop = gr.Button("停止", variant="stop", elem_id="stop")
            clear = gr.Button("清空对话", elem_id="clear")
        if settings.app.examples:
            gr.Examples(examples=[[e] for e in settings.app.examples], inputs=[box], label="试试这些")

        def respond(message: str, history: list[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
            for messages in answer_stream(assistant, message, history):
                yield "", messages

        def ask_api(question: str) -> Iterator[dict[str, Any]]:
            """Stream one question's answer: {"answer": text so far, "sources": [...], "done": bool}."""
            text = ""
            for event in assistant.ask_stream(question):
                if isinstance(event, TextDelta):
                    text += event.text
                    yield {"answer": text, "sources": [], "done": False}
                elif isinstance(event, Answer):
                    yield {**event.to_dict(), "done": True}

        submit_evt = box.submit(respond, [box, chatbot], [box, chatbot], api_name="chat")
        click_evt = send.click(respond, [box, chatbot], [box, chatbot], api_name=False)
        ask_evt = gr.api(ask_api, api_name="ask")
        stop.click(None, None, None, cancels=[submit_evt, click_evt], api_name=False)
        clear.click(lambda: ([], ""), None, [chatbot, box], api_name=False, queue=False)
        del status, ask_evt
    demo.queue(default_concurrency_limit=settings.app.concurrency_limit, max_size=settings.app.max_queue)
    return demo


def launch(settings: Settings, auth_flags: Sequence[str] = ()) -> None:
    """Load everything, then serve until interrupted: the web app, and the /v1 API beside it (api.enabled)."""
    from app.access import web_logins

    # Before loading anything: refusing to start should not wait for the index to build.
    logins = web_logins(settings.app.host, settings.app.share, auth_flags, settings.app.auth_env, os.environ)
    serve_api = settings.api.enabled and not settings.app.share
    api_key = None
    if serve_api:
        from app.openai_api import required_api_key

        # Before loading anything: refusing to start should not wait for the index to build.
        api_key = required_api_key(settings.app.host, settings.api.api_key_env, os.environ)
    started = time.perf_counter()
    assistant = Assistant(settings)
    assistant.warm_up()
    demo = build_ui(assistant, settings)
    log.info("assistant ready in %.1f s: %s", time.perf_counter() - started, assistant.status_line())
    if serve_api:
        _serve_with_api(settings, assistant, demo, api_key, logins)
        return
    if settings.api.enabled:
        # The share tunnel is made by gradio's own server, which only knows the Blocks.
        log.warning("--share: the /v1 OpenAI-compatible API is not served with a share link; run without --share")
    demo.launch(
        server_name=settings.app.host,
        server_port=settings.app.port,
        share=settings.app.share,
        show_error=True,
        footer_links=["api"],
        auth=logins,
        max_file_size=upload_limit(settings),
    )


def upload_limit(settings: Settings) -> str:
    """The largest upload gradio accepts (audio recordings and files), from asr.max_upload_mb."""
    return f"{settings.asr.max_upload_mb:g}mb"


def _serve_with_api(
    settings: Settings,
    assistant: Assistant,
    demo: gr.Blocks,
    api_key: str | None,
    logins: list[tuple[str, str]] | None,
) -> None:
    """The web app and the OpenAI-compatible API on one host and port, served by uvicorn."""
    import uvicorn
    from fastapi import FastAPI

    from app.openai_api import add_openai_api

    host, port = settings.app.host, settings.app.port
    # The parent app's routes come first: FastAPI's docs would shadow gradio's own /openapi.json.
    app = FastAPI(title=TITLE, docs_url=None, redoc_url=None, openapi_url=None)
    add_openai_api(app, assistant, backend=assistant.answerer.name, api_key=api_key)
    app = gr.mount_gradio_app(
        app,
        demo,
        path="/",
        server_name=host,
        server_port=port,
        show_error=True,
        footer_links=["api"],
        auth=logins,
        max_file_size=upload_limit(settings),
    )
    log.info(
        "serving the web app at http://%s:%d/ and the OpenAI-compatible API at /v1 (%s)",
        host,
        port,
        "key required" if api_key else "no key needed on loopback",
    )
    # Open event streams (a browser tab, a long answer) must not hold up Ctrl+C for ever.
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, timeout_graceful_shutdown=5)
