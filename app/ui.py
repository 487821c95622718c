"""The Gradio app: chat with streamed, cited answers, voice and pictures. The UI only talks to the Companion."""

from __future__ import annotations

import html
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import CancelledError
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

from app.companion import Companion
from app.compendium import build_compendium_tab
from app.config import Settings
from app.conversation import Conversation, HeardTurn, Interrupt, Listening, TurnReady
from app.events import (
    Answer,
    Collector,
    DrawingStep,
    Drawn,
    Heard,
    Notice,
    Routed,
    Source,
    SourcesFound,
    SpeechChunk,
    TextDelta,
)
from app.knowledge_chat import KnowledgeChat
from app.theme import AVATARS, CSS, HEAD, header_html, wukong_theme
from llm.base import ChatTurn
from modules.asr.base import Transcriber, Transcript
from modules.audio_types import AudioClip
from modules.status import BackendStatus
from modules.tts.service import wav_bytes

log = logging.getLogger(__name__)

TITLE = "悟了悟了 · 黑神话：悟空 AI 助手"
PROMISE = "问剧情、妖王打法、隐藏结局，句句有出处；说给悟空听，也能请他画一幅天命人。"
INTRO = (
    "问我《黑神话：悟空》的剧情、章节、妖王打法、角色、法术装备、隐藏结局和《西游记》原著典故。"
    "每个回答都附上知识库来源。Ask in English too."
)
SOURCES_TITLE = "📚 来源 / Sources"
CUT_MARK = "（被打断）"  # ends an answer the player talked over
UPDATE_EVERY_S = 0.1  # the chat is redrawn at most this often while an answer streams


def message_text(content: Any) -> str:
    """The text of a chat message's content, whichever shape gradio hands it over in."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("value") or "")
    if isinstance(content, (list, tuple)):
        return "".join(message_text(part) for part in content)
    return ""


_CITE_LINK = re.compile(r'<a class="cite"[^>]*>(\[\d+\])</a>')
_CITATION = re.compile(r"\[(\d{1,2})\]")


def history_turns(history: list[dict[str, Any]]) -> list[ChatTurn]:
    """Chatbot messages as conversation turns; source lists and notices are not part of it."""
    turns = []
    for msg in history or []:
        meta = msg.get("metadata") or {}
        if meta.get("title"):
            continue
        role = msg.get("role")
        if role in ("user", "assistant"):
            text = _CITE_LINK.sub(r"\1", message_text(msg.get("content"))).removesuffix(CUT_MARK)
            turns.append(ChatTurn(role, html.unescape(text)))
    return turns


def cite_links(shown: str, turn: str, sources: Sequence[Source] = ()) -> str:
    """Each ``[n]`` of an answer (already escaped by ``show``) as a link to passage n of its sources.

    The link carries the passage in its ``title`` (title · section, the text, the file: one per line), so
    that clicking it opens the passage in place even while the sources block is folded (app/theme.py).
    """
    by_index = {s.index: s for s in sources}

    def link(match: re.Match[str]) -> str:
        n = int(match.group(1))
        found = by_index.get(n)
        if found is None:
            return match.group(0)
        section = f" · {found.section}" if found.section else ""
        passage = f"[{n}] {found.title}{section}\n{found.text.strip()}\n{found.source}"
        return f'<a class="cite" href="#src-{turn}-{n}" title="{html.escape(passage)}">[{n}]</a>'

    return _CITATION.sub(link, shown)


def format_sources(sources: list[Source], turn: str = "") -> str:
    """Sources as HTML: number, title · section, the passage, the file, each ``id``'d for its citations.

    Text is escaped; ``turn`` keeps the ids of one answer's passages apart from another's.
    """
    blocks = []
    for s in sources:
        section = f" · {html.escape(s.section)}" if s.section else ""
        text = html.escape(s.text.replace("\n", " "))
        blocks.append(
            f'<div class="w-src" id="src-{turn}-{s.index}"><b>[{s.index}] {html.escape(s.title)}{section}</b><br>'
            f"{text}<br><sub>{html.escape(s.source)}</sub></div>"
        )
    return "\n".join(blocks)


def show(text: str) -> str:
    """Text as the chat displays it: Markdown still works, HTML is shown as text and never run."""
    return html.escape(text, quote=False)


def progress_bar(step: int, total: int, width: int = 20) -> str:
    done = round(width * step / max(total, 1))
    return f"🎨 绘制中 {step}/{total} " + "▇" * done + "▁" * (width - done)


@dataclass
class TurnView:
    """The UI's state after each step of a turn: the chat, the newest voice chunk, a new picture."""

    messages: list[dict[str, Any]]
    audio: AudioClip | None = None  # the next chunk of the spoken answer
    picture: Drawn | None = None


def turn_views(
    companion: Companion,
    message: str,
    history: list[dict[str, Any]],
    audio: Any = None,
    speak: bool = False,
    cancel: threading.Event | None = None,
    transcript: Transcript | None = None,
) -> Generator[TurnView, None, None]:
    """The chat after each event of one turn (typed or spoken). Nothing said so far is ever lost."""
    turns = history_turns(history)
    messages = list(history or [])
    if audio is None and transcript is None:
        messages.append({"role": "user", "content": show(message)})
    answer_msg: dict[str, Any] = {"role": "assistant", "content": ""}
    written = ""  # the answer's text as it came; shown escaped, with its citations as links
    cited: list[Source] = []
    turn_key = uuid.uuid4().hex[:8]
    status_msg: dict[str, Any] | None = None
    yield TurnView(messages)
    try:
        events = companion.turn(
            text=message, audio=audio, history=turns, speak=speak, cancel=cancel, transcript=transcript
        )
        for event in events:
            if isinstance(event, Heard):
                # The corrected transcript stands in for what the player would have typed.
                heard = event.transcript
                messages.append({"role": "user", "content": show(heard.text)})
                if heard.raw_text != heard.text:
                    title = "🎤 识别原文（已按游戏名词校正）"
                    messages.append(
                        {"role": "assistant", "content": show(heard.raw_text), "metadata": {"title": title}}
                    )
                yield TurnView(messages)
            elif isinstance(event, Routed):
                messages.append(answer_msg)
            elif isinstance(event, Notice):
                note = {"role": "assistant", "content": show(event.text), "metadata": {"title": "ℹ️ 提示"}}
                messages.insert(len(messages) - (1 if answer_msg in messages else 0), note)
                yield TurnView(messages)
            elif isinstance(event, SourcesFound):
                cited = event.sources
            elif isinstance(event, TextDelta):
                written += event.text
                answer_msg["content"] = cite_links(show(written), turn_key, cited)
                yield TurnView(messages)
            elif isinstance(event, SpeechChunk):
                yield TurnView(messages, audio=event.clip)
            elif isinstance(event, DrawingStep):
                if status_msg is None:
                    status_msg = {"role": "assistant", "content": "", "metadata": {"title": "🎨 作画进度"}}
                    messages.append(status_msg)
                status_msg["content"] = progress_bar(event.step, event.total)
                yield TurnView(messages)
            elif isinstance(event, Drawn):
                messages.append({"role": "assistant", "content": {"path": str(event.path), "alt_text": event.prompt}})
                yield TurnView(messages, picture=event)
            elif isinstance(event, Answer) and event.sources:
                messages.append(
                    {
                        "role": "assistant",
                        "content": format_sources(event.sources, turn_key),
                        "metadata": {"title": f"{SOURCES_TITLE}（{len(event.sources)}）", "status": "done"},
                    }
                )
    except Exception as exc:  # the conversation must survive any backend failure
        log.exception("the turn failed")
        if answer_msg not in messages:
            messages.append(answer_msg)
        answer_msg["content"] += f"\n\n⚠️ 出错了，这一轮没能完成：{exc}。对话记录还在，可以再试一次。"
    if answer_msg in messages and not answer_msg["content"]:
        messages.remove(answer_msg)
    yield TurnView(messages)


STATUS_LABELS = ("🎤 语音提问", "🔊 语音回复", "🎨 画图")


def status_panel(companion: Companion, parts: list[BackendStatus] | None = None) -> str:
    """What answers, voice in, voice out and drawing: each working, or the one line that turns it on."""
    chat = companion.chat
    retriever = chat.retriever
    index = retriever.index
    build = chat.dense_build
    vectors = ""
    if build is not None and build.index is None and build.total and not build.error:
        vectors = (
            f' <progress value="{build.done}" max="{build.total}" aria-label="向量索引构建进度"></progress>'
            f" 向量索引 {build.done}/{build.total}"
        )
    answers = (
        f"知识库 {len(index.documents)} 条 · 检索 BM25{chat.dense_words()} · 回答 {html.escape(chat.answerer.name)}"
    )
    items = [f'<div class="item">✅ <b>📚 回答</b>：{html.escape(answers)}{vectors}</div>']
    notices = "".join(f'<span class="fix">⚠️ {html.escape(n)}</span>' for n in chat.startup_notices)
    items[0] = items[0].replace("</div>", notices + "</div>")
    for label, part in zip(STATUS_LABELS, parts if parts is not None else companion.parts_status(), strict=True):
        if part.ok:
            items.append(f'<div class="item">✅ <b>{label}</b>：{html.escape(part.backend or "")}</div>')
        else:
            fix = html.escape(part.fix or part.detail)
            items.append(f'<div class="item">⚪ <b>{label}</b>：未开启<span class="fix">{fix}</span></div>')
    return f'<div class="wk-status" role="status">{"".join(items)}</div>'


def _vectors_building(assistant: KnowledgeChat) -> bool:
    build = assistant.dense_build
    return build is not None and build.building


FRAME_S = 0.1  # the microphone streams a frame this often in hands-free mode
LIVE_LIMIT_S = 4 * 3600  # a hands-free stream ends (and the mic must be clicked again) after this long
# Stops the voice in this tab at once (the server stops sending it when the event is cancelled).
STOP_VOICE_JS = """(...args) => {
  document.querySelectorAll('#voice audio').forEach((a) => { a.pause(); });
  window.wulewuleVoiceStopped = Date.now();
  return args;  // the inputs, unchanged: gradio reads a returned array as one value per input
}"""


def mark_cut(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat with its last answer marked as cut by the player (once)."""
    messages = list(history or [])
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        meta = msg.get("metadata") or {}
        if msg.get("role") == "assistant" and not meta.get("title") and isinstance(msg.get("content"), str):
            if not msg["content"].endswith(CUT_MARK):
                messages[i] = {**msg, "content": msg["content"] + CUT_MARK}
            break
    return messages


def hear_turn(conversation: Conversation, token: str) -> HeardTurn | str | None:
    """What a hands-free turn heard; a message when recognition failed; None when there is nothing to say."""
    from modules.asr.audio import AudioError
    from modules.asr.recognize import NoSpeechError

    try:
        return conversation.take(token)
    except (KeyError, CancelledError):
        return None  # a stale token (the tab reloaded), or the tab closed while it was being heard
    except NoSpeechError:
        return None  # a cough or a noise the VAD took for speech: keep listening, say nothing
    except AudioError as exc:
        return str(exc)
    except Exception as exc:  # a missing or broken ASR model: the typed chat keeps working
        log.warning("hands-free recognition failed: %s", exc)
        return f"语音识别不可用：{exc}"


def _warm(ears: Transcriber) -> None:
    try:
        ears.warm_up()
    except Exception as exc:  # the turn will say so, with the fix; nothing to add here
        log.info("speech recognition is not ready: %s", exc)


class Conversations:
    """Each tab's hands-free conversation, by gradio session; closed when the tab goes away."""

    def __init__(self) -> None:
        self._by_session: dict[str, Conversation] = {}
        self._lock = threading.Lock()

    def get(self, session: str | None, companion: Companion) -> Conversation:
        session = session or ""  # a caller without a session (the API) has one conversation of its own
        with self._lock:
            found = self._by_session.get(session)
            if found is None:
                ears = companion.recognizer
                found = Conversation(companion.settings.asr, ears)
                self._by_session[session] = found
                # The recogniser loads while the player speaks the first question, not after it.
                threading.Thread(target=_warm, args=(ears,), name="asr-warm-up", daemon=True).start()
            return found

    def find(self, session: str | None) -> Conversation | None:
        with self._lock:
            return self._by_session.get(session or "")

    def close(self, session: str | None) -> None:
        with self._lock:
            found = self._by_session.pop(session or "", None)
        if found is not None:
            found.close()

    def __len__(self) -> int:
        return len(self._by_session)


STOP_WAIT_S = 3.0  # how long the stop button waits for a tab's turns to end by themselves


class RunningTurns:
    """Each tab's turns being answered now, so that the stop button ends them the way they end by themselves.

    Gradio's own ``cancels`` kills the event's task, and its browser client then sometimes takes the
    cancel's empty "completed" message for the turn's output: every output shows 错误 (Error) and the
    stop button stays up (a race in gradio 6's frontend, seen about 1 stop in 3 on a busy machine). So
    the stop button sets the turn's stop flag here instead: the turn stops writing and speaking at its
    next step (a token, a sentence, a drawing step), closes its model streams, and its event completes
    normally, keeping what is shown. Gradio's cancel is kept only for what this cannot reach: a turn
    still waiting in the queue, or one stuck in a step longer than ``STOP_WAIT_S``.
    """

    def __init__(self) -> None:
        self._by_session: dict[str, set[threading.Event]] = {}
        self._changed = threading.Condition()

    @contextmanager
    def turn(self, session: str | None) -> Iterator[threading.Event]:
        """Register one turn of this tab while the block runs; the event is set when it should stop."""
        key = session or ""
        stop = threading.Event()
        with self._changed:
            self._by_session.setdefault(key, set()).add(stop)
        try:
            yield stop
        finally:
            with self._changed:
                turns = self._by_session.get(key, set())
                turns.discard(stop)
                if not turns:
                    self._by_session.pop(key, None)
                self._changed.notify_all()

    def stop(self, session: str | None, wait: float = STOP_WAIT_S) -> bool:
        """Ask this tab's turns to stop; True when some were running and all ended within ``wait`` s."""
        key = session or ""
        with self._changed:
            turns = self._by_session.get(key)
            if not turns:
                return False
            for stop in turns:
                stop.set()
            return self._changed.wait_for(lambda: key not in self._by_session, timeout=wait)

    def __len__(self) -> int:
        with self._changed:
            return sum(len(t) for t in self._by_session.values())


def build_ui(companion: Companion, settings: Settings) -> gr.Blocks:
    assistant = companion.chat
    conversations = Conversations()
    running = RunningTurns()
    parts = companion.parts_status()  # what voice and drawing need does not change while the app runs
    streaming_audio = shutil.which("ffmpeg") is not None  # gradio encodes streamed audio with ffmpeg
    with gr.Blocks(title=TITLE, fill_height=True, delete_cache=(3600, 3600)) as demo:
        gr.HTML(header_html(TITLE, PROMISE), elem_id="header")
        with gr.Accordion("状态 · 怎样打开更多功能", open=False, elem_id="status-panel"):
            status = gr.HTML(status_panel(companion, parts), elem_id="status")
        # While the sentence vectors are built (first launch), the status line follows the progress
        # and the timer stops itself once they are ready.
        status_timer = gr.Timer(2.0, active=_vectors_building(assistant))

        def refresh_status() -> tuple[str, gr.Timer]:
            return status_panel(companion, parts), gr.Timer(active=_vectors_building(assistant))

        status_timer.tick(refresh_status, outputs=[status, status_timer], show_progress="hidden", queue=False)
        demo.load(refresh_status, outputs=[status, status_timer], show_progress="hidden", queue=False)
        pictures = gr.State([])
        with gr.Tabs() as tabs:
            with gr.Tab("对话 Chat", id="chat"):
                gr.Markdown(INTRO, elem_id="intro")
                chatbot = gr.Chatbot(
                    label="对话",
                    height=520,
                    buttons=["copy"],
                    elem_id="chatbot",
                    placeholder="天命人，有什么想问的？",
                    avatar_images=AVATARS,
                )
                with gr.Row():
                    box = gr.Textbox(
                        placeholder="问点什么，或者说“画一个雪地里的天命人”",
                        show_label=False,
                        scale=8,
                        max_lines=6,
                        elem_id="question",
                    )
                    send = gr.Button("发送", variant="primary", scale=1, elem_id="send")
                with gr.Row():
                    mic = gr.Audio(
                        sources=["microphone", "upload"],
                        type="filepath",
                        label="🎤 语音提问（录完自动发送）",
                        elem_id="mic",
                        scale=3,
                    )
                    with gr.Column(scale=2):
                        speak = gr.Checkbox(value=settings.tts.voice_replies, label="🔊 语音回复", elem_id="speak")
                        voice_out = gr.Audio(
                            label="悟空的回答",
                            streaming=streaming_audio,
                            autoplay=True,
                            interactive=False,
                            elem_id="voice",
                        )
                        voice_file = gr.Audio(
                            label="🔁 完整语音回复（重播 / 下载）", interactive=False, elem_id="voice-file"
                        )
                with gr.Row():
                    hands_free = gr.Checkbox(
                        value=False, label="🎙️ 对话模式（免按键：说完自动回答，开口即可打断）", elem_id="hands-free"
                    )
                    listening = gr.Markdown("", elem_id="listening")
                live_mic = gr.Audio(
                    sources=["microphone"],
                    streaming=True,
                    label="🎙️ 对话模式：点一次录音，之后一直在听",
                    elem_id="live-mic",
                    visible=False,
                )
                # Set by the microphone's stream handler; their change events start a turn or stop one.
                turn_token = gr.Textbox(visible=False, elem_id="turn-token")
                barge_token = gr.Textbox(visible=False, elem_id="barge-token")
                stop_token = gr.Textbox(visible=False, elem_id="stop-token")  # set when a stop needs gradio's cancel
                with gr.Row():
                    # Shown only while something runs (an answer, the voice, a picture: app/theme.py's
                    # _BUSY_JS); Esc presses it.
                    stop = gr.Button("停止", variant="stop", elem_id="stop")
                    clear = gr.Button("清空对话", elem_id="clear")
                if settings.app.examples:
                    gr.Examples(examples=[[e] for e in settings.app.examples], inputs=[box], label="试试这些")
            with gr.Tab("图鉴 Compendium", elem_id="compendium-tab"):
                build_compendium_tab(assistant, box, settings.image_dir, tabs=tabs, chat_tab="chat")
            with gr.Tab("画廊 Gallery"):
                gallery = gr.Gallery(label="画过的天命人", columns=3, height=520, elem_id="gallery")

        def stream_turn(
            session: str | None,
            message: str,
            audio: str | None,
            history: list[dict[str, Any]],
            voice_on: bool,
            drawn: list[Any],
            transcript: Transcript | None = None,
            conversation: Conversation | None = None,
        ) -> Iterator[tuple[Any, Any, Any, Any]]:
            """(chat messages, voice chunk, whole voice file, pictures) after each step of one turn.

            The stop button (``running``) ends the turn at its next step, keeping what is shown. In
            hands-free mode the player may also cut in: ``conversation`` hears of every voice chunk sent
            (so it knows the voice is still playing) and stops the turn when the player talks over it.
            """
            interrupted = conversation.answering() if conversation is not None else threading.Event()
            chunks: list[AudioClip] = []
            skip = gr.skip()
            messages = history
            with running.turn(session) as stopped:
                # ``stopped`` also reaches a picture, which then stops between its steps.
                views = turn_views(
                    companion, message, history, audio=audio, speak=voice_on, cancel=stopped, transcript=transcript
                )
                try:
                    with closing(views):  # closing it closes the model streams and drops the unspoken rest
                        last = 0.0
                        for view in views:
                            messages = view.messages
                            if stopped.is_set():
                                return  # the stop button: what is shown stays, nothing more is written or said
                            if interrupted.is_set():
                                break  # the player cut in: the rest of this answer is not written or spoken
                            # Text pieces are coalesced: one update per UPDATE_EVERY_S is smooth to read
                            # and keeps 20 players streaming at once from spending the CPU on re-sending
                            # the chat.
                            now = time.perf_counter()
                            if view.audio is None and view.picture is None and now - last < UPDATE_EVERY_S:
                                continue
                            last = now
                            sound: Any = None if streaming_audio else skip
                            if view.audio is not None:
                                chunks.append(view.audio)
                                if streaming_audio:
                                    sound = wav_bytes(view.audio)
                                    if conversation is not None:
                                        conversation.played(view.audio.seconds)
                            if view.picture is not None:
                                caption = f"{view.picture.prompt} · seed {view.picture.seed}"
                                drawn = [*drawn, (str(view.picture.path), caption)]
                                yield view.messages, sound, skip, drawn
                            else:
                                yield view.messages, sound, skip, skip
                finally:
                    stopped.set()  # whatever ended the turn, a picture still drawing stops
                    if conversation is not None:
                        conversation.done()
            if interrupted.is_set():
                messages = mark_cut(messages)
            # The last update carries everything (API clients read it as the result), including the
            # whole reply as one file: to replay or save it. Without ffmpeg (no streamed audio) that file
            # is also how the reply is heard.
            whole = wav_bytes(join_clips(chunks)) if chunks else None
            yield messages, None if streaming_audio or interrupted.is_set() else whole, whole, drawn

        def respond(
            message: str,
            audio: str | None,
            history: list[dict[str, Any]],
            voice_on: bool,
            drawn: list[Any],
            request: gr.Request,
        ) -> Iterator[tuple[Any, ...]]:
            session = request.session_hash
            for messages, sound, whole, pictures_now in stream_turn(session, message, audio, history, voice_on, drawn):
                yield "", None, messages, sound, whole, pictures_now, pictures_now

        inputs = [box, mic, chatbot, speak, pictures]
        outputs = [box, mic, chatbot, voice_out, voice_file, pictures, gallery]
        typed, typed_limit = "typed", settings.app.concurrency_limit
        spoken, spoken_limit = "spoken", settings.app.voice_concurrency_limit
        quiet: dict[str, Any] = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}

        submit_evt = box.submit(
            respond, inputs, outputs, api_name="chat", concurrency_id=typed, concurrency_limit=typed_limit
        )
        click_evt = send.click(
            respond, inputs, outputs, api_visibility="private", concurrency_id=typed, concurrency_limit=typed_limit
        )
        voice_evt = mic.stop_recording(
            respond, inputs, outputs, api_name="voice", concurrency_id=spoken, concurrency_limit=spoken_limit
        )
        upload_evt = mic.upload(
            respond, inputs, outputs, api_visibility="private", concurrency_id=spoken, concurrency_limit=spoken_limit
        )

        hands_free.change(lambda on: gr.Audio(visible=on), hands_free, live_mic, api_visibility="private", queue=False)

        def hear_frame(frame: Any, request: gr.Request) -> tuple[Any, Any, Any]:
            """One microphone frame in hands-free mode: a new turn token, a barge-in token, the status."""
            skip = gr.skip()
            if frame is None:
                return skip, skip, skip
            conversation = conversations.get(request.session_hash, companion)
            turn: Any = skip
            barge: Any = skip
            note: Any = skip
            for action in conversation.hear(*frame):
                if isinstance(action, Listening):
                    note = "🎙️ 在听…"
                elif isinstance(action, Interrupt):
                    barge = f"barge-{time.monotonic_ns()}"
                elif isinstance(action, TurnReady):
                    turn, note = action.token, "💭 想一想…"
            return turn, barge, note

        def respond_heard(
            token: str, history: list[dict[str, Any]], voice_on: bool, drawn: list[Any], request: gr.Request
        ) -> Iterator[tuple[Any, ...]]:
            """The turn a hands-free conversation heard: the same turn as a typed or recorded one."""
            conversation = conversations.find(request.session_hash)
            if not token or conversation is None:
                return
            heard = hear_turn(conversation, token)
            if heard is None:
                return
            if isinstance(heard, str):  # recognition failed: say so, keep listening
                note = {"role": "assistant", "content": show(heard), "metadata": {"title": "ℹ️ 提示"}}
                yield [*history, note], gr.skip(), gr.skip(), gr.skip(), gr.skip(), ""
                return
            if heard.cut:
                limit = f"{settings.asr.max_seconds:g}"
                cut = f"一口气说了 {limit} 秒还没停，先听了这 {limit} 秒。"
                history = [*history, {"role": "assistant", "content": cut, "metadata": {"title": "ℹ️ 提示"}}]
            for messages, sound, whole, pictures_now in stream_turn(
                request.session_hash,
                "",
                None,
                history,
                voice_on,
                drawn,
                transcript=heard.transcript,
                conversation=conversation,
            ):
                yield messages, sound, whole, pictures_now, pictures_now, ""

        live_outputs = [turn_token, barge_token, listening]
        live_mic.stream(
            hear_frame,
            live_mic,
            live_outputs,
            stream_every=FRAME_S,
            time_limit=LIVE_LIMIT_S,
            concurrency_limit=None,
            show_progress="hidden",
            api_visibility="private",
        )
        heard_outputs = [chatbot, voice_out, voice_file, pictures, gallery, listening]
        heard_evt = turn_token.change(
            respond_heard,
            [turn_token, chatbot, speak, pictures],
            heard_outputs,
            api_visibility="private",
            concurrency_id=spoken,
            concurrency_limit=spoken_limit,
            show_progress="minimal",
            show_progress_on=voice_file,  # only there: the page's stop button follows it (app/theme.py)
        )
        # Barge-in: the voice stops in the browser at once; the conversation has already told the
        # answer being written to stop (it ends marked as cut, see stream_turn); an answer already
        # written whose voice was still playing is marked here.
        barge_token.change(mark_cut, chatbot, chatbot, js=STOP_VOICE_JS, api_visibility="private", queue=False)

        def tab_closed(request: gr.Request) -> None:
            conversations.close(request.session_hash)  # nothing of a closed tab's conversation keeps running

        demo.unload(tab_closed)

        def ask_api(question: str) -> Iterator[dict[str, Any]]:
            """Stream one question's answer: {"answer": text so far, "sources": [...], "done": bool}."""
            turn = Collector()
            for event in companion.turn(text=question, speak=False):
                turn.add(event)
                if isinstance(event, TextDelta):
                    yield {"answer": turn.text, "sources": [], "done": False}
                elif turn.answer is not None:
                    yield {**turn.answer.to_dict(), "done": True}
                    return

        gr.api(ask_api, api_name="ask")

        # The stop button (and Esc): the voice stops in the browser at once, and this tab's running turns
        # end at their next step, keeping what is shown (RunningTurns says why not gradio's cancels).
        # Only a turn still queued, or stuck in one step, is cancelled gradio's way, through stop_token.
        def stop_turns(request: gr.Request) -> Any:
            ended = running.stop(request.session_hash)
            return gr.skip() if ended else f"stop-{time.monotonic_ns()}"

        work = [submit_evt, click_evt, voice_evt, upload_evt, heard_evt]
        cancels: list[dict[str, Any]] = list(work)  # gradio's hints say dict; its Dependency is one
        stop.click(stop_turns, None, stop_token, js=STOP_VOICE_JS, **quiet)
        stop_token.change(None, None, None, cancels=cancels, **quiet)
        clear.click(
            lambda: ([], "", None, None),
            None,
            [chatbot, box, voice_out, voice_file],
            api_visibility="private",
            queue=False,
        )
    demo.queue(default_concurrency_limit=settings.app.concurrency_limit, max_size=settings.app.max_queue)
    return demo


def join_clips(clips: list[AudioClip]) -> AudioClip:
    """The chunks of one spoken reply (one sample rate) as one clip."""
    return AudioClip(np.concatenate([c.samples for c in clips]), clips[0].sample_rate)


VECTORS_AFTER_S = 8.0  # about the time the page takes to come up on 2 cores


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
    companion = Companion(settings)
    assistant = companion.chat
    # The sentence vectors load (or, on the very first launch, are built) once the page is up.
    assistant.warm_up(vectors_after_s=VECTORS_AFTER_S)
    demo = build_ui(companion, settings)
    log.info("assistant ready in %.1f s: %s", time.perf_counter() - started, assistant.status_line())
    if serve_api:
        _serve_with_api(settings, companion, demo, api_key, logins)
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
        theme=wukong_theme(),
        css=CSS,
        head=HEAD,
    )


def upload_limit(settings: Settings) -> str:
    """The largest upload gradio accepts (audio recordings and files), from asr.max_upload_mb."""
    return f"{settings.asr.max_upload_mb:g}mb"


def _serve_with_api(
    settings: Settings,
    companion: Companion,
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
    backend = companion.chat.answerer.name
    # The companion's ears, voice and brush are served too, so this app can be another's remote engine.
    add_openai_api(app, companion, backend=backend, api_key=api_key, image_dir=settings.image_dir, engines=companion)
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
        theme=wukong_theme(),
        css=CSS,
        head=HEAD,
    )
    log.info(
        "serving the web app at http://%s:%d/ and the OpenAI-compatible API at /v1 (%s)",
        host,
        port,
        "key required" if api_key else "no key needed on loopback",
    )
    # Open event streams (a browser tab, a long answer) must not hold up Ctrl+C for ever.
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, timeout_graceful_shutdown=5)
