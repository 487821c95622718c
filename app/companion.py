"""The whole turn with the companion, top to bottom:

    audio -> transcript (ASR, game-term correction)
    text  -> intent: chat or picture
    chat    -> retrieval -> cited answer stream (KnowledgeChat) -> sentences spoken as they arrive (TTS)
    picture -> SD prompt -> render with progress -> PNG with its settings

Every stage reports a typed event (``app/events.py``); the Gradio chat, its ``/ask`` endpoint, ``/v1`` and
the CLI read the same turn. The recogniser, synthesizer and drawer are given to the constructor or built
lazily, on first use, from the settings: a player who never speaks loads no ASR model. A missing model or
library becomes a clear message in the chat (naming the command that fixes it), never a broken turn.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import replace
from pathlib import Path

from app.config import REPO_ROOT, Settings
from app.events import (
    Answer,
    DrawingStep,
    Drawn,
    Heard,
    Notice,
    Routed,
    SpeechChunk,
    TextDelta,
    TurnEvent,
)
from app.knowledge_chat import KnowledgeChat
from llm.base import ChatModel, ChatTurn
from modules.asr.audio import AudioSource
from modules.asr.base import Transcriber, Transcript
from modules.audio_types import AudioClip
from modules.image.base import ImageGenerator
from modules.image.prompt import PromptPlan
from modules.rag.text import mostly_english
from modules.status import BackendStatus
from modules.tts.base import SpeechSynthesizer

log = logging.getLogger(__name__)

NO_VOICE = "没有可用的语音合成（安装 espeak-ng，或 python -m app download tts）"


class Companion:
    """The companion with ears, a voice and a brush around a KnowledgeChat; one per process, shared by every
    session. Each part given here is used as is; each left out is built from the settings on first use."""

    def __init__(
        self,
        settings: Settings,
        chat: KnowledgeChat | None = None,
        *,
        recognizer: Transcriber | None = None,
        synthesizer: SpeechSynthesizer | None = None,
        drawer: ImageGenerator | None = None,
    ) -> None:
        self.settings = settings
        self.chat = chat or KnowledgeChat(settings)
        self._lock = threading.Lock()
        self._recognizer = recognizer
        self._synthesizer = synthesizer
        self._synthesizer_built = synthesizer is not None
        self._synthesizer_problem = ""
        self._drawer = drawer
        self._drawer_built = drawer is not None
        self._draw_names: dict[str, str] | None = None  # Chinese -> English names for SD prompts
        self._used: set[str] = set()  # parts whose models have been loaded by a turn

    # -- the parts, built on first use ----------------------------------------------------------

    def _names(self) -> list[str]:
        """The knowledge base's entity names: ASR hotwords, prompt terms and correction vocabulary."""
        from modules.asr.hotwords import game_vocabulary

        return game_vocabulary(self.chat.retriever.index.documents)

    @property
    def recognizer(self) -> Transcriber:
        """What the player's recordings are heard through (VAD, recogniser, game-term correction)."""
        with self._lock:
            if self._recognizer is None:
                from modules.asr.recognize import SpeechPipeline

                self._recognizer = SpeechPipeline(self.settings.asr, self._names(), REPO_ROOT)
            return self._recognizer

    @property
    def synthesizer(self) -> SpeechSynthesizer | None:
        """The voice of the answers, or None (``synthesizer_problem`` says why)."""
        with self._lock:
            if not self._synthesizer_built:
                from modules.tts.service import create_synthesizer

                self._synthesizer_built = True
                try:
                    self._synthesizer = create_synthesizer(self.settings.tts, REPO_ROOT)
                    if self._synthesizer is None:
                        self._synthesizer_problem = NO_VOICE
                except Exception as exc:  # a broken model must not break the chat
                    log.warning("speech synthesis unavailable: %s", exc)
                    self._synthesizer_problem = str(exc)
            return self._synthesizer

    @property
    def synthesizer_problem(self) -> str:
        return "" if self.synthesizer is not None else self._synthesizer_problem

    @property
    def drawer(self) -> ImageGenerator | None:
        """The drawing backend, or None when no model is installed (auto); raises for a broken one."""
        with self._lock:
            if not self._drawer_built:
                from modules.image.service import create_generator

                self._drawer = create_generator(self.settings.image, REPO_ROOT)
                self._drawer_built = True
            return self._drawer

    def status(self) -> list[BackendStatus]:
        """Every part as ``doctor`` reports it: retrieval, the answerer, voice in, voice out, drawing."""
        return [*self.chat.status(), *self.parts_status()]

    def parts_status(self) -> list[BackendStatus]:
        """Voice in, voice out and drawing, found without loading anything (cheap enough for the page)."""
        from modules.asr.recognize import backend_status as asr_status
        from modules.image.service import backend_status as image_status
        from modules.tts.service import backend_status as tts_status

        return [
            asr_status(self.settings.asr, REPO_ROOT),
            tts_status(self.settings.tts, REPO_ROOT),
            image_status(self.settings.image, REPO_ROOT),
        ]

    def _first_use(self, part: str) -> bool:
        """True once per part: its model loads now, and the player is told so instead of a silent wait."""
        with self._lock:
            first = part not in self._used
            self._used.add(part)
            return first

    # -- stages ---------------------------------------------------------------------------------

    def plan_drawing(self, text: str, drawer: ImageGenerator, refine: bool = True) -> PromptPlan:
        """The SD prompt for a drawing request, with the drawer's LoRA trigger words."""
        from modules.image.prompt import build_prompt, kb_names

        if self._draw_names is None:
            # The player's own documents translate too, not only the shipped knowledge base.
            self._draw_names = kb_names(self.chat.retriever.index.documents)
        ask = self._ask_model if refine and self.settings.image.refine_prompt else None
        return build_prompt(
            text, self.settings.image, refine=ask, names=self._draw_names, trigger_words=drawer.trigger_words
        )

    def hear(self, audio: AudioSource) -> Transcript:
        """A recording or upload (path, bytes or (rate, samples)) as text; raises AudioError with a message."""
        return self.recognizer.transcribe(audio)

    def route(self, text: str) -> Routed:
        """Chat or picture: rules first; the chat model settles ambiguous cases when one is configured."""
        from modules.image.intent import classify

        ask = self._ask_model if self.settings.image.route_with_model else None
        decision = classify(text, ask_model=ask)
        return Routed(decision.intent, decision.reason)

    @property
    def _ask_model(self) -> Callable[[str], str] | None:
        model: ChatModel | None = self.chat.answerer.model
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
        audio: AudioSource | None = None,
        history: Sequence[ChatTurn] = (),
        speak: bool | None = None,
        cancel: threading.Event | None = None,
        transcript: Transcript | None = None,
    ) -> Iterator[TurnEvent]:
        """Events of one turn, typed or spoken: the finished Answer, then any speech still being read.

        ``speak`` (default tts.voice_replies) adds the spoken answer; ``cancel`` stops a picture between
        steps (closing the generator stops everything else). ``transcript`` is a turn already heard
        (hands-free mode recognises while the player speaks).
        """
        started = time.perf_counter()
        if transcript is not None:
            yield Heard(transcript)
            text = transcript.text
        elif audio is not None:
            from modules.asr.audio import AudioError

            problem = ""
            try:
                if self._first_use("hear"):
                    yield Notice("首次使用语音：正在加载语音识别模型，稍等片刻……")
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
            assert transcript is not None
            yield Heard(transcript)
            text = transcript.text
        text = (text or "").strip()
        routed = self.route(text) if text else Routed("chat", "empty")
        yield routed
        if routed.intent == "image":
            events = self.draw(text, cancel)
        else:
            events = self._chat_turn(text, history, self.settings.tts.voice_replies if speak is None else speak)
        for event in events:
            if isinstance(event, Answer):
                event = replace(event, intent=routed.intent, transcript=transcript, latency_ms=_ms(started))
            yield event

    def _chat_turn(self, text: str, history: Sequence[ChatTurn], speak: bool) -> Iterator[TurnEvent]:
        """The cited answer; with ``speak``, each finished sentence is synthesised while the rest is written.

        The text turn and the voice share this one loop: text goes into the SpeechStream as it is written,
        finished audio comes out between text events without waiting, and the rest after the Answer.
        Closing this generator (the stop button) closes the stream, which drops the unspoken sentences.
        """
        voice = self.synthesizer if speak else None
        if speak and voice is None:
            yield Notice(f"语音回复不可用：{self.synthesizer_problem}")
        if voice is None:
            yield from self.chat.ask_stream(text, history)
            return
        from modules.tts.service import SpeechStream

        stream = SpeechStream(voice, self.settings.tts, "en" if mostly_english(text) else "zh")
        voiced = True  # until synthesis fails: then the text answer goes on alone
        try:
            for event in self.chat.ask_stream(text, history):
                if voiced and isinstance(event, TextDelta):
                    stream.feed(event.text)
                yield event
                if voiced:
                    voiced = yield from _spoken(stream.ready)
            if voiced:
                # The text is complete (sources shown); the voice may still be reading the last sentences.
                stream.end()
                yield from _spoken(lambda: stream)
        finally:
            stream.close()

    def draw(
        self,
        text: str,
        cancel: threading.Event | None = None,
        *,
        seed: int | None = None,
        refine: bool = True,
        output: Path | None = None,
    ) -> Iterator[TurnEvent]:
        """A drawing request's events: the prompt, a step at a time, the saved picture, then the Answer.

        The chat's picture turns and ``python -m app draw`` both come here. ``output`` names the PNG
        (default: a new file under image.output_dir); ``cancel`` stops between steps.
        """
        from modules.image.base import GeneratedImage, ImageGenerationError, ImageProgress
        from modules.image.png import save_png
        from modules.image.service import NO_IMAGE_MODEL

        try:
            drawer = self.drawer
        except Exception as exc:  # a broken model dir: say what is wrong, keep the conversation
            log.warning("image generation unavailable: %s", exc)
            message = f"现在画不了：{exc}"
            yield TextDelta(message)
            yield Answer(text, text, message, [], "none", intent="image")
            return
        if drawer is None:
            yield TextDelta(NO_IMAGE_MODEL)
            yield Answer(text, text, NO_IMAGE_MODEL, [], "none", intent="image")
            return
        if self._first_use("draw"):
            yield Notice("首次作画：正在加载画图模型，之后会显示每一步的进度……")
        plan = self.plan_drawing(text, drawer, refine=refine)
        notes = "".join(f"\n- {note}" for note in plan.notes)
        lead = f"好嘞，俺老孙这就画！\n\n提示词：{plan.prompt}{notes}"
        yield TextDelta(lead)
        request = drawer.request_for(plan.prompt, negative_prompt=plan.negative_prompt, seed=seed)
        subjects = self.chat.retriever.index.entities.find(text)
        drawn: Drawn | None = None
        try:
            with closing(drawer.generate(request, cancel=cancel)) as steps:
                for item in steps:
                    if isinstance(item, ImageProgress):
                        yield DrawingStep(item.step, item.total)
                    elif isinstance(item, GeneratedImage):
                        # Who is in the picture, so the 图鉴 can show it with its entry.
                        extra = {"wulewule_subjects": json.dumps(subjects, ensure_ascii=False)}
                        if output is None:
                            path = save_png(item, self.settings.image_dir, extra=extra)
                        else:
                            path = save_png(item, output.parent, name=output.name, extra=extra)
                        req = item.request
                        drawn = Drawn(path, req.prompt, req.negative_prompt, item.seed, item.model, item.lora)
                        yield drawn
        except (ImageGenerationError, OSError) as exc:  # out of memory, a bad LoRA, a full disk
            log.warning("drawing failed: %s", exc)
            failed = f"\n\n⚠️ 这张没画成：{exc}"
            yield TextDelta(failed)
            yield Answer(text, text, lead + failed, [], drawer.name, intent="image")
            return
        if drawn is None:
            done = "已停止作画。"
            yield TextDelta(f"\n\n{done}")
            yield Answer(text, text, f"{lead}\n\n{done}", [], drawer.name, intent="image")
            return
        tail = f"\n\n种子 seed={drawn.seed}，同样的提示词和种子能画出同一张图。"
        yield TextDelta(tail)
        yield Answer(text, text, lead + tail, [], drawer.name, intent="image", image=drawn)


def _spoken(take: Callable[[], Iterable[AudioClip]]) -> Generator[TurnEvent, None, bool]:
    """Clips as SpeechChunks; returns False after a synthesis failure, which becomes a notice (the text
    answer goes on without a voice)."""
    try:
        for clip in take():
            yield SpeechChunk(clip)
    except Exception as exc:
        log.warning("speech synthesis failed: %s", exc)
        yield Notice(f"语音合成出错，这次只有文字：{exc}")
        return False
    return True


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
