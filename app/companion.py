"""A whole turn with the companion, top to bottom:

    audio -> transcript (ASR, game-term correction)
    text  -> intent: chat or picture
    chat    -> retrieval -> cited answer stream (the Assistant) -> sentences spoken as they arrive (TTS)
    picture -> SD prompt -> render with progress -> PNG with its settings

Every stage reports a typed event; the UI, the CLI and the tests read the same turn. The speech,
drawing and recognition backends are built lazily, on first use, from the settings: a player who
never speaks loads no ASR model. A missing model or library becomes a clear message in the chat
(naming the command that fixes it), never a broken turn.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.assistant import Answer, Assistant, Notice, SourcesFound, TextDelta
from app.config import REPO_ROOT, Settings
from llm.base import ChatTurn
from llm.grounded import GroundedAnswerer
from modules.asr.base import Transcript
from modules.audio_types import AudioClip
from modules.rag.text import mostly_english

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Heard:
    """What the player said: the corrected transcript (shown as their message) and the raw one."""

    transcript: Transcript


@dataclass(frozen=True)
class Routed:
    """Whether the message asks for a chat answer or a picture, and why."""

    intent: str  # "chat" | "image"
    reason: str


@dataclass(frozen=True)
class SpeechChunk:
    """A piece of the spoken answer, in order; played back to back they make the whole reply."""

    clip: AudioClip


@dataclass(frozen=True)
class DrawingStep:
    step: int
    total: int


@dataclass(frozen=True)
class Drawn:
    """A finished picture, saved as PNG with the settings that reproduce it."""

    path: Path
    prompt: str
    negative_prompt: str
    seed: int
    model: str
    lora: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "model": self.model,
            "lora": self.lora,
        }


CompanionEvent = Heard | Routed | Notice | SourcesFound | TextDelta | SpeechChunk | DrawingStep | Drawn | Answer


class FeatureUnavailable(RuntimeError):
    """A feature whose model or library is missing; the message says how to get it."""


class Companion:
    """The assistant with ears, a voice and a brush; one per process, shared by every session."""

    def __init__(self, settings: Settings, assistant: Assistant | None = None) -> None:
        self.settings = settings
        self.assistant = assistant or Assistant(settings)
        self._lock = threading.Lock()
        self._speech: Any = None  # modules.asr SpeechPipeline, built on first use
        self._voice: Any = None  # a SpeechSynthesizer, or False when none is available
        self._voice_reason = ""
        self._drawer: Any = None
        self._draw_names: dict[str, str] | None = None  # Chinese -> English names for SD prompts

    # -- the backends, built on first use ------------------------------------------------------

    def _names(self) -> list[str]:
        """The knowledge base's entity names: ASR hotwords, prompt terms and correction vocabulary."""
        from modules.asr.terms import game_vocabulary

        return game_vocabulary(self.assistant.retriever.index.documents)

    @property
    def speech(self) -> Any:
        with self._lock:
            if self._speech is None:
                from modules.asr.recognize import SpeechPipeline

                self._speech = SpeechPipeline(self.settings.asr, self._names(), REPO_ROOT)
            return self._speech

    @property
    def voice(self) -> Any:
        """The speech synthesizer, or None (with ``voice_unavailable`` saying why)."""
        with self._lock:
            if self._voice is None:
                from modules.tts.service import create_synthesizer

                try:
                    self._voice = create_synthesizer(self.settings.tts, REPO_ROOT) or False
                    if not self._voice:
                        self._voice_reason = "没有可用的语音合成（安装 espeak-ng，或 python -m app download tts）"
                except Exception as exc:  # a broken model must not break the chat
                    log.warning("speech synthesis unavailable: %s", exc)
                    self._voice, self._voice_reason = False, str(exc)
            return self._voice or None

    @property
    def voice_unavailable(self) -> str:
        return "" if self.voice is not None else self._voice_reason

    @property
    def drawer(self) -> Any:
        with self._lock:
            if self._drawer is None:
                from modules.image.service import create_generator

                self._drawer = create_generator(self.settings.image, REPO_ROOT) or False
            return self._drawer or None

    # -- stages ---------------------------------------------------------------------------------

    def plan_drawing(self, text: str, drawer: Any, refine: bool = True) -> Any:
        """The SD prompt (a PromptPlan) for a drawing request, with the drawer's LoRA trigger words."""
        from modules.image.prompt import build_prompt, kb_names

        if self._draw_names is None:
            # The player's own documents translate too, not only the shipped knowledge base.
            self._draw_names = kb_names(self.assistant.retriever.index.documents)
        ask = self._ask_model if refine and self.settings.image.refine_prompt else None
        trigger = getattr(drawer, "trigger_words", None)
        return build_prompt(text, self.settings.image, refine=ask, names=self._draw_names, trigger_words=trigger)

    def hear(self, audio: Any) -> Transcript:
        """A recording or upload (path, bytes or (rate, samples)) as text; raises AudioError with a message."""
        return self.speech.transcribe(audio)

    def route(self, text: str) -> Routed:
        """Chat or picture: rules first; the chat model settles ambiguous cases when one is configured."""
        from modules.image.intent import classify

        ask = self._ask_model if self.settings.image.route_with_model else None
        decision = classify(text, ask_model=ask)
        return Routed(decision.intent, decision.reason)

    def _chat_model(self) -> Any:
        answerer = self.assistant.answerer
        return answerer.model if isinstance(answerer, GroundedAnswerer) else None

    @property
    def _ask_model(self) -> Callable[[str], str] | None:
        model = self._chat_model()
        if model is None:
            return None

        def ask(prompt: str) -> str:
            messages = [ChatTurn("user", prompt)]
            return "".join(model.stream_chat(messages, max_tokens=160, temperature=0.0))

        return ask

    # -- a turn ---------------------------------------------------------------------------------

    def turn(
        self,
        text: str | None = None,
        audio: Any = None,
        history: Sequence[ChatTurn] = (),
        speak: bool | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[CompanionEvent]:
        """Events of one turn, typed or spoken: the finished Answer, then any speech still being read.

        ``speak`` (default tts.voice_replies) adds the spoken answer; ``cancel`` stops a picture between
        steps (closing the generator stops everything else).
        """
        started = time.perf_counter()
        transcript = None
        if audio is not None:
            from modules.asr.audio import AudioError

            problem = ""
            try:
                transcript = self.hear(audio)
            except AudioError as exc:
                # Silence, noise, a corrupt file, a recording too long: say so, send nothing on.
                problem = str(exc)
            except Exception as exc:  # a missing or broken ASR model: the typed chat keeps working
                log.warning("speech recognition failed: %s", exc)
                problem = f"语音识别不可用：{exc}"
            if problem:
                yield Notice(problem)
                yield Answer("", "", "", [], "none", [problem], _ms(started))
                return
            yield Heard(transcript)
            text = transcript.text
        text = (text or "").strip()
        routed = self.route(text) if text else Routed("chat", "empty")
        yield routed
        if routed.intent == "image":
            events = self._draw_turn(text, cancel)
        else:
            events = self._chat_turn(text, history, self.settings.tts.voice_replies if speak is None else speak)
        for event in events:
            if isinstance(event, Answer):
                event = replace(event, intent=routed.intent, transcript=transcript, latency_ms=_ms(started))
            yield event

    def _chat_turn(self, text: str, history: Sequence[ChatTurn], speak: bool) -> Iterator[CompanionEvent]:
        """The cited answer; with ``speak``, each finished sentence is synthesised while the rest is written."""
        voice = self.voice if speak else None
        if speak and voice is None:
            yield Notice(f"语音回复不可用：{self.voice_unavailable}")
        if voice is None:
            yield from self.assistant.ask_stream(text, history)
            return
        from modules.tts.service import speak_stream

        lang = "en" if mostly_english(text) else "zh"
        with _Speaker(lambda deltas: speak_stream(deltas, voice, lang)) as speaker:
            for event in self.assistant.ask_stream(text, history):
                if isinstance(event, TextDelta):
                    speaker.feed(event.text)
                yield event
                yield from _spoken(speaker.ready())
            # The text is complete (sources shown); the voice may still be reading the last sentences.
            speaker.finish()
            yield from _spoken(speaker.rest())

    def _draw_turn(self, text: str, cancel: threading.Event | None) -> Iterator[CompanionEvent]:
        from modules.image.base import GeneratedImage, ImageGenerationError, ImageProgress
        from modules.image.png import save_png
        from modules.image.service import NO_IMAGE_MODEL

        try:
            drawer = self.drawer
        except Exception as exc:  # a broken model dir: say what is wrong, keep the conversation
            log.warning("image generation unavailable: %s", exc)
            message = f"现在画不了：{exc}"
            yield TextDelta(message)
            yield Answer(text, text, message, [], "none")
            return
        if drawer is None:
            yield TextDelta(NO_IMAGE_MODEL)
            yield Answer(text, text, NO_IMAGE_MODEL, [], "none")
            return
        plan = self.plan_drawing(text, drawer)
        notes = "".join(f"\n- {note}" for note in plan.notes)
        lead = f"好嘞，俺老孙这就画！\n\n提示词：{plan.prompt}{notes}"
        yield TextDelta(lead)
        request = drawer.request_for(plan.prompt, negative_prompt=plan.negative_prompt)
        drawn: Drawn | None = None
        try:
            with closing(drawer.generate(request, cancel=cancel)) as steps:
                for item in steps:
                    if isinstance(item, ImageProgress):
                        yield DrawingStep(item.step, item.total)
                    elif isinstance(item, GeneratedImage):
                        path = save_png(item, self.settings.image_dir)
                        drawn = Drawn(
                            path, item.request.prompt, item.request.negative_prompt, item.seed, item.model, item.lora
                        )
                        yield drawn
        except (ImageGenerationError, OSError) as exc:  # out of memory, a bad LoRA, a full disk
            log.warning("drawing failed: %s", exc)
            failed = f"\n\n⚠️ 这张没画成：{exc}"
            yield TextDelta(failed)
            yield Answer(text, text, lead + failed, [], drawer.name)
            return
        if drawn is None:
            done = "已停止作画。"
            yield TextDelta(f"\n\n{done}")
            yield Answer(text, text, f"{lead}\n\n{done}", [], drawer.name)
            return
        tail = f"\n\n种子 seed={drawn.seed}，同样的提示词和种子能画出同一张图。"
        yield TextDelta(tail)
        yield Answer(text, text, lead + tail, [], drawer.name, image=drawn.to_dict())


class _Speaker:
    """Runs the TTS stream in a thread fed with the answer's text, so speech keeps pace with writing."""

    _END = object()

    def __init__(self, stream: Callable[[Iterator[str]], Iterator[AudioClip]]) -> None:
        self._text: queue.Queue[object] = queue.Queue()
        self._audio: queue.Queue[object] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True, name="speaker")

    def __enter__(self) -> _Speaker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # A stopped turn (the generator closed) also stops the voice: no more sentences are synthesised.
        self._stop.set()
        self._text.put(self._END)
        self._thread.join(timeout=10)

    def _deltas(self) -> Iterator[str]:
        while True:
            item = self._text.get()
            if item is self._END or self._stop.is_set():
                return
            yield str(item)

    def _run(self, stream: Callable[[Iterator[str]], Iterator[AudioClip]]) -> None:
        try:
            for clip in stream(self._deltas()):
                if self._stop.is_set():
                    break
                self._audio.put(clip)
        except Exception as exc:  # the text answer goes on without a voice
            log.warning("speech synthesis failed: %s", exc)
            self._audio.put(exc)
        finally:
            self._audio.put(self._END)

    def feed(self, text: str) -> None:
        self._text.put(text)

    def finish(self) -> None:
        self._text.put(self._END)

    def ready(self) -> Iterator[AudioClip | Exception]:
        """Clips finished so far, without waiting."""
        while True:
            try:
                item = self._audio.get_nowait()
            except queue.Empty:
                return
            if item is self._END:
                self._audio.put(item)  # keep the end marker for rest()
                return
            yield item  # type: ignore[misc]

    def rest(self) -> Iterator[AudioClip | Exception]:
        """The remaining clips, waiting for each, until the voice is done."""
        while True:
            item = self._audio.get()
            if item is self._END:
                return
            yield item  # type: ignore[misc]


def _spoken(items: Iterator[AudioClip | Exception]) -> Iterator[SpeechChunk | Notice]:
    """Clips as SpeechChunks; a synthesis failure as a notice (the text answer goes on without a voice)."""
    for item in items:
        yield SpeechChunk(item) if isinstance(item, AudioClip) else Notice(f"语音合成出错，这次只有文字：{item}")


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
