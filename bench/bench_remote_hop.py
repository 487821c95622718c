"""What a remote engine costs on loopback: the same parts in-process and behind another app's /v1.

    .venv/bin/python bench/bench_remote_hop.py [--runs 30]

Two companions answer the same spoken question from the same knowledge base. One hears and speaks
in-process; the other has ``asr.backend=openai`` and ``tts.backend=openai`` pointing at an engine app
(the app's own ``/v1/audio/transcriptions`` and ``/v1/audio/speech``, served by uvicorn on a loopback
port) that runs the very same parts. Recognition is a fixed-text recogniser behind the real pipeline
(resampling, silero-vad, game-name correction), so the difference is the hop itself (WAV encoding,
HTTP, multipart parsing, the engine's own pipeline pass) and not a model's noise; the voice is espeak-ng
on both sides; a picture is drawn by a tiny random Stable Diffusion pipeline (64×64, 2 steps: the
drawing's own time kept small, so that the hop shows: the PNG, base64 and HTTP of one picture). Runs
alternate between the two so that machine noise falls on both; the table gives
medians and the difference (the overhead) per part and for the whole spoken turn. The engine runs in
this process (its own threads, same interpreter): a separate process would add no hop cost, only its
own cores.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench_rag import free_port

from app.companion import Companion
from app.config import load_settings
from app.events import Answer, Drawn, SpeechChunk
from app.knowledge_chat import KnowledgeChat
from app.openai_api import add_openai_api
from modules.asr.base import TranscriptSegment
from modules.asr.hotwords import game_vocabulary
from modules.asr.recognize import SpeechPipeline
from modules.audio_types import AudioClip
from modules.tts.espeak_tts import EspeakSynthesizer

REPO = Path(__file__).resolve().parent.parent
QUESTION_WAV = REPO.parent / "shared" / "testdata" / "speech" / "zh_01.wav"
SENTENCE = "黑熊精住在黑风山，是第一回的最终头目。"


class FixedText:
    """Hears one fixed sentence, at once: the pipeline around it is real, the model's time is taken out."""

    name = "fixed"

    def __init__(self, text: str) -> None:
        self.text = text

    def segments(self, audio: AudioClip) -> Iterator[TranscriptSegment]:
        yield TranscriptSegment(self.text, 0.0, audio.seconds, "zh")


def serve(companion: Companion) -> str:
    """The companion's /v1 engines on a loopback port, served from a thread; returns the /v1 URL."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    add_openai_api(app, companion, backend="extractive", api_key=None, engines=companion)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/v1"


def timed(fn: Callable[[Companion], object], companion: Companion) -> float:
    start = time.perf_counter()
    fn(companion)
    return (time.perf_counter() - start) * 1000


def spoken_turn(companion: Companion) -> None:
    events = list(companion.turn(audio=QUESTION_WAV, speak=True))
    answer = next(e for e in events if isinstance(e, Answer))
    assert answer.transcript is not None and answer.answer and answer.notices == [], answer.notices
    assert any(isinstance(e, SpeechChunk) for e in events)


def first_audio_of_a_turn(companion: Companion) -> None:
    """A spoken question until the first sound of its answer: the wait the player notices."""
    events = companion.turn(audio=QUESTION_WAV, speak=True)
    try:
        next(e for e in events if isinstance(e, SpeechChunk))
    finally:
        events.close()


def first_audio(companion: Companion) -> None:
    assert companion.synthesizer is not None
    next(iter(companion.synthesizer.stream_tts(SENTENCE)))


def all_audio(companion: Companion) -> None:
    assert companion.synthesizer is not None
    assert sum(c.seconds for c in companion.synthesizer.stream_tts(SENTENCE)) > 1.0


def draw(companion: Companion) -> None:
    events = list(companion.draw("画一个雪地里的天命人", seed=7, refine=False))
    assert any(isinstance(e, Drawn) for e in events), [e for e in events if isinstance(e, Answer)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="wulewule-hop-"))
    from tests.modules.image.tiny_sd import build_tiny_sd  # the random pipeline the tests build

    sd = build_tiny_sd(data / "tiny-sd")
    picture = ["image.width=64", "image.height=64", "image.steps=2", "image.safety_checker=false"]
    base = [f"app.data_dir={data}", "rag.embedding.backend=none", *picture]
    base += ["tts.backend=espeak", "asr.backend=whisper", f"image.model={sd}"]
    settings = load_settings(None, base, environ={})
    chat = KnowledgeChat(settings)
    names = game_vocabulary(chat.retriever.index.documents)

    def local_parts(vad: bool = True) -> Companion:
        here = settings if vad else load_settings(None, [*base, "asr.vad=false"], environ={})
        ears = SpeechPipeline(here.asr, names, REPO, recognizer=FixedText("黑熊精住在哪座山上"))
        return Companion(here, chat, recognizer=ears, synthesizer=EspeakSynthesizer(here.tts.espeak))

    def front(engine_url: str) -> Companion:
        remote_sets = [*base[:6]]
        for part, model in (("asr", "wulewule-asr"), ("tts", "wulewule-tts"), ("image", "wulewule-image")):
            remote_sets += [f"{part}.backend=openai", f"{part}.openai.base_url={engine_url}"]
            remote_sets += [f"{part}.openai.model={model}"]
        return Companion(load_settings(None, remote_sets, environ={}), chat)

    local = local_parts()
    # docs/deploy.md's layout: the replica trims silence (VAD) before it sends, so the engine app that
    # serves only replicas runs with asr.vad=false; the second engine trims again, as an engine serving
    # raw uploads would.
    remote = front(serve(local_parts(vad=False)))
    twice = front(serve(local_parts(vad=True)))

    parts: dict[str, Callable[[Companion], object]] = {
        "hear the question": lambda c: c.hear(QUESTION_WAV),
        "first audio of a sentence": first_audio,
        "all audio of a sentence": all_audio,
        "spoken turn to first audio": first_audio_of_a_turn,
        "whole spoken turn": spoken_turn,
        "draw a picture": draw,
    }
    for fn in parts.values():  # warm-up: models, connections, caches
        for companion in (local, remote, twice):
            fn(companion)
    print(f"{args.runs} runs each, alternating; remote = engine app behind /v1 on loopback")
    head = f"{'part':<27} {'in-process ms':>13} {'remote ms':>10} {'overhead ms':>11} {'ratio':>6}"
    print(head + f" {'engine VAD on too':>18}")
    for label, fn in parts.items():
        near: list[float] = []
        far: list[float] = []
        both: list[float] = []
        for _ in range(args.runs):
            near.append(timed(fn, local))
            far.append(timed(fn, remote))
            both.append(timed(fn, twice))
        a, b, c = statistics.median(near), statistics.median(far), statistics.median(both)
        print(f"{label:<27} {a:13.1f} {b:10.1f} {b - a:11.1f} {b / a:6.2f} {c - a:+15.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
