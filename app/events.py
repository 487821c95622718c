"""Everything that flows through a turn, as small typed events (the shape of pipecat's ``frames.py``).

A turn is a stream of these: the whole turn (``Companion.turn``) may yield every kind, the text turn
(``KnowledgeChat.ask_stream``) yields ``ChatEvent``s. Each ends with exactly one ``Answer``. Every front end
(the Gradio chat, its ``/ask`` endpoint, ``/v1/chat/completions`` and the CLI) reads the same events;
``collect`` turns a stream into its ``Answer``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from modules.asr.base import Transcript
from modules.audio_types import AudioClip
from modules.image.intent import Intent


@dataclass(frozen=True)
class Source:
    """A passage shown under an answer; ``index`` is the number the answer cites as [index]."""

    index: int
    title: str
    section: str
    text: str
    source: str
    score: float

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "title": self.title,
            "section": self.section,
            "text": self.text,
            "source": self.source,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class Heard:
    """What the player said: the corrected transcript (shown as their message) and the raw one."""

    transcript: Transcript


@dataclass(frozen=True)
class Routed:
    """Whether the message asks for a chat answer or a picture, and why."""

    intent: Intent
    reason: str


@dataclass(frozen=True)
class Notice:
    """Something the player should know about their turn (the question was cut, the voice is off …)."""

    text: str


@dataclass(frozen=True)
class SourcesFound:
    """The passages the answer may cite, before the answer is written."""

    sources: list[Source]


@dataclass(frozen=True)
class TextDelta:
    """The next piece of the answer's text."""

    text: str


@dataclass(frozen=True)
class SpeechChunk:
    """A piece of the spoken answer, in order; played back to back they make the whole reply."""

    clip: AudioClip


@dataclass(frozen=True)
class DrawingStep:
    """A picture is being drawn: ``step`` of ``total`` denoising steps are done."""

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


@dataclass(frozen=True)
class Answer:
    """A finished turn: what was asked, what retrieval used, what was answered (and drawn)."""

    question: str
    standalone_question: str
    answer: str
    sources: list[Source]
    backend: str
    notices: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    intent: Intent = "chat"
    transcript: Transcript | None = None  # when the question was spoken
    image: Drawn | None = None  # the picture, when the turn drew one

    def to_dict(self) -> dict[str, object]:
        extra: dict[str, object] = {}
        if self.transcript is not None:
            extra["transcript"] = {"text": self.transcript.text, "raw_text": self.transcript.raw_text}
        if self.image is not None:
            extra["image"] = self.image.to_dict()
        return {
            "intent": self.intent,
            **extra,
            "question": self.question,
            "standalone_question": self.standalone_question,
            "answer": self.answer,
            "sources": [s.to_dict() for s in self.sources],
            "backend": self.backend,
            "notices": self.notices,
            "latency_ms": round(self.latency_ms, 2),
        }


ChatEvent = Notice | SourcesFound | TextDelta | Answer
TurnEvent = Heard | Routed | Notice | SourcesFound | TextDelta | SpeechChunk | DrawingStep | Drawn | Answer


class TurnIncomplete(RuntimeError):
    """A turn's events ended without its Answer (a broken event source)."""


class Collector:
    """Reads a turn's events as they come: the text so far, the notices, and at the end the Answer.

    The streaming front ends (``/ask``, ``/v1`` streams) feed it event by event; ``collect`` is the same
    for callers that only want the Answer.
    """

    def __init__(self) -> None:
        self.text = ""
        self.notices: list[str] = []
        self.answer: Answer | None = None

    def add(self, event: TurnEvent) -> TurnEvent:
        """Take one event into account; returns it, for use in a loop."""
        if isinstance(event, TextDelta):
            self.text += event.text
        elif isinstance(event, Notice):
            self.notices.append(event.text)
        elif isinstance(event, Answer):
            self.answer = event
        return event

    def result(self) -> Answer:
        """The turn's Answer; TurnIncomplete when the events ended without one."""
        if self.answer is None:
            raise TurnIncomplete("the turn ended without an answer")
        return self.answer


def collect(events: Iterable[TurnEvent], on_event: Callable[[TurnEvent], None] | None = None) -> Answer:
    """A turn's events collected into its Answer; ``on_event`` sees each event on the way (progress, text).

    The stream is closed when this returns or raises, so a turn abandoned half-way stops its work.
    """
    collector = Collector()
    stream = iter(events)
    try:
        for event in stream:
            collector.add(event)
            if on_event is not None:
                on_event(event)
            if collector.answer is not None:
                break
    finally:
        if isinstance(stream, Generator):
            stream.close()
    return collector.result()
